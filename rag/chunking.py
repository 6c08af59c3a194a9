"""Chinese sentence-aware chunking with overlap and exact character offsets.

A chunk is a run of whole sentences of at most ``size`` characters; consecutive chunks
share up to ``overlap`` characters of whole sentences. A sentence longer than ``size`` is
cut at clause marks (，、：) and, failing that, at a position that does not split a number,
a Latin word or a quoted/bracketed name. Every chunk satisfies
``chunk.text == text[chunk.start:chunk.end]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .types import Chunk

# A sentence ends after 。！？；!?; (plus closing quotes/brackets) or at a line break.
_SENTENCE_END = re.compile(r"[。！？；!?;…]+[」』”’\")）】]*|\n+")
_CLAUSE_END = re.compile(r"[，,、：:]")
_OPEN = "「『“‘《（(【〔"
_CLOSE = "」』”’》）)】〕"
_WORDISH = re.compile(r"[0-9A-Za-z０-９Ａ-Ｚａ-ｚ.%％\-]")


@dataclass(frozen=True)
class ChunkSettings:
    size: int = 300
    overlap: int = 60

    def __post_init__(self) -> None:
        if self.size < 20:
            raise ValueError("chunk size must be at least 20 characters")
        if not 0 <= self.overlap < self.size:
            raise ValueError("chunk overlap must be between 0 and the chunk size")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Offsets of the sentences of ``text[start:end]``, whitespace-trimmed, none empty."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        stop = m.start() if m.group().startswith("\n") else m.end()
        spans.append((pos, stop))
        pos = m.end()
    spans.append((pos, end))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s[0] < s[1]]


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _safe_cut(text: str, a: int, b: int) -> int:
    """A cut point in the second half of (a, b] that splits no number or Latin word and,
    where possible, no bracketed or quoted name."""

    def splits_word(cut: int) -> bool:
        return cut < len(text) and bool(_WORDISH.match(text[cut - 1]) and _WORDISH.match(text[cut]))

    def inside_brackets(cut: int) -> bool:
        piece = text[a:cut]
        return sum(piece.count(c) for c in _OPEN) > sum(piece.count(c) for c in _CLOSE)

    candidates = range(b, a + (b - a) // 2, -1)
    for cut in candidates:
        if not splits_word(cut) and not inside_brackets(cut):
            return cut
    return next((cut for cut in candidates if not splits_word(cut)), b)


def _pieces(text: str, a: int, b: int, size: int) -> Iterator[tuple[int, int]]:
    """Split one sentence span into pieces of at most ``size`` characters."""
    while b - a > size:
        limit = a + size
        cut = None
        for m in _CLAUSE_END.finditer(text, a + size // 2, limit):
            cut = m.end()
        if cut is None:
            cut = _safe_cut(text, a, limit)
        yield _strip(text, a, cut)
        a = _strip(text, cut, b)[0]
    if a < b:
        yield a, b


def chunk_text(text: str, doc_id: str = "", settings: ChunkSettings | None = None) -> list[Chunk]:
    """Split ``text`` into overlapping chunks of whole sentences."""
    settings = settings or ChunkSettings()
    units = [p for a, b in sentence_spans(text) for p in _pieces(text, a, b, settings.size)]
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1][1] - units[i][0] <= settings.size:
            j += 1
        start, end = units[i][0], units[j][1]
        chunks.append(Chunk(doc_id, len(chunks), text[start:end], start, end))
        if j + 1 >= len(units):
            break
        # next chunk starts with the trailing sentences of this one that fit in the overlap
        k = j + 1
        while k - 1 > i and end - units[k - 1][0] <= settings.overlap:
            k -= 1
        i = k
    return chunks
