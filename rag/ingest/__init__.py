"""Reading documents as they come (formats, OCR, cleaning, metadata) and writing them into the store.

    text.py      bytes -> text: encodings, normalization, web boilerplate
    metadata.py  title, date, 文号, issuing authority, type; pages; build_document
    formats.py   finding files, txt md html readers, the table of readers, read_file
    ocr.py       PDF (text layer, OCR for scanned pages) and images
    office.py    docx, doc, xlsx, csv, pptx
    hashing.py   content hashes (change detection, document ids)
    ingestor.py  into the store: change detection, dedupe, prune, embedding, commits (Ingestor)

The names below load their module on first use, so that the question path, which needs
only the hashes, does not pay for the readers' imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "SUPPORTED_SUFFIXES": "formats", "iter_files": "formats", "read_file": "formats",
    "build_document": "metadata", "doc_number": "metadata", "doc_type": "metadata",
    "document_from_text": "metadata", "find_dates": "metadata", "page_of": "metadata",
    "signature": "metadata", "clean_text": "text", "decode_bytes": "text",
    "file_sha256": "hashing", "sha256_hex": "hashing", "AddReport": "ingestor", "Ingestor": "ingestor",
}
__all__ = [
    "SUPPORTED_SUFFIXES", "AddReport", "Ingestor", "build_document", "clean_text", "decode_bytes", "doc_number",
    "doc_type", "document_from_text", "file_sha256", "find_dates", "iter_files", "page_of", "read_file",
    "sha256_hex", "signature",
]

if TYPE_CHECKING:
    from .formats import SUPPORTED_SUFFIXES, iter_files, read_file
    from .hashing import file_sha256, sha256_hex
    from .ingestor import AddReport, Ingestor
    from .metadata import (
        build_document,
        doc_number,
        doc_type,
        document_from_text,
        find_dates,
        page_of,
        signature,
    )
    from .text import clean_text, decode_bytes


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
