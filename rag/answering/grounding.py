"""Checking a written answer against the passages it was given.

A fluent answer is only worth showing when its citations can be followed: every ``[n]``
must name a given passage, a sentence whose numbers, names or quoted terms its cited
passages lack is flagged, and a number that contradicts the extracted answer is said out
loud. Nothing here touches the network; :mod:`rag.answering.generate` runs these checks on
what the endpoint wrote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from ..types import Passage
from ..zh import jieba, pos_tags
from ..zh.lexicon import CHECKED_UNITS

__all__ = ["Unverified", "WrittenAnswer", "check_answer", "strip_citations"]


@dataclass(frozen=True)
class Unverified:
    """A sentence of the written answer that its cited passages do not back."""

    sentence: str
    missing: tuple[str, ...]  # numbers, names or quoted terms its cited passages lack
    cited: tuple[int, ...] = ()  # the valid passage numbers it cites (none: it cites nothing)

    def describe(self) -> str:
        why = f"出处中没有：{'、'.join(self.missing)}" if self.cited else "未注明出处"
        return f"「{self.sentence}」（{why}）"


@dataclass(frozen=True)
class WrittenAnswer:
    """A written answer and what checking it found. ``notice`` is one Chinese line for the
    user when something went wrong (the endpoint failed, a citation names no passage, the
    reply was cut short); ``text`` may then be empty."""

    text: str
    citations: tuple[int, ...] = ()  # valid passage numbers (1-based), in order of first use
    bad_citations: tuple[int, ...] = ()  # numbers that name no given passage
    unverified: tuple[Unverified, ...] = ()
    disagreement: str | None = None  # the extracted and the written answer differ on a number
    notice: str | None = None

    def check_lines(self) -> list[str]:
        """The checks as short Chinese lines, for the CLI and the web app."""
        lines = [f"注意：{self.notice}"] if self.notice else []
        if self.text:
            lines.append("引用：" + (" ".join(f"[{n}]" for n in self.citations) if self.citations else "无"))
        lines += [f"未核实：{u.describe()}" for u in self.unverified]
        if self.disagreement:
            lines.append(f"不一致：{self.disagreement}")
        return lines

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "bad_citations": list(self.bad_citations),
            "unverified": [{"sentence": u.sentence, "missing": list(u.missing), "cited": list(u.cited)}
                           for u in self.unverified],
            "disagreement": self.disagreement,
            "notice": self.notice,
        }


# [1] [1,2] [1、2] [1-3] 【1】 ［1］; four-digit brackets are years of document numbers (国发[2024]5号)
_CITE_RE = re.compile(r"[\[【［]\s*(\d{1,3}(?:\s*[,，、\-–~]\s*\d{1,3})*)\s*[\]】］]")
_SPLIT_AFTER_RE = re.compile(r"(?<=[。！？!?；;\n])")
_LEAD_RE = re.compile(rf"(?:\s*(?:{_CITE_RE.pattern}|[」』”’）)\]】*]))+")
_LIST_MARK_RE = re.compile(r"^\s*(?:#+\s*|\d{1,2}[.、)）]\s*|[（(]\d{1,2}[)）]\s*|[-*•]\s+)")
_WORD_RE = re.compile(r"\w")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_NUM = "[零〇一二两三四五六七八九十百千万亿]+"
_ARABIC = r"\d+(?:,\d{3}(?!\d))*(?:\.\d+)?"
_UNIT = "(?:多|余)?(" + "|".join(re.escape(u) for u in CHECKED_UNITS) + ")?"
_NUMBER_RE = re.compile(rf"({_ARABIC})\s?{_UNIT}")
_CN_NUMBER_RE = re.compile(rf"(?<![\d.])({_CN_NUM}){_UNIT}")
_QUOTED_RE = re.compile(r"《([^《》\n]{2,40})》|「([^「」\n]{2,40})」|“([^“”\n]{2,40})”|\"([^\"\n]{2,40})\"")
_NAME_TAGS = ("nr", "ns", "nt")
_ADMIN_SUFFIX = "省市县区"


class _Number(NamedTuple):
    value: str  # canonical decimal, e.g. "7", "4.5"
    unit: str
    shown: str  # as written, e.g. "7家"


def _canon(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _cn_value(run: str) -> int | None:
    """二〇二四 -> 2024, 十二 -> 12, 一亿二千万 -> 120000000; None if it is not a number
    (万 or 千 alone, as in 千家万户)."""
    if not (run[0] == "十" or any(c in _CN_DIGITS for c in run)):
        return None
    if not any(c in "十百千万亿" for c in run):
        return int("".join(str(_CN_DIGITS[c]) for c in run))
    total = section = 0
    digit: int | None = None
    for c in run:
        if c in _CN_DIGITS:
            digit = _CN_DIGITS[c]
        elif c in "十百千":
            section += (1 if digit is None else digit) * {"十": 10, "百": 100, "千": 1000}[c]
            digit = None
        elif c == "万":
            total += (section + (digit or 0)) * 10_000
            section, digit = 0, None
        else:  # 亿
            total = (total + section + (digit or 0)) * 100_000_000
            section, digit = 0, None
    return total + section + (digit or 0)


def _numbers(text: str, *, bare_chinese: bool) -> list[_Number]:
    """Arabic numbers (with the measure word after them, if any) and Chinese numerals; with
    ``bare_chinese`` False a Chinese numeral counts only before a measure word, so that the
    一 of 统一 or 进一步 is not taken for a number."""
    out = []
    for m in _NUMBER_RE.finditer(text):
        try:
            value = Decimal(m.group(1).replace(",", ""))
        except InvalidOperation:
            continue
        out.append(_Number(_canon(value), m.group(2) or "", m.group(0).strip()))
    for m in _CN_NUMBER_RE.finditer(text):
        if not (bare_chinese or m.group(2)):
            continue
        value = _cn_value(m.group(1))
        if value is not None:
            out.append(_Number(str(value), m.group(2) or "", m.group(0)))
    return out


def _stated_numbers(text: str) -> set[tuple[str, str]]:
    """(value, measure word) of every number a passage states; 10万人 also as (100000, 人)
    and 十万人 also as (10, 万人), so that the ways of writing one quantity match."""
    found = set()
    for n in _numbers(text, bare_chinese=True):
        found.add((n.value, n.unit))
        for big, scale in (("万", Decimal(10_000)), ("亿", Decimal(100_000_000))):
            if n.unit.startswith(big):  # 10万人
                found.add((_canon(Decimal(n.value) * scale), n.unit[1:]))
            elif n.shown.removesuffix(n.unit).endswith(big):  # 十万人
                found.add((_canon(Decimal(n.value) / scale), big + n.unit))
    return found


def _backed(number: _Number, stated: set[tuple[str, str]]) -> bool:
    """A number with a measure word needs the same value with that measure word (or with
    none, as in dates written 2024-10-07) in the passage: 8家 is not backed by 五届八次."""
    if number.unit:
        return (number.value, number.unit) in stated or (number.value, "") in stated
    return any(value == number.value for value, _ in stated)


def _names(text: str) -> list[str]:
    tags = pos_tags()
    seen: dict[str, None] = {}
    for word in jieba().lcut(text, HMM=False):
        if len(word) >= 2 and tags.get(word, "")[:2] in _NAME_TAGS:
            seen.setdefault(word)
    return list(seen)


def _name_in(name: str, text: str) -> bool:
    """晋中市 is backed by a passage that says 晋中."""
    short = name.rstrip(_ADMIN_SUFFIX)
    return name in text or (len(short) >= 2 and short in text)


def _fold(text: str) -> str:
    from ..textnorm import normalize

    return normalize(text)


def _sentences(text: str) -> list[str]:
    """Sentences, each keeping the citation marks and closing quotes written after its stop."""
    out: list[str] = []
    for piece in _SPLIT_AFTER_RE.split(text):
        lead = _LEAD_RE.match(piece)
        if out and lead:
            out[-1] += piece[:lead.end()]
            piece = piece[lead.end():]
        if not _WORD_RE.search(piece):
            if out:
                out[-1] += piece
            continue
        out.append(piece)
    return [s.strip() for s in out if s.strip()]


def _cited(text: str) -> list[int]:
    """The passage numbers the citation marks of ``text`` name, ranges (``[1-3]``) spelled out."""
    found = []
    for m in _CITE_RE.finditer(text):
        for part in re.split(r"\s*[,，、]\s*", m.group(1)):
            ends = [int(x) for x in re.split(r"\s*[\-–~]\s*", part)]
            lo, hi = ends[0], ends[-1]
            found.extend(range(lo, hi + 1) if 0 <= hi - lo <= 20 else (lo, hi))
    return found


def strip_citations(text: str) -> str:
    """``text`` without its citation marks: an earlier turn's ``[n]`` named other passages."""
    return _CITE_RE.sub("", text)


def check_answer(text: str, passages: Sequence[Passage], extracted: str | None = None) -> WrittenAnswer:
    """Check a written answer against the passages it was given (numbered from 1).

    Every ``[n]`` must name a given passage; a sentence stating a number, a known name or a
    quoted term is unverified when its cited passages (text, title and date) lack it, or
    when it cites none; a number of ``extracted`` (the short answer) that the written
    answer states differently is a disagreement. Nothing is removed from ``text``."""
    valid = set(range(1, len(passages) + 1))
    all_cited = list(dict.fromkeys(_cited(text)))
    grounds = [f"{p.title}\n{p.published or ''}\n{p.text}" for p in passages]
    folded = [_fold(g) for g in grounds]
    stated = [_stated_numbers(f) for f in folded]

    unverified = []
    for sentence in _sentences(text):
        cited = tuple(n for n in dict.fromkeys(_cited(sentence)) if n in valid)
        body = _fold(_LIST_MARK_RE.sub("", _CITE_RE.sub(" ", sentence)))
        numbers = _numbers(body, bare_chinese=False)
        quoted = [next(g for g in m.groups() if g) for m in _QUOTED_RE.finditer(body)]
        names = [w for w in _names(body) if not any(w in q for q in quoted)]
        if not (numbers or quoted or names):
            continue
        have_numbers = set().union(*(stated[n - 1] for n in cited)) if cited else set()
        have_text = "\n".join(folded[n - 1] for n in cited)
        missing = [n.shown for n in numbers if not _backed(n, have_numbers)]
        missing += [q for q in quoted if q not in have_text]
        missing += [w for w in names if not _name_in(w, have_text)]
        if missing or not cited:
            unverified.append(Unverified(sentence, tuple(dict.fromkeys(missing)), cited))

    bad = tuple(n for n in all_cited if n not in valid)
    notice = None
    if bad:
        notice = f"生成的回答引用了不存在的资料 {' '.join(f'[{n}]' for n in bad)}，请以下方出处为准"
    return WrittenAnswer(
        text=text,
        citations=tuple(n for n in all_cited if n in valid),
        bad_citations=bad,
        unverified=tuple(unverified),
        disagreement=_disagreement(extracted, _fold(_CITE_RE.sub(" ", text)), set().union(*stated)),
        notice=notice,
    )


def _disagreement(extracted: str | None, written: str, stated: set[tuple[str, str]]) -> str | None:
    """Say so when the written answer gives another number for what the short answer counts:
    a number of the short answer is absent from the written one, which states a number
    with the same measure word that no passage states (3家 of another sentence of the
    source is another quantity, not a rival)."""
    if not extracted:
        return None
    ours = _numbers(_fold(extracted), bare_chinese=True)
    theirs = _numbers(written, bare_chinese=False)
    for number in ours:
        if any(n.value == number.value for n in theirs):
            continue
        rivals = list(dict.fromkeys(n.shown for n in theirs if n.unit == number.unit and not _backed(n, stated)))
        if rivals:
            return (f"抽取的答案是「{extracted}」，生成的回答写的是「{'、'.join(rivals)}」，"
                    "两者不一致，请核对出处原文")
    return None
