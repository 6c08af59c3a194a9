"""Reading documents as they come: formats, OCR, cleaning and metadata.

    text.py      bytes -> text: encodings, normalization, web boilerplate
    metadata.py  title, date, 文号, issuing authority, type; pages; build_document
    formats.py   finding files, txt md html readers, the table of readers, read_file
    ocr.py       PDF (text layer, OCR for scanned pages) and images
    office.py    docx, doc, xlsx, csv, pptx
"""

from .formats import SUPPORTED_SUFFIXES, iter_files, read_file
from .metadata import build_document, doc_number, doc_type, document_from_text, find_dates, page_of, signature
from .text import clean_text, decode_bytes

__all__ = [
    "SUPPORTED_SUFFIXES", "build_document", "clean_text", "decode_bytes", "doc_number", "doc_type",
    "document_from_text", "find_dates", "iter_files", "page_of", "read_file", "signature",
]
