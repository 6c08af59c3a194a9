"""Finding files and reading each format into a cleaned :class:`~rag.types.Document`.

Errors are always :class:`~rag.errors.DocumentError` with the file name and the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

from rag.errors import DocumentError
from rag.types import Document

from .metadata import build_document
from .ocr import IMAGE_SUFFIXES, read_image, read_pdf
from .office import read_csv, read_doc, read_docx, read_pptx, read_xlsx
from .text import _BLOCK_TAGS, _DECLARED_CHARSET_RE, _NEWLINE_RE, _decode, require

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

# ---------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the readable files named by ``paths``, folders searched recursively.

    Folder contents come sorted by name (depth first), hidden files and Office lock files
    (``~$x.docx``) are skipped, only :data:`SUPPORTED_SUFFIXES` are kept, and each file is
    yielded once even when reachable twice. Symlinked folders are followed, but a folder
    already visited (by resolved path) is not entered again, so link loops end.
    A missing path, or a file named explicitly with an unsupported suffix, raises
    :class:`DocumentError`.
    """
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _walk(path, seen_dirs)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise DocumentError(
                    f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
                    f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
                )
            found = iter([path])
        elif path.exists():
            raise DocumentError(f"{path}: not a regular file or folder")
        else:
            raise DocumentError(f"{path} does not exist (or is a broken link); check the path")
        for file in found:
            key = file.resolve()
            if key not in seen_files:
                seen_files.add(key)
                yield file


def _walk(folder: Path, seen_dirs: set[Path]) -> Iterator[Path]:
    """Depth-first, name-sorted walk of ``folder`` that never enters a folder twice."""
    real = folder.resolve()
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        logger.warning("skipping folder %s: %s", folder, exc)
        return
    for entry in entries:
        if entry.name.startswith((".", "~$")):
            continue
        if entry.is_dir():
            yield from _walk(entry, seen_dirs)
        elif entry.is_file() and entry.suffix.lower() in SUPPORTED_SUFFIXES:
            yield entry


def read_file(path: str | Path) -> Document:
    """Read one article file into a cleaned Document; the format comes from the suffix.

    Raises :class:`DocumentError` naming the file and the reason: missing, empty, binary,
    unreadable encoding, corrupt or encrypted PDF/DOCX, scanned PDF without text, or a page
    with nothing but navigation.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix not in _READERS:
            raise DocumentError(
                f"unsupported file type {suffix or '(no suffix)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
            )
        if not path.exists():
            raise DocumentError("does not exist")
        if not path.is_file():
            raise DocumentError("not a regular file")
        if path.stat().st_size == 0:
            raise DocumentError("empty file (0 bytes)")
        return _READERS[suffix](path)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _read_txt(path: Path) -> Document:
    text, encoding = _decode(path.read_bytes())
    return build_document(text, str(path), meta={"format": "txt", "encoding": encoding})


# --- Markdown -------------------------------------------------------------------------

_FRONT_MATTER_RE = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_MD_H1_RE = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_MD_RULES = (
    (re.compile(r"<!--.*?-->", re.DOTALL), ""),  # comments
    (re.compile(r"^ {0,3}(?:```|~~~).*$", re.MULTILINE), ""),  # code fences
    (re.compile(r"^ {0,3}(?:[-*_][ \t]*){3,}$", re.MULTILINE), ""),  # horizontal rules
    (re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)"), ""),  # images
    (re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)"), r"\1"),  # links keep their text
    (re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE), r"\1"),  # headings
    (re.compile(r"^ {0,3}>[ \t]?", re.MULTILINE), ""),  # block quotes
    (re.compile(r"^[ \t]*[-*+][ \t]+", re.MULTILINE), ""),  # bullets (numbered lists stay)
    (re.compile(r"(\*\*|__)(?=\S)([^\n]+?)(?<=\S)\1"), r"\2"),  # bold
    (re.compile(r"(?<!\*)\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?!\*)"), r"\1"),  # italics
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # inline code
)


def _markdown_to_text(markdown: str) -> tuple[str, str | None, str | None]:
    """Strip Markdown markup lightly; return ``(text, title, date)`` from front matter or first ``# ``."""
    markdown = _NEWLINE_RE.sub("\n", markdown).lstrip("\ufeff")
    title = date = None
    if m := _FRONT_MATTER_RE.match(markdown):
        for key, _, value in (line.partition(":") for line in m[1].split("\n")):
            value = value.strip().strip("\"'")
            if key.strip().lower() == "title" and value:
                title = value
            elif key.strip().lower() == "date" and value:
                date = value
        markdown = markdown[m.end() :]
    if title is None and (m := _MD_H1_RE.search(markdown)):
        title = m[1]
    for pattern, replacement in _MD_RULES:
        markdown = pattern.sub(replacement, markdown)
    return markdown, title, date


def _read_md(path: Path) -> Document:
    text, encoding = _decode(path.read_bytes())
    text, title, date = _markdown_to_text(text)
    return build_document(
        text, str(path), title=title, published=date, meta={"format": "md", "encoding": encoding}
    )


# --- HTML -----------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "nav", "header", "footer", "aside",
                        "form", "svg", "iframe", "button", "select", "head"})
class _NoDiscardWarning(logging.Filter):
    """trafilatura logs ``discarding data: None`` at WARNING whenever it finds no main text
    (a 10,000-level nested page, a page of links); :func:`_read_html` then falls back to its
    own extractor, so for our users it is no warning at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("discarding data")


logging.getLogger("trafilatura.core").addFilter(_NoDiscardWarning())


_LINK_LINE_MAX = 20
_TITLE_SPLIT_RE = re.compile(r"\s+[-|–—_]\s+|_")


class _HtmlStripper(HTMLParser):
    """Fallback text extractor; also records <title>, the first <h1> and all link texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self.links: set[str] = set()
        self._skip = 0
        self._stack: list[tuple[str, list[str]]] = []  # open <title>/<h1>/<a> collecting text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag in ("title", "h1", "a"):
            self._stack.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if self._stack and self._stack[-1][0] == tag:
            text = " ".join("".join(self._stack.pop()[1]).split())
            if tag == "a" and text:
                self.links.add(text)
            elif tag == "title" and not self.title:
                self.title = text
            elif tag == "h1" and not self.h1:
                self.h1 = text

    def handle_data(self, data: str) -> None:
        for _, texts in self._stack:
            texts.append(data)
        if not self._skip:
            self.parts.append(data)


def _html_title(stripper: _HtmlStripper, extracted: str | None) -> str | None:
    """Headline: trafilatura's, else <h1>, else <title> without a trailing ' - site name'."""
    if extracted:
        return extracted
    if stripper.h1:
        return stripper.h1
    parts = [p for p in _TITLE_SPLIT_RE.split(stripper.title) if p.strip()]
    return parts[0].strip() if parts else None


def _read_html(path: Path) -> Document:
    data = path.read_bytes()
    declared = _DECLARED_CHARSET_RE.search(data[:4096])
    markup, encoding = _decode(data, declared[1].decode("ascii").lower() if declared else None)
    del data
    stripper = _HtmlStripper()
    stripper.feed(markup)
    stripper.close()
    trafilatura = require("trafilatura", "reading HTML", "trafilatura")
    extracted = None
    try:
        extracted = trafilatura.bare_extraction(
            markup, include_comments=False, favor_recall=True, with_metadata=True
        )
    except Exception as exc:  # noqa: BLE001 - any trafilatura/lxml failure: use the fallback
        logger.warning("trafilatura failed on %s (%s); using the simple extractor", path, exc)
    text = (extracted.text if extracted else None) or "".join(stripper.parts)
    # Short lines that are exactly a link text are navigation or link lists, not body.
    lines = [line for line in text.split("\n") if not (len(line.strip()) <= _LINK_LINE_MAX
                                                       and " ".join(line.split()) in stripper.links)]
    return build_document(
        "\n".join(lines),
        str(path),
        title=_html_title(stripper, extracted.title if extracted else None),
        fallback_published=extracted.date if extracted else None,  # a guess: the visible date wins
        meta={"format": "html", "encoding": encoding}
        | ({"publisher": extracted.sitename} if extracted and extracted.sitename else {}),
    )


# --- the table of readers ----------------------------------------------------------------

_READERS: dict[str, Callable[[Path], Document]] = {
    ".txt": _read_txt,
    ".md": _read_md,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".doc": read_doc,
    ".xlsx": read_xlsx,
    ".csv": read_csv,
    ".pptx": read_pptx,
    **{suffix: read_image for suffix in IMAGE_SUFFIXES},
}
SUPPORTED_SUFFIXES = tuple(_READERS)
