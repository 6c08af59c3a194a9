"""Candidates scored by how they fit the question, and the entry point :func:`extract_answer`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise

from ..textnorm import normalize_aligned
from ..types import Passage, Span
from ..zh import lexicon as lx
from .candidates import (
    _Candidate,
    _clause_candidates,
    _clauses,
    _count_candidates,
    _score_sentences,
    _Sentence,
    _slot_allowed,
    _slot_candidates,
    _when_candidates,
    _where_candidates,
    _who_candidates,
)
from .patterns import (
    _ARABIC_COUNT_RE,
    _BARE_YEAR_RE,
    _CN_COUNT_RE,
    _HAN_RE,
    _MAX_SENTENCES,
    _MIN_CONFIDENCE,
    _MIN_COVERAGE,
    _MIN_PASSAGE_COVERAGE,
    _MIN_RELATIVE,
    _NAME_MISSING_FACTOR,
    _NUMERAL_RE,
    _TOP_SENTENCES,
    _TOP_TAGGED,
    _UNIT_AT_RE,
    _UNIT_END_RE,
    _tag,
)
from .question import _analyze, _Question, _resolve_terms, question_type

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
# The same before a number (「近5000万人次」, 「超130万辆」, 「约44公里」); not the end of a word
# (节约, 制约, 最近, 附近).
_LEAD_QUALIFIER_RE = re.compile(r"(?:不超过|超过|不到|不足|将近|接近|大约|(?<![节制预合公条契签邀婚])约"
                                r"|(?<![最附亲靠])近|(?<![赶])超|逾)$")
_PER_UNIT_RE = re.compile(rf"/(?:{lx.UNIT_ALT})")  # 「29微克/立方米」
# 「多少万标准箱」: a multiplier and the unit the question itself names (「几家省级博士创新站」
# names the counted thing, not a unit; its 家 is a known measure word)
_ASKED_UNIT_RE = re.compile(r"(?:多少|几)([万亿千百][^\s?？!！。，,、;；:：的呢吗啊呀]{0,5})")


def count_span(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """The whole quantity a count answer ``text[start:end]`` should be: a span that stops inside
    a quantity (「5506.3」 of 「5506.3万标准箱」) is carried to the end of the number, its unit
    (a known measure word, or a multiplier and unit after the question's 多少: 「多少万标准箱」)
    and a qualifier (「7%」 -> 「7%以上」, 「5000万人次」 -> 「近5000万人次」); a span that goes on past its quantity with the
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
    lead = _LEAD_QUALIFIER_RE.search(text, max(0, start - 3), start) if _NUMERAL_RE.match(text, start) else None
    return lead.start() if lead else start, _quantity_end(question, text, start, end)


# a change said of the quantity: 「增长5.5%」, 「下降3个百分点」 -- not 「提高到65%」, which is a level
_CHANGE_SAID_RE = re.compile(r"(?:增长|增速|增幅|提高|提升|上升|增加|下降|降低|减少|回落|上涨)(?:了|约|近|超过?)?$")
_CHANGE_ASKED_RE = re.compile(r"增|降|提高|提升|上升|减少|上涨|回落|变化|率|比重|占比|比例|百分|%|％|倍|目标")


def change_for_amount(question: str, text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a rate of change (「地区生产总值年均增长5%左右」) while the
    count question asks for an amount and says nothing of change or rate (「广东地区生产总值
    是多少」): the wrong kind of number, however well its passage fits."""
    if question_type(question) != "count" or _CHANGE_ASKED_RE.search(question):
        return False
    number = re.search(r"\d[\d.]*\s*(?:%|％|个百分点)", text[start:end])
    if not number:
        return False
    at = start + number.start()
    return bool(_CHANGE_SAID_RE.search(text[max(0, at - 6):at]))


def slot_only(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A span cut back to the question's slot: when what the question says after its
    interrogative begins with a function word (「创了哪一年以来的新高」, 「是哪天在人代会上作的」,
    「是谁的儿子」) and the span ends with the start of it (「2006年以来」, 「2026年1月26日在」,
    「普鲁西阿斯二世的儿子」), that end goes (「2006年」, 「2026年1月26日」, 「普鲁西阿斯二世」).
    A head noun after the slot stays (「哪所大学」 -> 「…大学」)."""
    slots = list(lx.SLOT_RE.finditer(question))
    after = question[slots[-1].end():].rstrip("？?。！! ") if slots else ""
    if not after or after[0] not in lx.SLOT_FOLLOWERS:
        return start, end
    for k in range(min(len(after), end - start - 1), 0, -1):
        if text[end - k:end] == after[:k]:
            return start, end - k
    return start, end


def name_only(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A name question's span cut after the kind of thing asked for (its last two characters,
    lexicon ``NAME_KIND_RES``): 「哪个项目」 and 「巨化硅氟新材料项目刷新我省…纪录」 ->
    「巨化硅氟新材料项目」; 「货运机场叫什么」 and 「花湖国际机场成为内陆“空中出海口”」 ->
    「花湖国际机场」, when a verb follows it: 「德乙球队霍芬海姆」 stays."""
    kind = next((m.group(1) for rx in lx.NAME_KIND_RES for m in [rx.search(question)] if m), "")
    if not kind or lx.LIST_QUESTION_RE.search(question):
        return start, end
    at = text.find(kind[-2:], start + 1, end)
    cut = at + len(kind[-2:]) if at >= 0 else end
    after = _tag(text[cut:end])[:1] if cut < end else ()
    return (start, cut) if after and after[0][1] == "v" else (start, end)


# 「…等4个方面」, 「…3项措施」: the count of a list, after its last item
_LIST_COUNT_RE = re.compile(r"等?[\d一二三四五六七八九十两]+[个项类种条家所大只座批][\u4e00-\u9fff]{0,4}$")


def list_only(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A list answer without the count after it: for 「考核内容包括哪4个方面」, 「产品生产能力、…、
    调控保障能力等4个方面」 -> 「产品生产能力、…、调控保障能力」. A count said of something else
    (「…等领域的174家企业」) stays."""
    if not lx.LIST_QUESTION_RE.search(question) or "、" not in text[start:end]:
        return start, end
    m = _LIST_COUNT_RE.search(text, start, end)
    if m and m.start() > start and text[m.start() - 1] != "的":
        return start, m.start()
    return start, end


_CLAUSE_CUT_RE = re.compile(r"[，,；;。！!？?、]")
_RATIO_RE = re.compile(r"\d\s?[∶:：]\s?\d")  # 「8.3∶41.4∶50.3」 is one answer
_CHANGE_TO_RE = re.compile(r"(?:提高|增加|增长|提升|上升|扩大|下降|降低|减少|缩小|回落|压减)(?:到|至)")  # not a range


_RESPECTIVELY_RE = re.compile(r"分别")
_ITEM_SPLIT_RES = (re.compile(r"、"), re.compile(r"、|和|及|与"))
_CLAUSE_END_RE = re.compile(r"[，,；;。！!？?：:]")  # not 、, which separates the items


def respective(question: str, text: str, start: int, end: int) -> tuple[int, int] | None:
    """The quantity of the item the question names where 分别 pairs items with quantities in
    order: 「A、B分别达到X和Y」 (「数字化研发设计工具普及率达到多少」 -> 「85.8%」, whichever of X and
    Y the span took), or the other way round, 「X、Y分别建成A、B」 (「潍宿高铁哪一年建成」 ->
    「2028年」 of 「2027年、2028年分别建成津潍、潍宿高铁」). None unless the counts agree and one
    item matches the question best."""
    for m in _RESPECTIVELY_RE.finditer(text, max(0, start - 40), min(len(text), end + 40)):
        cut = _CLAUSE_END_RE.search(text, m.end())
        stop = cut.start() if cut else len(text)
        before = [c.end() for c in _CLAUSE_END_RE.finditer(text, max(0, m.start() - 80), m.start())]
        begin = before[-1] if before else max(0, m.start() - 80)
        if m.end() <= start and end <= stop:  # the quantities follow 分别, the items precede it
            items_at, qty_at = (begin, m.start()), (m.end(), stop)
        elif begin <= start and end <= m.start():  # the quantities precede it, the items follow
            items_at, qty_at = (m.end(), stop), (begin, m.start())
        else:
            continue  # the span is not (only) among this sentence's quantities
        part = text[items_at[0]:items_at[1]]
        qty = sorted((q for rx in (_ARABIC_COUNT_RE, _CN_COUNT_RE) for q in rx.finditer(text, *qty_at)),
                     key=lambda q: q.start())
        # 、 first: 和/及/与 also occur inside words (普及率)
        items = next((i for i in ([t for t in rx.split(part) if t] for rx in _ITEM_SPLIT_RES) if len(i) == len(qty)), [])
        if len(items) < 2:
            continue
        match = [_bigram_share(item, question) for item in items]
        best = max(match)
        if best > 0 and match.count(best) == 1:
            q = qty[match.index(best)]
            return q.start(), q.end()
    return None


def subject_clause(subject: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A span over several clauses cut to the one that names ``subject`` best: asked
    「那国家博士后科研站呢？」 with no earlier question, 「1家国家博士后科研站,7家省级博士创新站」 ->
    「1家国家博士后科研站」. None named: the span stays."""
    cuts = [start] + [m.end() for m in _SUBJECT_CUT_RE.finditer(text, start, end)] + [end]
    clauses = [(a, b) for a, b in pairwise(cuts) if text[a:b].strip(_SUBJECT_STRIP)]
    if len(clauses) < 2:
        return start, end
    share = [_bigram_share(text[a:b], subject) for a, b in clauses]
    if max(share) == 0:
        return start, end
    a, b = clauses[share.index(max(share))]
    return a, a + len(text[a:b].rstrip(_SUBJECT_STRIP))


_SUBJECT_CUT_RE = re.compile(r"[，,；;。！!？?\n]")
_SUBJECT_STRIP = " \t\r\n\u3000，,；;。！!？?"


def _bigram_share(item: str, question: str) -> float:
    """The share of ``item``'s Chinese bigrams found in ``question``."""
    grams = {g for run in _HAN_RE.findall(item) for g in (run[i:i + 2] for i in range(len(run) - 1))}
    return sum(g in question for g in grams) / len(grams) if grams else 0.0


def one_quantity(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A count answer narrowed to one quantity: a span over several clauses keeps the clause
    whose words (with what precedes it in its clause) best match the question (「7227家、高新
    技术企业3200家」 for 「新增高新技术企业多少家」 -> 「3200家」), and a change keeps where it
    ended (「从26.7%提高到52.1%」 -> 「52.1%」; 「从2020年的5.2万元提高到2025年的7.4万元」 ->
    「7.4万元」), also when the span holds only where it began (「21%」 of 「由21%提升至74%」). The
    first quantity left (a year before another quantity skipped) keeps a
    short noun or measure word after it that the question does not name (「5506.3万标准箱」,
    「29微克/立方米」) and is then completed by :func:`count_span`."""
    if _RATIO_RE.search(text, start, end):
        return start, end
    start, end = respective(question, text, start, end) or (start, end)
    cuts = [start] + [m.end() for m in _CLAUSE_CUT_RE.finditer(text, start, end)] + [end]
    clauses = [(a, b) for a, b in pairwise(cuts) if _NUMERAL_RE.search(text, a, b)]
    if not clauses:
        return start, end
    verb = _slot_verb(question)
    if len(clauses) > 1:
        start, end = max(clauses, key=lambda c: (bool(verb) and verb in _lead(text, c[0], c[1]),
                                                 _lead_match(text, c[0], c[1], question), -c[0]))
    elif verb and verb not in _lead(text, start, end):
        start, end = _next_saying(text, end, verb) or (start, end)
    changes = [m for m in _CHANGE_TO_RE.finditer(text, start, end) if _NUMERAL_RE.match(text, m.end())]
    if changes:
        start = changes[-1].end()
    start, end = _first_quantity(question, text, start, end)
    change = _CHANGE_TO_RE.match(text, end)
    if change and _NUMERAL_RE.match(text, change.end()) and not _ASKS_FROM_RE.search(question):
        cut = _CLAUSE_CUT_RE.search(text, change.end())  # 「由21%提升至74%」: where it ended
        return _first_quantity(question, text, change.end(), cut.start() if cut else len(text))
    return start, end


_ASKS_FROM_RE = re.compile(r"[从由](?:多少|几)")  # 「由多少提高到…」 asks where a change began


def _first_quantity(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """The first quantity of ``text[start:end]`` (a year before another quantity skipped), with
    a short noun or measure word after it that the question does not name."""
    qty = [m for rx in (_ARABIC_COUNT_RE, _CN_COUNT_RE) for m in rx.finditer(text, start, end)]
    qty = [m for m in qty if not (_BARE_YEAR_RE.fullmatch(m.group()) and any(o.start() > m.start() for o in qty))]
    if not qty:
        return start, end
    first = min(qty, key=lambda m: m.start())
    begin = first.start() - 1 if first.start() > 0 and text[first.start() - 1] == "第" else first.start()
    stop = _CLAUSE_CUT_RE.search(text, first.end(), first.end() + 12)
    stop_at = stop.start() if stop else len(text) if len(text) - first.end() <= 12 else first.end()
    tail = text[first.end():stop_at]
    qualifier = _QUALIFIER_RE.search(tail)
    tail = tail[:qualifier.start()] if qualifier else tail
    if tail and len(tail) <= 6 and not _covered(tail, question) and all(
            flag[:1] in "nqmx" for _, flag in _tag(tail)):
        return begin, first.end() + len(tail)
    return begin, first.end()


def _lead(text: str, a: int, b: int) -> str:
    """The words before a clause's first numeral, back to where its clause begins."""
    lo = max(0, a - 20)
    cuts = [m.end() for m in _CLAUSE_CUT_RE.finditer(text, lo, a)]
    num = _NUMERAL_RE.search(text, a, b)
    return text[cuts[-1] if cuts else lo:num.start() if num else b]


def _next_saying(text: str, end: int, verb: str) -> tuple[int, int] | None:
    """The clause right after ``end`` (「增长5.5%、达到10.3万亿元」) when it says ``verb`` before
    its number."""
    cut = _CLAUSE_CUT_RE.match(text, end)
    if not cut or cut.group() in "。！!？?":
        return None
    stop = _CLAUSE_CUT_RE.search(text, cut.end())
    b = stop.start() if stop else len(text)
    num = _NUMERAL_RE.search(text, cut.end(), b)
    return (cut.end(), b) if num and verb in text[cut.end():num.start()] else None


def _slot_verb(question: str) -> str:
    """The two characters just before a count question's slot (「达到多少」, 「增长多少」), unless
    a copula ends them (「是多少」, 「有多少」): the clause that says them before its number holds
    the answer (「增长5.5%、达到10.3万亿元」 for 「达到多少」)."""
    slot = lx.SLOT_RE.search(question)
    before = re.sub(r"了$", "", question[:slot.start()]) if slot else ""
    if len(before) < 2 or before[-1] in "是为有约共" or not _HAN_RE.fullmatch(before[-2:]):
        return ""
    return before[-2:]


def _lead_match(text: str, a: int, b: int, question: str) -> float:
    """How well the words before a clause's first numeral (back to where its clause begins)
    match the question: Chinese bigrams found in it, less half of those not found."""
    lead = _lead(text, a, b)
    grams = {lead[i:i + 2] for i in range(len(lead) - 1) if _HAN_RE.fullmatch(lead[i:i + 2])}
    found = sum(g in question for g in grams)
    return found - 0.5 * (len(grams) - found)


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
        per = _PER_UNIT_RE.match(text, end)
        if per and _UNIT_END_RE.search(text[start:end]):
            end = per.end()
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
