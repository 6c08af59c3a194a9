"""The store protocol: what the knowledge base needs from wherever its index lives.

A store holds documents, their chunks (offsets, heading path), one dense vector and one
set of BM25 terms per chunk. It assigns chunk ids itself. Writes arrive as one
:class:`Batch` (documents to drop, documents and chunks to add) and become visible to
readers all at once or not at all. Reads go through a :class:`StoreView`, one consistent
state of the store for one request; retrieval asks a view for the top ``k`` of each side
and for the scores of given chunk ids, never for the score of every row, so that a store
on a cluster can answer the same calls.

Implementations: :mod:`rag.store.local` (FAISS + BM25 arrays + SQLite in generation
folders, the default) and :mod:`rag.store.milvus` (Milvus or Milvus Lite through pymilvus).
``tests/test_store_conformance.py`` is the suite every implementation passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..config import VECTOR_INDEX_KEY
from ..types import Document

SETTINGS_KEYS = ("model", "dim", "chunking", "tokenizer")  # what every index records about how it was built


def recorded_settings(source: dict) -> dict:
    """The settings an index records, taken from ``source`` (a manifest, or the settings a
    writer gives): :data:`SETTINGS_KEYS`, and the vector index's settings where given (an
    index written before they were recorded lacks them, and is built with the defaults)."""
    settings = {key: source[key] for key in SETTINGS_KEYS}
    if VECTOR_INDEX_KEY in source:
        settings[VECTOR_INDEX_KEY] = source[VECTOR_INDEX_KEY]
    return settings


@dataclass(frozen=True)
class ChunkRow:
    """One chunk of a document to be added: where it sits in the document's text, its
    heading path, and the text both retrievers see (title and heading in front)."""

    doc_id: str
    index: int
    start: int
    end: int
    heading: str
    text: str


@dataclass
class Batch:
    """One commit: the documents whose rows go (replaced or removed), then the documents
    and chunks that come, with one vector per chunk (L2-normalized float32)."""

    remove: list[str] = field(default_factory=list)
    documents: list[tuple[Document, str | None]] = field(default_factory=list)  # (document, file hash)
    chunks: list[ChunkRow] = field(default_factory=list)
    vectors: np.ndarray | None = None  # (len(chunks), dim)

    def __bool__(self) -> bool:
        return bool(self.remove or self.documents)


@dataclass(frozen=True)
class KnownDocument:
    """What change detection needs of a stored document."""

    doc_id: str
    source: str
    file_hash: str | None
    content_hash: str


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back for a passage: its text and its document's fields."""

    chunk_id: int
    doc_id: str
    start: int
    end: int
    text: str
    title: str
    source: str
    published: str | None
    heading: str
    meta: dict


@runtime_checkable
class StoreView(Protocol):
    """One consistent state of a store, for the calls of one request."""

    def chunk_count(self) -> int: ...

    def dense_top_k(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, cosine scores) of the ``k`` nearest chunks, best first."""

    def lexical_top_k(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, BM25 scores) of the ``k`` best chunks with a positive score, best first."""

    def dense_scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The exact cosine of ``query`` with each chunk in ``ids`` (0 for an unknown id)."""

    def lexical_scores(self, question: str, ids: np.ndarray) -> np.ndarray:
        """The BM25 score of each chunk in ``ids`` for ``question`` (0 where no term matches)."""

    def query_evidence(self, question: str, ids: Sequence[int]) -> tuple[float, np.ndarray]:
        """(share of the question's term weight the index knows, share each chunk holds):
        see :meth:`rag.lexical.BM25Index.query_evidence`."""

    def missing_words(self, question: str) -> tuple[list[str], list[str], int]:
        """The question's content words that occur nowhere: see :meth:`rag.lexical.BM25Index.missing_words`."""

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """The chunks ``ids`` that this state holds, by id."""


@runtime_checkable
class IndexStore(Protocol):
    """Where an index lives. ``where`` names it in messages (a folder, a URI)."""

    where: str

    def settings(self) -> dict | None:
        """model, dim, chunking and tokenizer of a written index; None before the first commit."""

    def view(self) -> StoreView | None:
        """The current state for one request; None while nothing was ever committed."""

    def writing(self, settings: dict) -> AbstractContextManager[None]:
        """Hold the store's write lock; ``settings`` are written with the first commit."""

    def known_documents(self) -> list[KnownDocument]:
        """Every stored document (call while writing)."""

    def find_document(self, ref: str) -> str | None:
        """The id of the document whose id or source is ``ref``."""

    def commit(self, batch: Batch) -> list[int]:
        """Apply ``batch`` all at once (while writing); returns the new chunks' ids. A failed
        commit raises (IndexWriteError for the local store) and leaves the previous state."""

    def documents(self) -> list[dict]:
        """One row per document: doc_id, title, source, published, chunks, added_at."""

    def document(self, doc_id: str) -> Document | None: ...

    def stats(self) -> dict:
        """documents, chunks, bytes (on disk, where known) and updated_at."""
