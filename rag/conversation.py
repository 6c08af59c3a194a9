"""Follow-up questions in a conversation: make an elliptical question stand on its own.

After 「晋中有几家省级博士创新站」 a reader asks 「那国家博士后科研站呢？」; the retriever needs
「晋中有几家国家博士后科研站」. :func:`resolve_followup` does that rewrite with a few
string rules and no model:

* **elliptical follow-ups** (「那…呢」, a short 「…呢」, 「还有…」): the phrase the user typed
  replaces the matching slot of the previous question: a place replaces the previous place
  (「那太原呢」), a time replaces the previous time (「2023年呢」), anything else replaces the
  previous question's object (the words after 「几家 / 多少」, or before 「是谁 / 有几家」);
* **short questions without a subject** (「国家博士后科研站有几家」 after a question about
  晋中): the previous question's place and time are carried over.

Anything else is returned unchanged (cleaned of surrounding blanks), so it is safe to run
on every question. The functions are pure; the web app, the CLI or a notebook can reuse them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .zh import tag_words
from .zh.lexicon import FOLLOWUP_QUESTION_RE

__all__ = ["Rewrite", "elliptical_subject", "is_followup", "resolve_followup", "rewrite_followup"]

# Lead-ins and tails that mark an elliptical follow-up.
_LEAD = re.compile(r"^(?:那么|那末|那个|那|还有|另外|以及|再问一下|再问|请问)[，,、\s]*")
_TAIL = re.compile(r"[\s？?。.!！，,、；;~～…]+$")
_PARTICLE_TAIL = re.compile(r"(?:呢|呀|啊|吗|么)+$")
_QUESTION = FOLLOWUP_QUESTION_RE  # question words; a measure word may follow 几 / 多少
# Times a follow-up may swap in: 2023年, 2023年5月, 今年, 上半年 ...
_TIME = re.compile(
    r"(?:(?:\d{2,4}|[一二三四五六七八九十〇零]{2,4})年(?:\d{1,2}月(?:份)?)?(?:上半年|下半年|底|初|末)?"
    r"|\d{1,2}月份?|今年|去年|前年|明年|上半年|下半年|本年度|上年度|近年来|近年|过去一年|上个月|本月|上月)"
)
_PLACE_SUFFIX = re.compile(r"(?:省|市|县|区|州|盟|旗|镇|乡|村|自治区|特别行政区)$")
# Words that end the subject part of a question (「…局长是谁」, 「…工作站有几家」).
_COPULA_TAIL = re.compile(r"(?:一共|总共|共计|共|总计|累计)?(?:有|是|为|在|达|达到|建有|设有)?了?$")
# Verbs that end the object part after a question word (「多少所高校开展合作」 -> 高校).
_VERB = re.compile(
    r"(?:开展|进行|参与|参加|举办|获得|获批|通过|达到|用于|实现|完成|签订|签署|达成|建成|投入|开设|"
    r"设立|建立|引进|培育|组建|选派|选聘|入选|参加|落户|合作|发布|出台)"
)
_MAX_ELLIPTICAL = 20  # characters: a 「…呢」 question longer than this is taken as complete
_MAX_SUBJECTLESS = 14


@dataclass(frozen=True)
class Rewrite:
    """A question as typed and the standalone question to answer."""

    original: str
    question: str
    rule: str = ""  # "", "replace-place", "replace-time", "replace-object", "carry-context", "append"

    @property
    def rewritten(self) -> bool:
        return self.question != self.original


@dataclass(frozen=True)
class _Token:
    word: str
    start: int
    end: int
    kind: str  # "place", "time" or ""


def resolve_followup(question: str, previous: str | None) -> str:
    """The standalone form of ``question`` given the ``previous`` (already standalone) question."""
    return rewrite_followup(question, previous).question


def is_followup(question: str, previous: str | None) -> bool:
    """Whether ``question`` leans on ``previous`` and would be rewritten."""
    return rewrite_followup(question, previous).rewritten


def rewrite_followup(question: str, previous: str | None) -> Rewrite:
    """Rewrite an elliptical follow-up using the previous question; see the module docstring."""
    original = (question or "").strip()
    prev = _core(previous or "")
    if not original or not prev:
        return Rewrite(original, original)
    body, elliptical, _ = _body(original)
    if not body:
        return Rewrite(original, original)
    has_question_word = bool(_QUESTION.search(body))
    prev_tokens = _tokens(prev)
    prev_context = [t for t in prev_tokens if t.kind]
    if elliptical and not has_question_word:
        return _replace_slot(original, body, prev, prev_tokens)
    # A short, complete question with no place or time of its own: carry the previous ones.
    short = len(body) <= _MAX_SUBJECTLESS and not _QUESTION.match(body)  # not 「什么是…」
    if (elliptical or short) and has_question_word and prev_context:
        own = _tokens(body)
        if not any(t.kind == "place" for t in own):
            carried = "".join(t.word for t in _leading_context(prev_tokens) if t.word not in body)
            if not carried:
                carried = "".join(t.word for t in prev_context if t.kind == "place" and t.word not in body)[:12]
            if carried:
                return Rewrite(original, carried + body, "carry-context")
    if elliptical:  # 「那…有几家呢」 with nothing to carry: at least drop the lead-in
        return Rewrite(original, body, "") if body != original else Rewrite(original, original)
    return Rewrite(original, original)


def elliptical_subject(question: str) -> str:
    """What a 「…呢」 question without a question word asks about (「那国家博士后科研站呢？」
    -> 「国家博士后科研站」), else ""; asked first, it is answered as it stands, and its answer
    is what the passage says of that."""
    body, elliptical, ends_ne = _body((question or "").strip())
    return body if elliptical and ends_ne and not _QUESTION.search(body) else ""


# -- helpers ----------------------------------------------------------------------------
def _body(question: str) -> tuple[str, bool, bool]:
    """The question without its lead-in (那, 还有 …) and tail particles, whether it is
    elliptical (「那…呢」, a short 「…呢」, a short 「那…」 without a question word), and
    whether it ends with 呢."""
    text = _TAIL.sub("", question)
    lead = _LEAD.match(text)
    body = text[lead.end():] if lead else text
    ends_ne = bool(re.search(r"呢$", body))
    body = _PARTICLE_TAIL.sub("", body).strip()
    has_question_word = bool(_QUESTION.search(body))
    elliptical = (lead is not None and (ends_ne or len(body) <= _MAX_ELLIPTICAL and not has_question_word)) or (
        ends_ne and len(body) <= _MAX_ELLIPTICAL
    )
    return body, elliptical, ends_ne


def _core(question: str) -> str:
    text = re.sub(r"^请问[，,\s]*", "", _TAIL.sub("", question.strip()))
    return _PARTICLE_TAIL.sub("", text).strip()


@lru_cache(maxsize=512)
def _tokens_cached(text: str) -> tuple[_Token, ...]:
    out: list[_Token] = []
    pos = 0
    for word, flag in tag_words(text):
        start = text.find(word, pos)
        if start < 0:
            start = pos
        end = start + len(word)
        pos = end
        kind = ""
        if flag == "ns" or (len(word) >= 2 and _PLACE_SUFFIX.search(word) and flag[:1] in ("n", "v")):
            kind = "place"
        out.append(_Token(word, start, end, kind))
    # times are found by pattern: jieba splits 「2024年」 in two
    for m in _TIME.finditer(text):
        inside = [t for t in out if t.start < m.end() and t.end > m.start()]
        if not inside:
            continue
        first = out.index(inside[0])
        merged = _Token(text[inside[0].start:max(m.end(), inside[-1].end)], inside[0].start,
                        max(m.end(), inside[-1].end), "time")
        out[first:first + len(inside)] = [merged]
    return tuple(out)


def _tokens(text: str) -> list[_Token]:
    return list(_tokens_cached(text))


def _leading_context(tokens: list[_Token]) -> list[_Token]:
    """Places and times at the start of a question (「2024年晋中…」), allowing 「的」 between."""
    lead: list[_Token] = []
    for t in tokens:
        if t.kind:
            lead.append(t)
        elif t.word in ("的", "、", "和", "与", "在") and lead:
            continue
        else:
            break
    return lead


def _split_context(phrase: str) -> tuple[list[_Token], str]:
    """A follow-up phrase split into its leading places/times and the rest (「太原的工作站」)."""
    tokens = _tokens(phrase)
    lead = _leading_context(tokens)
    if not lead:
        return [], phrase
    rest = phrase[lead[-1].end:]
    return lead, re.sub(r"^(?:的|在|和|与)", "", rest)


def _replace_slot(original: str, phrase: str, prev: str, prev_tokens: list[_Token]) -> Rewrite:
    context, rest = _split_context(phrase)
    out = prev
    rules: list[str] = []
    for t in context:
        same = [p for p in prev_tokens if p.kind == t.kind]
        if same:
            out = out.replace(same[0].word, t.word, 1)
        else:
            out = t.word + out
        rules.append("replace-place" if t.kind == "place" else "replace-time")
    if rest:
        slot = _object_slot(prev, prev_tokens, rest)
        if slot:
            out = out.replace(slot, rest, 1) if slot in out else out
            rules.append("replace-object")
        else:
            carried = "".join(t.word for t in _leading_context(_tokens(out)))
            out = carried + rest if carried else f"{out} {rest}"
            rules.append("append")
    return Rewrite(original, out, "+".join(rules))


def _object_slot(prev: str, tokens: list[_Token], phrase: str) -> str:
    """The part of ``prev`` that ``phrase`` stands in for."""
    context_end = max((t.end for t in _leading_context(tokens)), default=0)
    candidates: list[str] = []
    m = _QUESTION.search(prev, context_end)
    if m:
        after = prev[m.end():]
        cut = _VERB.search(after, 1)
        after = after[:cut.start()] if cut else after
        after = re.sub(r"^(?:的|个)", "", after)
        if after:
            candidates.append(after)
        before = prev[context_end:m.start()]
        before = re.sub(r"^(?:的|在)", "", before)
        before = _COPULA_TAIL.sub("", before)
        before = re.sub(r"的$", "", before)
        if before:
            candidates.append(before)
    if not candidates:
        # no question word: the longest stretch that ends with the phrase's head character
        head = phrase[-1]
        rest = prev[context_end:]
        for i in range(len(rest)):
            if rest[i] == head:
                candidates.append(rest[:i + 1].lstrip("的"))
        candidates = [c for c in candidates if c]
        if not candidates:
            return ""
    return max(candidates, key=lambda c: (_overlap(c, phrase), -candidates.index(c)))


def _overlap(a: str, b: str) -> float:
    """Character-bag F1 of two phrases, plus a bonus when they end alike (same head noun)."""
    from collections import Counter

    common = sum((Counter(a) & Counter(b)).values())
    score = 0.0 if not common else 2 * common / (len(a) + len(b))
    return score + (0.5 if a and b and a[-1] == b[-1] else 0.0)
