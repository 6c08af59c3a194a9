"""Office formats: Word (.docx, old .doc), spreadsheets (.xlsx, .csv) and slides (.pptx).

A spreadsheet row becomes one line that names its place and its header, 「表1 第5行：项目：
省级博士创新站；数量：7家」, so a passage cites its sheet and row and reads on its own.
Slides are pages: a citation's 「第3页」 is the third slide.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from rag.errors import DocumentError
from rag.types import Document

from .metadata import PAGE_MARK, build_document, junk_title
from .text import _decode, require

MAX_ROWS = 200_000  # per file: a larger sheet is data, not an article


def _docx_lines(doc: object) -> Iterator[str]:
    """Paragraphs and table rows (cells joined by spaces) in document order."""
    for block in doc.iter_inner_content():  # type: ignore[attr-defined]
        if hasattr(block, "rows"):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:  # merged cells repeat: keep one
                    text = " ".join(cell.text.split())
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                yield " ".join(cells)
        else:
            yield block.text


def read_docx(path: Path) -> Document:
    docx = require("docx", "reading Word files", "python-docx")
    with path.open("rb") as fh:
        if fh.read(4) == b"\xd0\xcf\x11\xe0":
            return read_doc(path)  # an old binary Word file named .docx
    try:
        doc = docx.Document(str(path))
        text = "\n".join(_docx_lines(doc))
        props = doc.core_properties
        title, created = (props.title or "").strip(), props.created
    except Exception as exc:  # noqa: BLE001 - zip, XML and package errors from python-docx
        raise DocumentError(f"corrupt or unreadable Word file ({type(exc).__name__}: {exc})") from None
    meta = {"format": "docx"}
    if created:
        meta["created"] = created.strftime("%Y-%m-%d")
    return build_document(text, str(path), title=None if junk_title(title) else title, meta=meta)


def read_doc(path: Path) -> Document:
    """Old binary Word (97-2003) through Debian's antiword, else catdoc."""
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"PK\x03\x04"):
        raise DocumentError("a .docx (zip) file named .doc; rename it to .docx")
    if not magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise DocumentError("corrupt or unreadable Word file (not a Word 97-2003 document)")
    tools = [(["antiword", "-m", "UTF-8.txt", "-w", "0"], "antiword"), (["catdoc", "-d", "utf-8", "-w"], "catdoc")]
    available = [(cmd, name) for cmd, name in tools if shutil.which(cmd[0])]
    if not available:
        raise DocumentError("reading old Word (.doc) files needs antiword or catdoc: "
                            "apt-get install antiword (or save the file as .docx)")
    errors = []
    for cmd, name in available:
        result = subprocess.run([*cmd, str(path)], capture_output=True, timeout=120, check=False)
        text = result.stdout.decode("utf-8", errors="replace")
        if result.returncode == 0 and text.strip():
            return build_document(text, str(path), meta={"format": "doc", "converter": name})
        errors.append(f"{name}: {result.stderr.decode('utf-8', 'replace').strip() or 'no text'}")
    raise DocumentError(f"corrupt or unreadable Word file ({'; '.join(errors)})")


# --- tables -----------------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if hasattr(value, "strftime"):
        text = value.strftime("%Y-%m-%d %H:%M") if getattr(value, "hour", 0) or getattr(value, "minute", 0) \
            else value.strftime("%Y-%m-%d")
        return text
    return " ".join(str(value).split())


def table_lines(rows: Iterable[Iterable[object]], place: str = "") -> Iterator[str]:
    """One line per data row, 「{place}第N行：表头：值；…」, N counted as the sheet shows it.

    The first non-empty row is the header; a row with a blank header cell uses 「第K列」."""
    header: list[str] | None = None
    for number, row in enumerate(rows, 1):
        if number > MAX_ROWS:
            raise DocumentError(f"more than {MAX_ROWS:,} rows; split the table or export the part to index")
        cells = [_cell(v) for v in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        names = header + [""] * (len(cells) - len(header))
        pairs = [f"{name or f'第{k}列'}：{value}" for k, (name, value) in enumerate(zip(names, cells), 1) if value]
        yield f"{place}第{number}行：" + "；".join(pairs)


def read_xlsx(path: Path) -> Document:
    """Every sheet, row by row with its header; sheets are named in each row's place."""
    openpyxl = require("openpyxl", "reading Excel files", "openpyxl")
    try:
        book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip and XML errors
        raise DocumentError(f"corrupt or unreadable Excel file ({type(exc).__name__}: {exc})") from None
    try:
        lines = [line for sheet in book.worksheets
                 for line in table_lines(sheet.iter_rows(values_only=True), f"{sheet.title} ")]
        title = (book.properties.title or "").strip()
    finally:
        book.close()
    if not lines:
        raise DocumentError("no rows with data below a header row")
    return build_document("\n".join(lines), str(path), title=title if not junk_title(title) else path.stem,
                          meta={"format": "xlsx"}, header=False)


def read_csv(path: Path) -> Document:
    """A CSV file (any encoding :func:`~rag.ingest.text.decode_bytes` reads; , ; tab or |)."""
    text, encoding = _decode(path.read_bytes())
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        lines = list(table_lines(csv.reader(io.StringIO(text), dialect)))
    except csv.Error as exc:
        raise DocumentError(f"unreadable CSV ({exc})") from None
    if not lines:
        raise DocumentError("no rows with data below a header row")
    return build_document("\n".join(lines), str(path), title=path.stem,
                          meta={"format": "csv", "encoding": encoding}, header=False)


# --- slides -----------------------------------------------------------------------------


def read_pptx(path: Path) -> Document:
    """Slide by slide (text boxes, then tables, then notes); each slide is a page."""
    pptx = require("pptx", "reading PowerPoint files", "python-pptx")
    try:
        deck = pptx.Presentation(str(path))
        slides = ["\n".join(_slide_lines(slide)).replace(PAGE_MARK, "") for slide in deck.slides]
        title = (deck.core_properties.title or "").strip()
    except Exception as exc:  # noqa: BLE001 - zip and XML errors
        raise DocumentError(f"corrupt or unreadable PowerPoint file ({type(exc).__name__}: {exc})") from None
    if not any(s.strip() for s in slides):
        raise DocumentError("no text on any slide")
    return build_document(f"\n{PAGE_MARK}\n".join(slides), str(path), title=None if junk_title(title) else title,
                          meta={"format": "pptx", "pages": str(len(slides))}, pages=True)


def _slide_lines(slide) -> Iterator[str]:
    for shape in sorted(slide.shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.has_text_frame:
            yield from (p.text for p in shape.text_frame.paragraphs)
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield from table_lines([cell.text for cell in row.cells] for row in shape.table.rows)
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        yield slide.notes_slide.notes_text_frame.text
