"""Compatibility name for :mod:`rag.ingest` (reading files into cleaned Documents)."""

from rag.ingest import (
    SUPPORTED_SUFFIXES,
    clean_text,
    decode_bytes,
    document_from_text,
    iter_files,
    page_of,
    read_file,
)

__all__ = ["SUPPORTED_SUFFIXES", "clean_text", "decode_bytes", "document_from_text", "iter_files", "page_of",
           "read_file"]
