"""Chinese structure- and sentence-aware chunking with exact character offsets.

Policy texts are cut on their headings first: 第X编/分编/章/节/条 of laws, 一、 （一） 1.
（1） of documents, and 附件. A law's article (条) is a chunk of its own (pieces of it when
longer than ``size``), so an article is never split from its number; other short sections
are packed together up to ``size``. Every chunk carries its heading path
(「第三章 从业人员的安全生产权利义务 > 第五十二条」) for the retrievers and the citation.
Text without headings is chunked as before: a chunk is a run of whole sentences of at
most ``size`` characters; consecutive chunks share up to ``overlap`` characters of whole
sentences. A sentence longer than ``size`` is cut at clause marks (，、：) and, failing
that, at a position that does not split a number, a Latin word or a quoted/bracketed
name. Every chunk satisfies ``chunk.text == text[chunk.start:chunk.end]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .config import ChunkSettings
from .types import Chunk

# A sentence ends after 。！？；!?; (plus closing quotes/brackets) or at a line break.
_SENTENCE_END = re.compile(r"[。！？；!?;…]+[」』”’\")）】]*|\n+")
_CLAUSE_END = re.compile(r"[，,、：:]")
_OPEN = "「『“‘《（(【〔"
_CLOSE = "」』”’》）)】〕"
_WORDISH = re.compile(r"[0-9A-Za-z０-９Ａ-Ｚａ-ｚ.%％\-]")


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


def _pack(text: str, start: int, end: int, settings: ChunkSettings) -> Iterator[tuple[int, int]]:
    """Chunks of whole sentences of ``text[start:end]`` with overlap (unstructured text)."""
    units = [p for a, b in sentence_spans(text, start, end) for p in _pieces(text, a, b, settings.size)]
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1][1] - units[i][0] <= settings.size:
            j += 1
        yield units[i][0], units[j][1]
        if j + 1 >= len(units):
            break
        # next chunk starts with the trailing sentences of this one that fit in the overlap
        k = j + 1
        while k - 1 > i and units[j][1] - units[k - 1][0] <= settings.overlap:
            k -= 1
        i = k


# --- headings ------------------------------------------------------------------------------

_NUM = "[一二三四五六七八九十百千零〇两0-9]+"
ARTICLE = 4  # the level of 第X条
# (level, pattern at a line start, longest heading line); a line longer than that is text
_HEADINGS = (
    (0, re.compile(r"附件\s*\d*(?:\s*[:：]|\s|$)"), 60),
    (1, re.compile(f"第{_NUM}编(?:\\s|$)"), 50),
    (2, re.compile(f"第{_NUM}分编(?:\\s|$)"), 50),
    (3, re.compile(f"第{_NUM}章(?:\\s|$)"), 50),
    (3.5, re.compile(f"第{_NUM}节(?:\\s|$)"), 50),
    (ARTICLE, re.compile(f"第{_NUM}条(?:之[一二三四五六七八九十]+)?(?=[\\s　]|$)"), 0),
    (5, re.compile("[一二三四五六七八九十]{1,3}、"), 0),
    (6, re.compile("[（(][一二三四五六七八九十]{1,3}[）)]"), 0),
    (7, re.compile(r"\d{1,2}[.．、](?!\d)"), 0),
    (8, re.compile(r"[（(]\d{1,2}[）)]"), 0),
)
_LABEL_END = re.compile(r"[。；;：:！？!?]")
_LABEL_MAX = 30


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    path: tuple[str, ...]
    article: bool  # a 条 (never packed with its neighbours)
    bare: bool  # the heading line alone, no text under it


def _heading(line: str) -> tuple[float, str] | None:
    """``(level, label)`` when ``line`` starts with a heading, else None."""
    for level, pattern, longest in _HEADINGS:
        m = pattern.match(line)
        if m is None or (longest and len(line) > longest):
            continue
        if level == ARTICLE:
            return level, m.group().strip()
        label = line if longest else line[:_LABEL_END.search(line).start()] if _LABEL_END.search(line) else line
        label = label.strip()
        return level, label if len(label) <= _LABEL_MAX else label[:_LABEL_MAX] + "…"
    return None


def sections(text: str) -> list[_Section]:
    """The text cut at its heading lines, each part with its heading path.

    Inside an article, 一、 （一） 1. （1） are its items, not headings."""
    found: list[tuple[int, float, str]] = [(0, -1, "")]
    pos = 0
    stack: list[tuple[float, str]] = []
    for line in text.split("\n"):
        stripped = line.strip()
        head = _heading(stripped) if stripped else None
        if head is not None and not (head[0] > ARTICLE and any(lv == ARTICLE for lv, _ in stack)):
            level, label = head
            stack = [(lv, lb) for lv, lb in stack if lv < level] + [(level, label)]
            found.append((pos + len(line) - len(line.lstrip()), level, " > ".join(lb for _, lb in stack)))
        pos += len(line) + 1
    out: list[_Section] = []
    for (a, level, path), (b, _, _) in zip(found, [*found[1:], (len(text), 0, "")]):
        a, b = _strip(text, a, b)
        if a < b:
            bare = level >= 0 and "\n" not in text[a:b] and level != ARTICLE
            out.append(_Section(a, b, tuple(path.split(" > ")) if path else (), level == ARTICLE, bare))
    return out


def chunk_text(text: str, doc_id: str = "", settings: ChunkSettings | None = None) -> list[Chunk]:
    """Split ``text`` into chunks: on headings first (with ``settings.structure``), then
    into overlapping runs of whole sentences."""
    settings = settings or ChunkSettings()
    parts = sections(text) if settings.structure else []
    if not any(p.path for p in parts):
        return [Chunk(doc_id, i, text[a:b], a, b) for i, (a, b) in enumerate(_pack(text, 0, len(text), settings))]
    chunks: list[Chunk] = []

    def emit(a: int, b: int, path: tuple[str, ...]) -> None:
        heading = " > ".join(path)
        for x, y in _pack(text, a, b, settings) if b - a > settings.size else [(a, b)]:
            chunks.append(Chunk(doc_id, len(chunks), text[x:y], x, y, heading))

    group: list[_Section] = []  # short sections packed into one chunk
    for i, part in enumerate(parts):
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if part.bare and nxt is not None and nxt.path[:len(part.path)] == part.path:
            continue  # a heading alone (第三章 …) goes with the text under it
        start = part.start
        j = i
        while j > 0 and parts[j - 1].bare and part.path[:len(parts[j - 1].path)] == parts[j - 1].path:
            j -= 1
            start = parts[j].start
        part = _Section(start, part.end, part.path, part.article, False)
        if group and (part.article or part.end - group[0].start > settings.size
                      or part.path[:-1] != group[0].path[:-1]):  # only siblings share a chunk
            emit(group[0].start, group[-1].end, _common(g.path for g in group))
            group = []
        if part.article or part.end - part.start > settings.size:
            emit(part.start, part.end, part.path)
        else:
            group.append(part)
    if group:
        emit(group[0].start, group[-1].end, _common(g.path for g in group))
    return chunks


def _common(paths) -> tuple[str, ...]:
    """The longest heading path all ``paths`` start with."""
    paths = list(paths)
    out = paths[0]
    for p in paths[1:]:
        n = 0
        while n < min(len(out), len(p)) and out[n] == p[n]:
            n += 1
        out = out[:n]
    return out


def retrieval_text(title: str, chunk: str, heading: str = "") -> str:
    """What the retrievers see: the chunk with its title and heading path as context
    (「中华人民共和国安全生产法 > 第三章 … > 第三十八条」)."""
    if heading:
        return f"{title} > {heading}\n{chunk}" if title else f"{heading}\n{chunk}"
    return chunk if not title or chunk.startswith(title) else f"{title}\n{chunk}"
