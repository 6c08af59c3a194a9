"""Rule-based answer-span extraction from ranked Chinese passages.

No neural reader is available offline, so the extractor works with what a careful reader
would use:

1. **Question analysis** (:func:`_analyze`): the question type, the question word (wh)
   and the measure word it asks for, the left and right context around it and the key
   terms (jieba words minus stop words) with rarity weights from jieba's dictionary.
2. **Sentence scoring**: every passage is split into sentences and clauses with offsets;
   a sentence scores by the weighted key terms it holds, character-bigram overlap, the
   key terms its passage (or title) holds, a penalty when the passage lacks a named
   entity of the question, and a small prior for the passage rank.
3. **Candidates by type** in the best sentences: numbers with units (count), person
   names (who), places, organisations and lists (where), dates (when) and the text that
   fills the slot between the question's left and right contexts (what / other).
4. **Candidate scoring**: sentence score, proximity to the key terms inside the same
   clause, alignment with the question's left/right context (「…7家省级博士创新站」 for
   「几家省级博士创新站」) and how well the candidate fits what was asked (家 for 几家).
5. **Confidence and abstention**: the share of the question's key-term weight found
   around the answer, scaled down when the passage lacks a proper name of the question
   (「上海…」 asked of an article about 晋中) or when the candidate has the wrong form
   (an organisation for 「市长是谁」); below a threshold the extractor returns None.

All matching runs on :func:`rag.textnorm.normalize_aligned` text, which keeps offsets,
so every span is cut out of the original passage text exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from .textnorm import normalize_aligned
from .types import Passage, Span
from .zh import jieba, pos_tags, word_freq
from .zh import lexicon as lx

__all__ = ["extract_answer", "question_type"]


# --------------------------------------------------------------------------------------
# Patterns (the words they are built from are in rag.zh.lexicon)
# --------------------------------------------------------------------------------------

_NAME_ASK_RE = re.compile(r"叫什么|名字|姓名|名叫|称作什么|称为什么")
_TRAILING_PUNCT_RE = re.compile(r"[\s?？!！。.,，;；:：~～…、\"'“”」』]+$")
_LEADING_Q_RE = re.compile(r"^(?:请问|请告诉我|请|问|我想知道|想知道|你知道)[,:，：\s]*")

_UNIT_AT_RE = re.compile(rf"(?:{lx.UNIT_ALT})")
_CN_DIGITS = "零〇一二两三四五六七八九十百千万亿"
_ARABIC = r"\d+(?:,\d{3})*(?:\.\d+)?"
_CN_NUM = rf"[{_CN_DIGITS}]+(?:点[零〇一二三四五六七八九]+)?"
_RANGE_SEP = r"\s?[-~～至到—–]\s?"
_ARABIC_QTY = rf"-?{_ARABIC}(?:[万亿]\d{{1,4}})?[万亿千百]{{0,2}}(?:多|余|来)?"
_ARABIC_COUNT_RE = re.compile(
    rf"(?<![\d.a-z])(?:第|[$¥￥€£]|hk\$|us\$)?{_ARABIC_QTY}(?:\s?(?:{lx.UNIT_ALT}))?"
    rf"(?:{_RANGE_SEP}{_ARABIC_QTY}(?:\s?(?:{lx.UNIT_ALT}))?)?"
)
_CN_COUNT_RE = re.compile(
    rf"(?<![\d.,])(?:第)?{_CN_NUM}(?:{_RANGE_SEP}{_CN_NUM})?(?:多|余|来)?(?:{lx.UNIT_ALT})|第[{_CN_DIGITS}]+"
)
_NUMERAL_RE = re.compile(rf"[\d{_CN_DIGITS}]")
_UNIT_END_RE = re.compile(rf"(?:{lx.UNIT_ALT})$")
_BARE_YEAR_RE = re.compile(r"(?:1[0-9]|20)\d{2}\s?年")  # 「2024年」: a date, rarely a count
_CN_ARTICLE_RE = re.compile(r"一\w|十分|万分|百分|千万|万一|一\w\w")
_PERCENT_RE = re.compile(rf"百分之(?:{_ARABIC}|{_CN_NUM})")

_ERAS = (
    "民国|顺治|康熙|雍正|乾隆|嘉庆|道光|咸丰|同治|光绪|宣统|洪武|永乐|嘉靖|万历|崇祯|天启|贞观|开元|天宝"
    "|明治|大正|昭和|平成|令和"
)
_DATE_RE = re.compile(
    rf"[清明唐宋元汉]?(?:{_ERAS})(?:元|[一二三四五六七八九十]{{1,3}})年(?:[一二三四五六七八九十]{{1,2}}月)?"
    r"|(?:西元|公元)前?[一二三四五六七八九十]{1,3}世纪(?:初|中叶|中期|末|上半叶|下半叶)?"
    r"|(?:公元前?|西元前?|前)?(?:\d{1,4}|[〇零一二三四五六七八九]{2,4})\s?年代?(?:初|中期|末期|末|后期|前期)?"
    r"(?:\s?\d{1,2}\s?月(?:\s?\d{1,2}\s?[日号])?)?(?:上半年|下半年|初|底|末)?"
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"|\d{1,2}\s?月\s?\d{1,2}\s?[日号]"
    r"|(?:\d{1,2}|[一二三四五六七八九十]{1,3})月(?:份|初|中旬|上旬|下旬|底)?"
    r"|\d{1,2}世纪(?:\d0年代)?(?:初|中叶|中期|末|上半叶|下半叶)?"
    r"|[一二三四五六七八九十]{1,3}世纪(?:初|中叶|中期|末|上半叶|下半叶)?"
    r"|今年|去年|明年|前年|上半年|下半年|年初|年底|年末|近年来|近日|日前|当天|当日|次日|同年"
)
_HAS_DAY_RE = re.compile(r"[日号]$|\d[-/.]\d{1,2}[-/.]\d")
_DATE_NUMERAL_RE = re.compile(r"\d|[〇零一二三四五六七八九十元]")
_SHORT_YEARS_RE = re.compile(r"\d{1,2}年")
_YEAR_IN_DATE_RE = re.compile(
    rf"[清明唐宋元汉]?(?:{_ERAS})(?:元|[一二三四五六七八九十]{{1,3}})年|(?:公元前?|西元前?|前)?(?:\d{{1,4}}|[〇零一二三四五六七八九]{{2,4}})\s?年"
)

_TITLE_RE = re.compile(r"《[^《》\n]{1,40}》|「[^「」\n]{1,30}」|“[^“”\n]{1,30}”|\"[^\"\n]{1,30}\"")
_FOREIGN_NAME_RE = re.compile(rf"[{lx.TRANSLIT}]{{1,8}}(?:[·•・‧-][{lx.TRANSLIT}]{{1,8}})+")
_PERSON_TITLE_RE = re.compile(lx.PERSON_TITLES)
_TITLE_NAME_RE = re.compile(
    lx.PERSON_TITLES
    + r"([\u4e00-\u9fff]{2,3}?)(?=说|表示|指出|介绍|强调|认为|称|告诉|提出|坦言|透露|解释|[,:(])"
)
_PLACE_SUFFIX_RE = re.compile(
    r"(?:省|市|县|区|镇|乡|村|州|国|岛|山|河|湖|江|海|街|路|局|委|厅|部|院|校|中心|公司|集团|大学|学院"
    r"|医院|馆|园|所|办|会|署|站|港|湾|城|营|洲|镇|社区|基地|平台|库|室|团|庄|寺|宫|殿|楼|桥)$"
)

_ORG_SUFFIX_RE = re.compile(
    r"(?:局|委|厅|部|院|校|中心|公司|集团|大学|学院|协会|学会|银行|政府|委员会|电视台|出版社)$"
)
_SENTENCE_RE = re.compile(r"[^。!?;\n]+[。!?;]*")
_CLAUSE_SPLIT_RE = re.compile(r"(?<!\d),|,(?!\d{3}(?!\d))|(?<!\d):|:(?!\d)")
_HAN_OR_ALNUM_RE = re.compile(r"[\u4e00-\u9fff0-9a-z]")
_EDGE_TRIM = " \t\r\n,.;:!?'\"、()[]{}<>…—-~·。，；：！？（）【】"
_SLOT_LEAD_TRIM_RE = re.compile(
    r"(?:名称|名字|全名|原名|简称|又称|别称)?(?:是|为|乃|即|叫做?|称为|名为)|有|在|于|了|的|位于|以"
    r"|(?:共有|共|约|达)(?=[\d零〇一二两三四五六七八九十百千万])"
)
_SLOT_TAIL_TRIM_RE = re.compile(r"(?:的|了|是|等|之一|说|表示|指出|介绍|强调|认为|称)$")

_CONNECTORS = frozenset({"、", "和", "及", "与", "以及", "或", "或者", "、和"})

_MIN_COVERAGE = 0.3  # below this share of the question's key-term weight: abstain
_MIN_CONFIDENCE = 0.25
_MIN_PASSAGE_COVERAGE = 0.6  # confidence shrinks when the passage holds less of the question
_NAME_MISSING_FACTOR = 0.25  # confidence factor per proper name of the question the passage lacks
_TOP_SENTENCES = 6  # sentences searched for slot-filling and clause answers
_MAX_SENTENCES = 40  # sentences searched for typed (regex) candidates
_MIN_RELATIVE = 0.3  # ... as long as they score at least this share of the best one
_TOP_TAGGED = 3  # best sentences segmented and tagged for who/where candidates
_MAX_SLOT = 40  # longest slot-filling answer, in characters


_HAN_RE = re.compile(r"[\u4e00-\u9fff]+")


@lru_cache(maxsize=4096)
def _tag(text: str) -> tuple[tuple[str, str], ...]:
    """Words with part-of-speech tags: jieba's segmentation, tags from its dictionary.

    Much faster than ``jieba.posseg`` (no tagging HMM). Words the dictionary does not know
    are guessed: two to four Han characters starting with a surname -> ``nr`` (a person),
    ending in a place suffix -> ``ns``; digits -> ``m``; Latin letters -> ``eng``.
    """
    tags = pos_tags()
    out = []
    for word in jieba().lcut(text):
        flag = tags.get(word)
        if flag is None:
            if 2 <= len(word) <= 4 and _HAN_RE.fullmatch(word):
                if word[0] in lx.SURNAMES or word.startswith(lx.COMPOUND_SURNAMES):
                    flag = "nr"
                elif _PLACE_SUFFIX_RE.search(word):
                    flag = "ns"
                else:
                    flag = "nz"
            elif word.isdigit():
                flag = "m"
            elif word.isascii() and word.isalpha():
                flag = "eng"
            else:
                flag = "x"
        out.append((word, flag))
    return tuple(out)


@lru_cache(maxsize=65536)
def _term_weight(word: str) -> float:
    """Rarity weight of a word: inverse document frequency from jieba's dictionary."""
    freqs, total = word_freq()
    freq = freqs.get(word, 0)
    idf = math.log(total / (freq + 1))
    w = min(max(idf - 4.0, 1.0), 12.0)
    if len(word) == 1:
        w *= 0.5
    return w


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
    m = lx.WHEN_RE.search(q)
    if m:
        return "when", m
    m = lx.WHO_RE.search(q)
    if m:
        return "who", m
    m = lx.WHY_HOW_RE.search(q)
    if m:
        return "other", m
    m = lx.KIND_RE.search(q)
    if m:
        return "what", m
    m = lx.COUNT_RE.search(q)
    if m:
        return "count", m
    m = lx.WHERE_RE.search(q)
    if m:
        return "where", m
    m = lx.WHAT_RE.search(q)
    if m:
        return "what", m
    for qtype, tail in (("count", lx.COUNT_TAIL_RE), ("when", lx.WHEN_TAIL_RE), ("where", lx.WHERE_TAIL_RE)):
        m = tail.search(q)
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


# --------------------------------------------------------------------------------------
# Candidate scoring
# --------------------------------------------------------------------------------------


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _common_suffix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[-1 - i] == b[-1 - i]:
        i += 1
    return i


def _alignment(q: _Question, norm: str, c: _Candidate) -> float:
    """How well the candidate sits in the question's slot (0..1)."""
    s = c.sentence
    best = c.in_slot
    if q.attribute and (
        q.attribute in norm[max(s.start, c.start - 3) : c.start] or norm[c.end : c.end + 1] == q.attribute
    ):
        best = max(best, 0.5)  # 「1.2米高」「水深0至120公尺」 for 「多高」「多深」
    if q.right:
        end = max(c.end, c.context_end)
        after = norm[end : min(s.end, end + 16)]
        for gap in range(3):
            k = _common_prefix(after[gap:], q.right)
            if k >= min(2, len(q.right)):
                best = max(best, min(1.0, k / min(len(q.right), 5)) * (1.0 - 0.15 * gap))
    if q.left:
        before = norm[max(s.start, c.start - 16) : c.start]
        for gap in range(4):
            seg = before[: len(before) - gap] if gap else before
            k = _common_suffix(seg, q.left)
            if k >= min(2, len(q.left)):
                best = max(best, min(1.0, k / min(len(q.left), 5)) * (1.0 - 0.12 * gap))
    return best


def _proximity(q: _Question, c: _Candidate, total_w: float) -> tuple[float, float]:
    """Weighted closeness of the question's key terms to the candidate, and overlap.

    Returns (proximity in 0..1, share of the candidate covered by key terms).
    """
    s = c.sentence
    clause_of = None
    for ci, (ca, cb) in enumerate(_clauses(s)):
        if ca <= c.start < cb or (ca < c.end <= cb):
            clause_of = ci
            break
    covered = 0
    per_term: dict[str, float] = {}
    for ha, hb, w, term in s.hits:
        if ha >= c.start and hb <= c.end:
            covered += hb - ha
            continue
        if hb <= c.start:
            dist = c.start - hb
        elif ha >= c.end:
            dist = ha - c.end
        else:
            covered += min(hb, c.end) - max(ha, c.start)
            continue
        same = False
        for ci, (ca, cb) in enumerate(_clauses(s)):
            if ca <= ha < cb:
                same = ci == clause_of
                break
        f = 1.0 / (1.0 + dist / 6.0) * (1.0 if same else 0.5)
        per_term[term] = max(per_term.get(term, 0.0), f * w)
    got = sum(per_term.values())
    overlap = covered / max(1, c.end - c.start)
    return min(1.0, got / total_w), min(1.0, overlap)


def _score_candidate(q: _Question, norm: str, c: _Candidate, total_w: float, top_score: float) -> None:
    """Set ``c.score`` (for ranking candidates) and ``c.confidence`` (0..1, for abstaining)."""
    prox, overlap = _proximity(q, c, total_w)
    if c.kind == "what" and q.qtype not in {"what", "other"}:
        align = 0.6 if c.bounded else 0.3  # a slot is aligned by construction; do not count it twice
    else:
        align = _alignment(q, norm, c)
    s = c.sentence
    rel = s.score / top_score if top_score > 0 else 0.0
    c.score = 0.35 * rel + 0.25 * prox + 0.25 * align + 0.4 * c.fit - 0.5 * overlap
    if q.qtype in {"what", "other"}:
        conf = 0.55 * s.coverage + 0.2 * max(prox, align) + 0.25 * c.fit - 0.5 * overlap
    else:  # a candidate of the wrong form (an organisation for 「市长是谁」) caps the confidence
        conf = (0.75 * s.coverage + 0.25 * max(prox, align) - 0.5 * overlap) * min(1.0, 0.25 + c.fit)
    # The passage must be about what was asked: most of the question's weight and all of
    # its proper names (「上海有几家…」 is not answered from an article about 晋中).
    conf *= _NAME_MISSING_FACTOR**s.missing_names * min(1.0, s.passage_coverage / _MIN_PASSAGE_COVERAGE)
    c.confidence = max(0.0, min(1.0, conf))


def _sentence_candidates(q: _Question, s: _Sentence, norm: str, rank: int) -> list[_Candidate]:
    """Candidate answers in one sentence (``rank``: its place in the sentence ranking)."""
    near_top = rank < _TOP_SENTENCES
    tagged = rank < _TOP_TAGGED  # segmenting is the slow part: only the best sentences
    typed: list[_Candidate] = []
    if q.qtype == "count":
        typed = _count_candidates(q, s, norm)
    elif q.qtype == "when":
        typed = _when_candidates(q, s, norm)
    elif q.qtype == "who" or q.wants_name:
        typed = _who_candidates(q, s, norm, tagged)
    elif q.qtype == "where":
        typed = _where_candidates(q, s, norm, tagged)
    if not typed and not near_top:
        return []
    open_question = q.qtype in {"what", "other"}
    slots = _slot_candidates(q, s, norm, 0.6 if open_question else 0.25)
    for c in typed:
        for sl in slots:
            if sl.start <= c.start and c.end <= sl.end:
                c.in_slot = max(c.in_slot, 0.8 if sl.bounded else 0.15)
    out = typed
    if near_top and (open_question or not typed):
        # For typed questions a slot answer is a fallback when no typed candidate is there.
        out += [sl for sl in slots if _slot_allowed(q, norm[sl.start : sl.end])]
    if open_question and rank < 2:
        out += _clause_candidates(q, s, norm)
    return out


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


_QUALIFIER_RE = re.compile(r"以上|以下|左右|上下|之多|余")
# 「多少万标准箱」: a multiplier and the unit the question itself names (「几家省级博士创新站」
# names the counted thing, not a unit; its 家 is a known measure word)
_ASKED_UNIT_RE = re.compile(r"(?:多少|几)([万亿千百][^\s?？!！。，,、;；:：的呢吗啊呀]{0,5})")


def count_span(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """The whole quantity a count answer ``text[start:end]`` should be: a span that stops inside
    a quantity (「5506.3」 of 「5506.3万标准箱」) is carried to the end of the number, its unit
    (a known measure word, or a multiplier and unit after the question's 多少: 「多少万标准箱」)
    and a qualifier (「7%」 -> 「7%以上」); a span that goes on past its quantity with the
    thing the question already names (「7家省级博士创新站」 for 「几家省级博士创新站」) stops
    after the quantity."""
    if end <= start or end > len(text):
        return start, end
    lo, hi = max(0, start - 16), min(len(text), end + 16)
    for rx in (_ARABIC_COUNT_RE, _CN_COUNT_RE):
        for m in rx.finditer(text, lo, hi):
            if m.start() < end < m.end():
                end = m.end()
    head = _ARABIC_COUNT_RE.match(text, start) or _CN_COUNT_RE.match(text, start)
    if head and head.end() < end and _NUMERAL_RE.search(head.group()):
        tail = re.sub(r"^[的之]", "", text[_quantity_end(question, text, start, head.end()):end])
        if not tail or _covered(tail, question):
            end = head.end()
    return start, _quantity_end(question, text, start, end)


def _covered(tail: str, question: str) -> bool:
    """Whether the question already names ``tail`` (most of its character bigrams)."""
    grams = {tail[i:i + 2] for i in range(len(tail) - 1)} or {tail}
    return sum(g in question for g in grams) >= 0.6 * len(grams)


def _quantity_end(question: str, text: str, start: int, end: int) -> int:
    if _NUMERAL_RE.search(text[end - 1]) or _UNIT_END_RE.search(text[start:end]):
        asked = _ASKED_UNIT_RE.search(question)
        if asked:
            unit = asked.group(1)  # its longest continuation in the text, after what the span holds
            fits = [len(unit[j:k]) for j in range(len(unit)) for k in range(len(unit), j, -1)
                    if text[start:end].endswith(unit[:j]) and text.startswith(unit[j:k], end)]
            end += max(fits, default=0)
        if _NUMERAL_RE.search(text[end - 1]):
            um = _UNIT_AT_RE.match(text, end)
            if um:
                end = um.end()
        qm = _QUALIFIER_RE.match(text, end)
        if qm:
            end = qm.end()
    return end


def extract_answer(question: str, passages: Sequence[Passage]) -> Span | None:
    """Find the exact answer span for ``question`` in ranked ``passages``.

    Returns a :class:`Span` whose ``text`` equals ``passages[span.passage].text[start:end]``
    and whose evidence sentence contains it, or None when no passage matches the question
    well enough (the caller should then say that nothing relevant was found).
    """
    if not question or not passages:
        return None
    q = _analyze(question)
    if not q.terms and not q.bigrams:
        return None
    norms = [normalize_aligned(p.text or "") for p in passages]
    titles = [normalize_aligned(p.title or "") for p in passages]
    q = _resolve_terms(q, "\n".join(norms + titles))
    sentences = _score_sentences(q, norms, titles)
    if not sentences:
        return None
    top = sentences[0]
    if top.coverage < _MIN_COVERAGE:
        return None
    cands: list[_Candidate] = []
    for rank, s in enumerate(sentences[:_MAX_SENTENCES]):
        if s.score < _MIN_RELATIVE * top.score:
            break
        cands += _sentence_candidates(q, s, norms[s.passage], rank)
    if not cands:
        return None
    for c in cands:
        _score_candidate(q, norms[c.sentence.passage], c, q.total_weight, top.score)
    best = max(cands, key=lambda c: (c.score, -c.sentence.passage, -(c.end - c.start)))
    if best.confidence < _MIN_CONFIDENCE or best.end <= best.start:
        return None
    p = best.sentence.passage
    text = passages[p].text
    kind = q.qtype if best.kind != "sentence" else "sentence"
    return Span(
        text=text[best.start : best.end],
        passage=p,
        start=best.start,
        end=best.end,
        sentence_start=best.sentence.start,
        sentence_end=best.sentence.end,
        score=round(best.confidence, 4),
        kind=kind,
    )
