"""Question analysis: the question's type, the word and measure word it asks with, its
contexts and its weighted key terms."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from ..textnorm import normalize_aligned
from ..zh import jieba, word_freq
from ..zh import lexicon as lx
from .patterns import (
    _EDGE_TRIM,
    _HAN_OR_ALNUM_RE,
    _LEADING_Q_RE,
    _NAME_ASK_RE,
    _TRAILING_PUNCT_RE,
    _UNIT_AT_RE,
    _tag,
    _term_weight,
)

# --------------------------------------------------------------------------------------
# Question analysis
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Question:
    """What the extractor needs to know about a question (all text normalized)."""

    text: str
    qtype: str
    wh: str  # question word found ("" when none)
    unit: str  # measure word asked for (「几家」 -> 家), "" when none
    unit_family: str  # expected unit family, "" when any
    left: str  # context before the question word, function words trimmed
    right: str  # context after the question word (and its unit), trimmed
    head: str  # noun right after a which-word (「哪个县」 -> 县)
    terms: tuple[tuple[str, float], ...]  # key terms with weights
    entities: tuple[str, ...]  # key terms that name something (places, people, numbers)
    names: tuple[str, ...]  # proper names among them (places, people, organisations)
    total_weight: float  # sum of the key terms' weights as asked (before _resolve_terms)
    unknown: frozenset[str]  # key terms jieba's dictionary does not know (maybe mis-cut)
    bigrams: frozenset[str]
    wants_year: bool = False
    wants_day: bool = False
    wants_list: bool = False
    ordinal: bool = False
    wants_name: bool = False  # 「叫什么」: a name, though not necessarily a person's
    attribute: str = ""  # measured property (「多高」 -> 高, 「碑高多少」 -> 高)
    chars: frozenset[str] = frozenset()  # content characters of the question


def _clean_question(question: str) -> str:
    q = normalize_aligned(question or "").strip()
    q = _LEADING_Q_RE.sub("", q)
    q = _TRAILING_PUNCT_RE.sub("", q)
    return q[:300]


def _classify(q: str) -> tuple[str, re.Match[str] | None]:
    """Question type and the match of its question word (None when there is none)."""
    for qtype, pattern in lx.QUESTION_TYPES:
        m = pattern.search(q)
        if m:
            return qtype, m
    return "other", None


def question_type(question: str) -> str:
    """Classify a question: ``count``, ``who``, ``where``, ``when``, ``what`` or ``other``."""
    return _classify(_clean_question(question))[0]


_AGE_HINT_RE = re.compile(r"年纪|年龄|岁|去世|逝世|享年|时候|时")
_PERCENT_HINT_RE = re.compile(r"比例|比重|百分比|增幅|增速|率$")
_DAY_HINT_RE = re.compile(r"天|日|号")
_HEAD_RE = re.compile(r"[\u4e00-\u9fff]{1,4}")
_NON_CONTENT_RE = re.compile(r"[^\u4e00-\u9fff0-9a-z]")
_LEFT_TRIM_RE = re.compile(
    r"(?:是在|是于|是由|是|有|为|在|于|的|了|共有|一共有|总共有|共|约|达到?|大约|大概|将|会|叫做?|名叫|称为|名为)+$"
)
_RIGHT_TRIM_RE = re.compile(r"(?:的|了|呢|吗|呀|啊|吧)+$")


def _key_terms(text: str) -> list[tuple[str, str]]:
    """Content words of a piece of question text, with their POS tags."""
    out = []
    for word, flag in _tag(text):
        w = word.strip()
        if not w or w in lx.STOP_WORDS or not _HAN_OR_ALNUM_RE.search(w):
            continue
        if len(w) == 1 and flag in {"p", "u", "uj", "ul", "c", "r", "d", "y", "f", "q"}:
            continue
        out.append((w, flag))
    return out


@lru_cache(maxsize=1024)
def _analyze(question: str) -> _Question:
    """Parse a question into type, contexts and weighted key terms."""
    q = _clean_question(question)
    qtype, m = _classify(q)
    wh, unit, family, head = "", "", "", ""
    wants_year = wants_day = wants_list = ordinal = False
    if m is not None:
        wh = m.group(0)
        left, right = q[: m.start()], q[m.end() :]
        if qtype == "count":
            ordinal = wh == "第几"
            if wh.startswith("多") and len(wh) == 2 and wh[1] in lx.ADJ_FAMILY:
                family = lx.ADJ_FAMILY[wh[1]]
                if wh == "多大" and _AGE_HINT_RE.search(q):
                    family = "age"
            elif wh == "多少钱":
                family = "money"
            elif wh.startswith("百分之") or _PERCENT_HINT_RE.search(q):
                family = "percent"
            um = _UNIT_AT_RE.match(right)
            if um and m.end() < len(q):
                unit = um.group(0)
                family = family or lx.UNIT_FAMILY.get(unit, "")
                right = right[um.end() :]
            if right.startswith(("时间", "长时间")):
                family = "time"
        elif qtype == "when":
            wants_year = "年" in wh and "年代" not in wh
            wants_day = bool(_DAY_HINT_RE.search(wh))
        elif qtype == "where":
            wants_list = wh == "哪些" or wh.startswith("哪几")
            if wh.startswith("哪") and len(wh) <= 3:
                hm = _HEAD_RE.match(right)
                if hm:
                    head_words = jieba().lcut(hm.group(0))
                    head = head_words[0] if head_words else ""
                if len(wh) == 2 and wh[1] in "家所座条省市县区国州城镇乡村洲支部间":
                    head = head or wh[1]
                if head and right.startswith(head):
                    right = right[len(head) :]
    else:
        left, right = q, ""
    left = _LEFT_TRIM_RE.sub("", left.strip(_EDGE_TRIM))
    right = _RIGHT_TRIM_RE.sub("", right.strip(_EDGE_TRIM)).strip(_EDGE_TRIM)
    if qtype == "count" and not right and wh and not wh.startswith(("几", "多", "第", "百分")):
        # 「晋中省级博士创新站数量」: the thing counted is what precedes the trigger.
        right = left
    tagged = _key_terms(left) + _key_terms(right) if left != right else _key_terms(left)
    terms: dict[str, float] = {}
    entities: list[str] = []
    names: list[str] = []
    for word, flag in tagged:
        if word in terms:
            continue
        terms[word] = _term_weight(word)
        if flag.startswith(("ns", "nr", "nt")) and len(word) >= 2:
            names.append(word)
        if (
            flag.startswith(("ns", "nr", "nt", "nz")) or flag == "eng" or any(c.isdigit() for c in word)
        ) and len(word) >= 2:
            entities.append(word)
    content = _NON_CONTENT_RE.sub("", left + right)
    attribute = ""
    if qtype == "count":
        if len(wh) == 2 and wh[0] == "多" and wh[1] in lx.ADJ_FAMILY:
            attribute = wh[1]
        elif left and left[-1] in lx.ADJ_FAMILY:
            attribute = left[-1]
    bigrams = frozenset(content[i : i + 2] for i in range(len(content) - 1))
    return _Question(
        text=q,
        qtype=qtype,
        wh=wh,
        unit=unit,
        unit_family=family,
        left=left,
        right=right,
        head=head,
        terms=tuple(terms.items()),
        entities=tuple(entities),
        names=tuple(names),
        total_weight=sum(terms.values()) or 1.0,
        unknown=frozenset(t for t in terms if len(t) >= 3 and t not in word_freq()[0]),
        bigrams=bigrams,
        wants_year=wants_year,
        wants_day=wants_day,
        wants_list=wants_list,
        ordinal=ordinal,
        wants_name=qtype == "what" and bool(_NAME_ASK_RE.search(q)),
        attribute=attribute,
        chars=frozenset(c for c in content if c not in lx.STOP_WORDS and not c.isdigit()),
    )


def _resolve_terms(q: _Question, haystack: str) -> _Question:
    """Repair key terms jieba cut badly, against the passages at hand.

    jieba glues unknown names to a neighbour (「孔平仲属于」 -> 孔平仲属); when such a
    term is absent from the passages but the term less its last or first character is
    present, that shorter form is used, at a weight scaled by its length.
    """
    if not q.unknown:
        return q
    swap: dict[str, str] = {}
    for t in q.unknown:
        if t in haystack:
            continue
        for v in (t[:-1], t[1:]):
            if len(v) >= 2 and v in haystack:
                swap[t] = v
                break
    if not swap:
        return q
    terms = tuple((swap.get(t, t), w * len(swap.get(t, t)) / len(t)) for t, w in q.terms)
    return replace(
        q,
        terms=terms,
        entities=tuple(swap.get(t, t) for t in q.entities),
        names=tuple(swap.get(t, t) for t in q.names),
    )
