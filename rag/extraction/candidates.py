"""Sentences of the passages scored against the question, and the candidate spans of
each type found in them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..zh import lexicon as lx
from .patterns import (
    _ARABIC_COUNT_RE,
    _BARE_YEAR_RE,
    _CLAUSE_SPLIT_RE,
    _CN_ARTICLE_RE,
    _CN_COUNT_RE,
    _CONNECTORS,
    _DATE_NUMERAL_RE,
    _DATE_RE,
    _EDGE_TRIM,
    _FOREIGN_NAME_RE,
    _HAN_OR_ALNUM_RE,
    _HAN_RE,
    _HAS_DAY_RE,
    _MAX_SLOT,
    _NUMERAL_RE,
    _ORG_SUFFIX_RE,
    _PERCENT_RE,
    _PERSON_TITLE_RE,
    _PLACE_SUFFIX_RE,
    _SENTENCE_RE,
    _SHORT_YEARS_RE,
    _SLOT_LEAD_TRIM_RE,
    _SLOT_TAIL_TRIM_RE,
    _TITLE_NAME_RE,
    _TITLE_RE,
    _UNIT_END_RE,
    _YEAR_IN_DATE_RE,
    _tag,
)
from .question import _Question

# --------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------


@dataclass
class _Sentence:
    """A sentence of a passage, with its clauses and match features."""

    passage: int
    start: int
    end: int
    text: str  # normalized text of [start, end)
    clauses: list[tuple[int, int]] | None = None  # passage offsets; see _clauses()
    score: float = 0.0
    coverage: float = 0.0
    passage_coverage: float = 0.0  # share of key-term weight found anywhere in the passage or title
    missing_names: int = 0  # proper names of the question absent from the passage and title
    # occurrences of key terms: (start, end) in passage offsets, weight, term
    hits: list[tuple[int, int, float, str]] = field(default_factory=list)


def _split_sentences(norm: str, passage: int) -> list[_Sentence]:
    """Sentences (ending at 。!?; or a line break), passage offsets, surrounding space cut."""
    out: list[_Sentence] = []
    for m in _SENTENCE_RE.finditer(norm):
        text = m.group(0)
        stripped = text.strip()
        if len(stripped) < 2 or not _HAN_OR_ALNUM_RE.search(stripped):
            continue
        start = m.start() + len(text) - len(text.lstrip())
        out.append(_Sentence(passage, start, start + len(stripped), stripped))
    return out


def _clauses(s: _Sentence) -> list[tuple[int, int]]:
    """The clauses of a sentence (split at , and :, not inside numbers), computed once."""
    if s.clauses is None:
        clauses = []
        cpos = 0
        for cm in _CLAUSE_SPLIT_RE.finditer(s.text):
            if cm.start() > cpos:
                clauses.append((s.start + cpos, s.start + cm.start()))
            cpos = cm.end()
        if len(s.text) > cpos:
            clauses.append((s.start + cpos, s.end))
        s.clauses = clauses or [(s.start, s.end)]
    return s.clauses


def _score_sentences(q: _Question, norms: list[str], titles: list[str]) -> list[_Sentence]:
    """All sentences of all passages, scored against the question, best first.

    ``coverage`` is the share of the question's key-term weight found (in the sentence,
    the sentence before it, the passage and its title): it decides abstention. ``score``
    ranks sentences; there a term's weight is scaled down when many sentences hold it
    (the article's subject says little about which of its sentences answers).
    """
    total_w = q.total_weight
    weight = dict(q.terms)
    per_passage: list[tuple[list[_Sentence], list[list[str]], float, float, float, list[str]]] = []
    df: dict[str, int] = {}
    n_sent = 0
    for pi, norm in enumerate(norms):
        context = norm + "\n" + titles[pi]
        present = [t for t, _ in q.terms if t in context]
        in_text = [t for t in present if t in norm]
        pass_cov = sum(weight[t] for t in present) / total_w
        missing_entities = sum(1 for e in q.entities if e not in context)
        missing_names = sum(1 for e in q.names if e not in context)
        entity_factor = 0.75**missing_entities
        rank_prior = 1.0 / (1.0 + 0.5 * pi)
        bigrams = [bg for bg in q.bigrams if bg in norm]
        sents = _split_sentences(norm, pi)
        found: list[list[str]] = []
        for s in sents:
            in_sent = []
            for t in in_text:
                i = s.text.find(t)
                if i < 0:
                    continue
                in_sent.append(t)
                df[t] = df.get(t, 0) + 1
                w = weight[t]
                while i >= 0:
                    s.hits.append((s.start + i, s.start + i + len(t), w, t))
                    i = s.text.find(t, i + len(t))
            found.append(in_sent)
            s.passage_coverage = pass_cov
            s.missing_names = missing_names
        n_sent += len(sents)
        per_passage.append((sents, found, pass_cov, entity_factor, rank_prior, bigrams))
    log_n = 1.0 + math.log(max(n_sent, 1))
    sel_w = {t: w * (1.0 + math.log(max(n_sent, 1) / df.get(t, 1))) / log_n for t, w in q.terms}
    total_sel = sum(sel_w.values()) or 1.0
    n_bigrams = len(q.bigrams) or 1
    n_chars = len(q.chars) or 1
    sentences: list[_Sentence] = []
    for sents, found, pass_cov, entity_factor, rank_prior, bigrams in per_passage:
        prev: list[str] = []
        for s, in_sent in zip(sents, found, strict=True):
            word_cov = sum(weight[t] for t in in_sent) / total_w
            sel_cov = sum(sel_w[t] for t in in_sent) / total_sel
            prev_only = [t for t in prev if t not in in_sent]
            prev_cov = sum(weight[t] for t in prev_only) / total_w
            sel_prev = sum(sel_w[t] for t in prev_only) / total_sel
            char_cov = len(q.chars.intersection(s.text)) / n_chars
            bigram_cov = sum(1 for bg in bigrams if bg in s.text) / n_bigrams if char_cov else 0.0
            s.coverage = 0.55 * min(1.0, word_cov + 0.3 * prev_cov) + 0.2 * bigram_cov + 0.25 * pass_cov
            sel = (
                0.55 * min(1.0, sel_cov + 0.3 * sel_prev)
                + 0.2 * bigram_cov
                + 0.1 * char_cov
                + 0.15 * pass_cov
            )
            s.score = sel * entity_factor + 0.06 * rank_prior
            prev = in_sent
            sentences.append(s)
    sentences.sort(key=lambda s: (-s.score, s.passage, s.start))
    return sentences


# --------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A possible answer span with the features it is ranked by."""

    sentence: _Sentence
    start: int  # passage offsets
    end: int
    fit: float  # how well the candidate's form fits the question type, 0..1
    kind: str
    in_slot: float = 0.0  # lies inside the text between the question's contexts (0.8 if both found)
    bounded: bool = False  # slot candidates: both the left and the right context were found
    context_end: int = -1  # where the expression it was cut from ends (year of a full date)
    score: float = 0.0
    confidence: float = 0.0


def _trim(norm: str, start: int, end: int, edges: str = _EDGE_TRIM) -> tuple[int, int]:
    """Shrink [start, end) past surrounding ``edges`` (whitespace and punctuation)."""
    while start < end and norm[start] in edges:
        start += 1
    while end > start and norm[end - 1] in edges:
        end -= 1
    return start, end


def _count_candidates(q: _Question, s: _Sentence, norm: str) -> list[_Candidate]:
    """Numbers with their measure words, scored by the unit the question asks for."""
    out = []
    spans: list[tuple[int, int, str]] = []
    for rx in (_ARABIC_COUNT_RE, _CN_COUNT_RE, _PERCENT_RE):
        for m in rx.finditer(s.text):
            text = m.group(0)
            if not text.strip() or not _NUMERAL_RE.search(text):
                continue
            spans.append((s.start + m.start(), s.start + m.end(), text))
    for a, b, text in spans:
        if text.startswith("第") and not q.ordinal:
            continue
        um = _UNIT_END_RE.search(text)
        unit = um.group(0) if um else ""
        if text.endswith("%") or text.startswith("百分之"):
            unit = "%"
        elif text[0] in "$¥￥€£" or text.startswith(("hk$", "us$")):
            unit = "元"
        if unit.isascii() and unit.isalpha() and b < len(norm) and norm[b].isascii() and norm[b].isalpha():
            text, unit = text[: -len(unit)].rstrip(), ""  # 「3mb」: m is not a unit here
            b = a + len(text)
        fam = lx.UNIT_FAMILY.get(unit, "")
        if q.unit:
            same_family = fam and fam == q.unit_family and fam != "generic"
            fit = 1.0 if unit == q.unit else (0.6 if same_family else 0.05)
        elif q.unit_family:
            fit = 1.0 if fam == q.unit_family else (0.35 if unit else 0.3)
        else:
            fit = 0.8 if unit else 0.5
        is_year = _BARE_YEAR_RE.fullmatch(text) is not None
        if is_year and q.unit_family not in {"time"}:
            fit *= 0.2
        if q.ordinal:
            fit = (fit if unit else 0.7) if text.startswith("第") else fit * 0.4
        if unit in {"万", "亿", "千", "百"} and not q.unit:
            fit *= 0.8
        if _CN_ARTICLE_RE.fullmatch(text):  # 「一座」「一种」 are articles more often than counts
            fit *= 0.3 if unit != q.unit else 0.8
        out.append(_Candidate(s, a, b, fit, "count"))
    return out


def _when_candidates(q: _Question, s: _Sentence, norm: str) -> list[_Candidate]:
    """Date expressions; a year-only variant when the question asks for the year."""
    out = []
    for m in _DATE_RE.finditer(s.text):
        a, b = s.start + m.start(), s.start + m.end()
        text = m.group(0)
        has_year = bool(_YEAR_IN_DATE_RE.match(text)) and not text.endswith("年代")
        has_day = bool(_HAS_DAY_RE.search(text))
        relative = not _DATE_NUMERAL_RE.search(text)
        fit = 0.9
        if relative:
            fit = 0.4
        if q.wants_year:
            if has_year:
                ym = _YEAR_IN_DATE_RE.match(text)
                if ym and ym.end() < len(text):
                    out.append(_Candidate(s, a, a + ym.end(), 1.0, "when", context_end=b))
                    fit = 0.7
                else:
                    fit = 1.0
            else:
                fit *= 0.5
        elif q.wants_day:
            fit = 1.0 if has_day else 0.5
        elif has_year or has_day:
            fit = 1.0
        if _SHORT_YEARS_RE.fullmatch(text):  # 「3年」 is more likely a duration
            fit *= 0.3
        out.append(_Candidate(s, a, b, fit, "when"))
    return out


def _is_person(word: str, flag: str) -> bool:
    return flag.startswith("nr") and 2 <= len(word) <= 6 and bool(_HAN_RE.fullmatch(word))


def _who_candidates(q: _Question, s: _Sentence, norm: str, tagged: bool) -> list[_Candidate]:
    """Person names (title + name, foreign names with ·, jieba ``nr``); organisations lower."""
    out = []
    for m in _TITLE_NAME_RE.finditer(s.text):
        a = s.start + m.start(1)
        out.append(_Candidate(s, a, a + len(m.group(1)), 1.0, "who"))
    for m in _FOREIGN_NAME_RE.finditer(s.text):
        out.append(_Candidate(s, s.start + m.start(), s.start + m.end(), 0.9, "who"))
    # 「主办方是谁」 may be an organisation; 「市长是谁」 is a person.
    org_fit = 0.05 if _PERSON_TITLE_RE.search(q.text) else 0.45
    if tagged:
        whole = [(c.start, c.end) for c in out]
        pos = s.start
        for word, flag in _tag(s.text):
            a, b = pos, pos + len(word)
            pos = b
            if any(wa < b and a < wb and (wa, wb) != (a, b) for wa, wb in whole):
                continue  # a piece of a longer name found above
            if _is_person(word, flag):
                out.append(_Candidate(s, a, b, 0.8, "who"))
            elif flag == "eng" and len(word) >= 3:
                out.append(_Candidate(s, a, b, 0.5, "who"))
            elif flag == "nt" or (flag.startswith("n") and len(word) >= 3 and _ORG_SUFFIX_RE.search(word)):
                out.append(_Candidate(s, a, b, org_fit, "who"))
    return out


def _place_like(word: str, flag: str) -> bool:
    """A place or organisation word: tagged so, or a noun with a place suffix (寿阳县, 科技局)."""
    if not _HAN_OR_ALNUM_RE.search(word):
        return False
    if flag in {"ns", "nt", "nsf"}:
        return True
    return len(word) >= 2 and flag.startswith(("n", "j")) and bool(_PLACE_SUFFIX_RE.search(word))


_ADDRESS_PART_RE = re.compile(r"\d+号?|号|[东西南北中]路")


_WORK_HEAD_RE = re.compile(
    r"电影|电视剧|剧|片|书|小说|作品|歌|曲|专辑|游戏|节目|杂志|报|刊|法|条例|文件|规定|办法|意见|通知|方案|规划|计划|纲要"
)
# Which-word nouns whose answers end otherwise (「哪些高校」 -> 山西农大、晋中学院).
_HEAD_SUFFIXES: dict[str, tuple[str, ...]] = {
    "高校": ("大学", "学院", "大", "校"),
    "大学": ("大", "学院"),
    "学校": ("学", "学院", "大", "中", "小"),
    "部门": ("局", "委", "厅", "部", "办", "院", "中心", "署", "会"),
    "单位": ("局", "委", "厅", "部", "办", "院", "中心", "署", "会", "公司", "所", "站"),
    "机构": ("局", "委", "厅", "部", "办", "院", "中心", "署", "会", "所"),
    "企业": ("公司", "集团", "厂"),
    "城市": ("市", "州"),
    "地方": ("省", "市", "县", "区", "镇", "乡", "村", "州"),
    "地区": ("省", "市", "县", "区", "镇", "乡", "村", "州"),
}
_COUNTRY_HEADS = frozenset({"国家", "国"})
_ADMIN_SUFFIX_RE = re.compile(r"[省市县区镇乡村州路街]$")


def _head_fit(q: _Question, text: str, flag: str) -> float:
    """How well a place or organisation fits the noun after the which-word (「哪个大学」)."""
    if not q.head:
        return 0.8
    if q.head in _COUNTRY_HEADS:
        return 1.0 if flag == "ns" and not _ADMIN_SUFFIX_RE.search(text) else 0.5
    if text.endswith((q.head, q.head[-1]) + _HEAD_SUFFIXES.get(q.head, ())):
        return 1.0
    return 0.5


def _where_candidates(q: _Question, s: _Sentence, norm: str, tagged: bool) -> list[_Candidate]:
    """Places and organisations; adjacent place words merged, lists kept whole."""
    out = []
    title_fit = 1.0 if q.head and _WORK_HEAD_RE.search(q.head) else 0.5
    for m in _TITLE_RE.finditer(s.text):
        out.append(_Candidate(s, s.start + m.start(), s.start + m.end(), title_fit, "where"))
    if not tagged:
        return out
    tokens = _tag(s.text)
    offs = []
    pos = s.start
    for word, flag in tokens:
        offs.append((pos, pos + len(word), word, flag))
        pos += len(word)
    i = 0
    while i < len(offs):
        a, b, word, flag = offs[i]
        if not _place_like(word, flag):
            i += 1
            continue
        items = [(a, b)]
        j = i + 1
        while j < len(offs):
            w2, f2 = offs[j][2], offs[j][3]
            if _place_like(w2, f2) or f2 == "j" or _ADDRESS_PART_RE.fullmatch(w2):
                items[-1] = (items[-1][0], offs[j][1])  # adjacent parts form one name: 日本千叶县
                j += 1
            elif w2 in _CONNECTORS and j + 1 < len(offs) and _place_like(offs[j + 1][2], offs[j + 1][3]):
                items.append((offs[j + 1][0], offs[j + 1][1]))  # a list: 寿阳县、和顺县
                j += 2
            else:
                break
        for ia, ib in items:
            fit = _head_fit(q, norm[ia:ib], offs[i][3] if ia == a else "")
            if len(items) > 1:
                fit *= 0.6 if q.wants_list else 0.9
            out.append(_Candidate(s, ia, ib, fit, "where"))
        if len(items) > 1:
            out.append(_Candidate(s, items[0][0], items[-1][1], 1.0 if q.wants_list else 0.75, "where"))
        i = j
    return out


def _slot_candidates(q: _Question, s: _Sentence, norm: str, fit: float) -> list[_Candidate]:
    """The text between the question's left and right contexts as found in the sentence."""
    text = s.text
    out = []
    left_end = -1
    left = q.left
    for k in range(min(len(left), 12), 1, -1):
        i = text.rfind(left[-k:])
        if i >= 0:
            left_end = i + k
            break
    right_start = -1
    right = q.right
    for k in range(min(len(right), 12), 1, -1):
        i = text.find(right[:k], max(left_end, 0))
        if i >= 0:
            right_start = i
            break
    bounded = False
    if left_end >= 0 and right_start == left_end:
        return out  # the sentence repeats the question's contexts with nothing between them
    if left_end >= 0 and right_start > left_end:
        a, b = left_end, right_start
        bounded = True
    elif left_end >= 0 and (right_start < 0 or not right):
        a = left_end
        b = len(text)
        for ca, cb in _clauses(s):  # to the end of the clause holding the left context
            if ca - s.start <= left_end <= cb - s.start:
                b = cb - s.start
                if b - a < 2:  # the clause ended right there: take the next clause
                    nxt = [c for c in _clauses(s) if c[0] - s.start > left_end]
                    if nxt:
                        b = nxt[0][1] - s.start
                break
    elif right_start > 0:
        b = right_start
        a = 0
        for ca, cb in _clauses(s):
            if ca - s.start <= right_start <= cb - s.start:
                a = ca - s.start
                break
    else:
        return out
    a, b = s.start + a, s.start + b
    a, b = _trim(norm, a, b)
    lead = _SLOT_LEAD_TRIM_RE.match(norm, a, b)
    if lead and lead.end() < b:
        a = lead.end()
    tail = _SLOT_TAIL_TRIM_RE.search(norm[a:b])
    if tail and tail.start() > 0:
        b = a + tail.start()
    a, b = _trim(norm, a, b)
    if 0 < b - a <= _MAX_SLOT:
        out.append(_Candidate(s, a, b, fit, "what", bounded=bounded))
    return out


def _slot_allowed(q: _Question, text: str) -> bool:
    """A slot answer for a count or when question must at least hold a number or date."""
    if q.qtype == "count":
        return bool(_ARABIC_COUNT_RE.search(text) or _CN_COUNT_RE.search(text))
    if q.qtype == "when":
        return bool(_DATE_RE.search(text))
    return True


def _clause_candidates(q: _Question, s: _Sentence, norm: str) -> list[_Candidate]:
    """Whole clauses: the fallback answer when nothing sharper fits."""
    out = []
    for ca, cb in _clauses(s):
        a, b = _trim(norm, ca, cb)
        if b - a >= 2:
            out.append(_Candidate(s, a, b, 0.1, "sentence"))
    return out
