"""PDFs and images, with OCR for pages that have no text layer.

Text-layer pages are read by pypdf; pages without one (scans) are rendered by pypdfium2
and read by RapidOCR (``rapidocr-onnxruntime``, whose wheel ships the PP-OCRv4 Chinese
detection and recognition models, so nothing is downloaded). Pages are joined with
:data:`~rag.ingest.metadata.PAGE_MARK` lines so that the document records where each page
starts (``meta["page_starts"]``) and a citation can say 「第3页」.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from rag.errors import DocumentError
from rag.types import Document

from .metadata import _LIST_MARKER_RE, PAGE_MARK, _parse_date, build_document, junk_title
from .text import _normalize, require

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# Rendering resolution for scanned pages (benchmarks/ocr.py, docs/documents.md): on clean
# renders of 9-, 10.5- and 12-pt Chinese, 100, 150 and 200 dpi all read 98.9-99.5% of the
# characters, 100 dpi at about two thirds of the CPU time. 200 is kept for the margin real
# scans (noise, stamps, skew: not measured) need; RapidOCR scales a page's long side down
# to 2,000 pixels anyway, so more than ~170 dpi on A4 buys nothing.
OCR_DPI = 200
MIN_TEXT_LAYER = 10  # a page with fewer characters of text layer is treated as a scan
_SENTENCE_END = tuple("。！？!?；;：:”」』）)")
_CJK_RE = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")

_engine = None
_engine_lock = threading.Lock()


def ocr_engine():
    """The RapidOCR engine, loaded once (its three ONNX models take ~0.4 s)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            rapidocr = require("rapidocr_onnxruntime", "reading scanned pages (OCR)", "rapidocr-onnxruntime")
            # No angle classifier: on upright pages it turned whole lines upside down, whose
            # reading then fell under the score cut (2 of a page's 24 lines lost: 94.5% of the
            # characters, 99.4% without it; docs/documents.md). A page scanned upside down is
            # not turned back.
            _engine = rapidocr.RapidOCR(use_cls=False)
        return _engine


def ocr_image(image) -> str:
    """Text of one page image (PIL image or numpy array), in reading order, one line per
    printed line. Boxes are grouped into lines by their vertical centres."""
    import numpy as np

    array = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    result, _ = ocr_engine()(array)
    boxes = []
    for box, text, _score in result or ():
        ys = [p[1] for p in box]
        boxes.append((min(ys), max(ys), min(p[0] for p in box), text))
    boxes.sort()
    lines: list[list[tuple[float, str]]] = []
    bottom = centre = -1.0
    for top, low, left, text in boxes:
        mid = (top + low) / 2
        if lines and mid < bottom and abs(mid - centre) < (low - top) / 2:
            lines[-1].append((left, text))
        else:
            lines.append([(left, text)])
            bottom, centre = low, mid
    return "\n".join(_join_words(sorted(line)) for line in lines)


def _join_words(parts: list[tuple[float, str]]) -> str:
    out = ""
    for _, text in parts:
        glue = "" if not out or _CJK_RE.match(out[-1]) or _CJK_RE.match(text[:1]) else " "
        out += glue + text
    return out


def unwrap_lines(page: str) -> str:
    """Re-join lines the layout wrapped: a near-full-width line not ending a sentence."""
    lines = [line.strip() for line in page.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return ""
    # the page's full line width: its longest line when there are too few for a percentile
    full = lengths[-1] if len(lengths) < 5 else lengths[int(0.9 * (len(lengths) - 1))]
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        if (prev and line and len(prev) >= max(10, 0.85 * full) and not prev.endswith(_SENTENCE_END)
                and not _LIST_MARKER_RE.match(line)):
            glue = "" if _CJK_RE.match(prev[-1]) or _CJK_RE.match(line[0]) else " "
            out[-1] = prev + glue + line
        else:
            out.append(line)
    return "\n".join(out)


def _progress(items: Iterable, total: int, what: str) -> Iterator:
    """Pages with a progress bar on a terminal (tqdm hides it elsewhere) and a log line each."""
    from tqdm.auto import tqdm

    for number, item in enumerate(tqdm(items, total=total, desc=f"OCR {what}", unit="page",
                                       disable=None if total > 1 else True, leave=False), 1):
        logger.info("OCR %s: page %d/%d", what, number, total)
        yield item


def _ocr_pdf_pages(path: Path, numbers: list[int], dpi: int | None = None) -> dict[int, str]:
    """OCR text of the given 0-based pages of a PDF, rendered at ``dpi`` (default: the
    module's :data:`OCR_DPI`, read at call time so that a benchmark can vary it)."""
    dpi = dpi or OCR_DPI
    pdfium = require("pypdfium2", "rendering scanned PDF pages for OCR", "pypdfium2")
    ocr_engine()  # fail before rendering when OCR is not installed
    out: dict[int, str] = {}
    pdf = pdfium.PdfDocument(str(path))
    try:
        for number in _progress(numbers, len(numbers), path.name):
            page = pdf[number]
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
            out[number] = ocr_image(image)
            page.close()
    finally:
        pdf.close()
    return out


_PDF_TITLE_JUNK_RE = re.compile(r"^Microsoft (?:Word|PowerPoint) - |\.(?:docx?|wps|pptx?)$", re.IGNORECASE)


def read_pdf(path: Path) -> Document:
    """A PDF's text layer page by page; pages without one are OCR'd."""
    pypdf = require("pypdf", "reading PDF", "pypdf")
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("encrypted PDF needs a password; save an unencrypted copy first")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on broken files
        raise DocumentError(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
    meta = {"format": "pdf", "pages": str(len(pages))}
    scanned = [i for i, text in enumerate(pages) if len(_normalize(text).replace("\n", "").replace(" ", "")) < MIN_TEXT_LAYER]
    if scanned:
        try:
            found = _ocr_pdf_pages(path, scanned)
        except DocumentError as exc:
            raise DocumentError(f"scanned PDF: no text layer on {len(scanned)} page(s); {exc}") from None
        except Exception as exc:  # noqa: BLE001 - pdfium/onnxruntime errors on odd pages
            raise DocumentError(f"scanned PDF: OCR failed ({type(exc).__name__}: {exc})") from None
        for i, text in found.items():
            if text.strip():
                pages[i] = text
        meta["ocr_pages"] = ",".join(str(i + 1) for i in scanned)
    if not any(_normalize(p).strip() for p in pages):
        raise DocumentError(f"scanned PDF: no text layer, and OCR found no text on its {len(pages)} page(s)")
    title = _PDF_TITLE_JUNK_RE.sub("", (info.title or "").strip()) if info else ""
    created = _parse_date(str(info.creation_date)) if info and info.creation_date else None
    if created:
        meta["created"] = created
    return build_document(_join_pages(pages), str(path), title=None if junk_title(title) else title,
                          meta=meta, pages=True)


def _join_pages(pages: list[str]) -> str:
    """Pages unwrapped and joined by page-marker lines (a stray marker character removed)."""
    return f"\n{PAGE_MARK}\n".join(unwrap_lines(p.replace(PAGE_MARK, "")) for p in pages)


def read_image(path: Path) -> Document:
    """A scanned page as an image (.png .jpg .tif; every frame of a multi-page TIFF)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DocumentError(f"corrupt or unreadable image ({type(exc).__name__}: {exc})") from None
    pages = [ocr_image(frame) for frame in _progress(frames, len(frames), path.name)]
    if not any(p.strip() for p in pages):
        raise DocumentError("no text found by OCR in the image")
    meta = {"format": path.suffix.lower().lstrip("."), "pages": str(len(pages)), "ocr_pages": "all"}
    return build_document(_join_pages(pages), str(path), meta=meta, pages=True)
