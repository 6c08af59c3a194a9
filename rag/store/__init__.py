"""Where the index lives: the :class:`IndexStore` protocol and its implementations.

``open_store(uri, folder)`` picks one: ``local`` (the default: the index folder, FAISS +
BM25 + SQLite generations, :mod:`rag.store.local`), a path ending in ``.db`` (Milvus Lite)
or ``http(s)://host:port`` (a Milvus server; its token from the environment variable
``MILVUS_TOKEN``), both :mod:`rag.store.milvus`, which needs the ``scale`` extra.

The old ``rag.store`` names (the generation files of the local store) are still here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RagError
from .base import Batch, ChunkRow, IndexStore, KnownDocument, StoredChunk, StoreView
from .generations import (
    FORMAT_VERSION,
    MANIFEST,
    Snapshot,
    WriteLock,
    check_model,
    empty_snapshot,
    fit_vector_index,
    has_headings,
    ivf_lists,
    load_snapshot,
    new_vector_index,
    read_manifest,
    rebuild_hint,
    search_vectors,
    vector_index_kind,
    write_error,
    write_generation,
    write_json_atomic,
)
from .local import LocalStore, LocalView

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "Batch",
    "ChunkRow",
    "IndexStore",
    "KnownDocument",
    "LocalStore",
    "LocalView",
    "Snapshot",
    "StoreView",
    "StoredChunk",
    "WriteLock",
    "check_model",
    "empty_snapshot",
    "fit_vector_index",
    "has_headings",
    "is_local",
    "ivf_lists",
    "load_snapshot",
    "new_vector_index",
    "open_store",
    "read_manifest",
    "rebuild_hint",
    "search_vectors",
    "vector_index_kind",
    "write_error",
    "write_generation",
    "write_json_atomic",
]


def is_local(uri: str | None) -> bool:
    return uri in (None, "", "local")


def open_store(uri: str | None, folder: str | os.PathLike = "index", lock_timeout: float = 600.0) -> IndexStore:
    """The store ``uri`` names: ``local`` (or None) is the index folder ``folder``; a path
    ending in ``.db`` is a Milvus Lite file; ``http(s)://host:port`` a Milvus server."""
    if is_local(uri):
        return LocalStore(folder, lock_timeout)
    uri = str(uri)
    if uri.endswith(".db") or uri.startswith(("http://", "https://")):
        try:
            from .milvus import MilvusStore
        except ImportError as exc:
            raise RagError(f"the Milvus store needs pymilvus and milvus-lite ({exc}): pip install -e '.[scale]'") from exc

        return MilvusStore(uri, lock_timeout=lock_timeout)
    raise RagError(
        f"unknown store {uri!r}: use `local` (the index folder), a Milvus Lite file ending in .db "
        f"(for example {Path('index.db')}), or a Milvus server as http://host:19530"
    )
