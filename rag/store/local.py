"""The local store: FAISS + BM25 arrays + SQLite in immutable generation folders.

The files, their crash safety and the write errors are :mod:`rag.store.generations`; this
module is the :class:`~rag.store.base.IndexStore` over them: it follows the generation the
manifest names (another process may write one), holds the write lock, turns a
:class:`~rag.store.base.Batch` into the next generation, and answers a request from the one
generation it started with (:class:`LocalView`), whose rows stay readable through an open
connection even after a newer write removed its folder.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from ..retrieval import top_positive
from ..types import Document
from .base import Batch, KnownDocument, StoredChunk, recorded_settings
from .generations import (
    FORMAT_VERSION,
    MANIFEST,
    Snapshot,
    WriteLock,
    empty_snapshot,
    has_headings,
    load_snapshot,
    read_manifest,
    rebuild_hint,
    search_vectors,
    write_generation,
)


def content_hash(text: str) -> str:
    """The hash that finds a document's twin (same text under another name)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LocalView:
    """One loaded generation, read for one request."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self._last: tuple[str, np.ndarray] | None = None  # BM25 scores of the last question

    def chunk_count(self) -> int:
        return int(self.snap.stats.get("chunks", 0))

    def dense_top_k(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.snap.vectors
        if vectors.ntotal == 0 or k < 1:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = search_vectors(vectors, query[None, :], min(k, vectors.ntotal))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def _bm25_all(self, question: str) -> np.ndarray:
        """BM25 scores of every row, kept for the next call of the same request (the local
        store's matrix product is cheapest for all rows at once; no caller sees them)."""
        last = self._last
        if last is None or last[0] != question:
            last = self._last = (question, self.snap.bm25.scores(question))
        return last[1]

    def lexical_top_k(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self._bm25_all(question)
        ids = top_positive(scores, k).astype(np.int64)
        return ids, scores[ids]

    def dense_scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        if len(ids) == 0:
            return np.zeros(0, np.float32)
        return self.snap.vectors.reconstruct_batch(ids) @ np.asarray(query, np.float32)

    def lexical_scores(self, question: str, ids: np.ndarray) -> np.ndarray:
        scores = self._bm25_all(question)
        ids = np.asarray(ids, np.int64)
        out = np.zeros(len(ids), scores.dtype)
        inside = (ids >= 0) & (ids < len(scores))
        out[inside] = scores[ids[inside]]
        return out

    def query_evidence(self, question: str, ids: Sequence[int]) -> tuple[float, np.ndarray]:
        return self.snap.bm25.query_evidence(question, np.asarray(list(ids), np.int64))

    def missing_words(self, question: str) -> tuple[list[str], list[str], int]:
        return self.snap.bm25.missing_words(question)

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        ids = [int(i) for i in ids]
        if not ids or not self.snap.generation:
            return {}
        with damaged_rows(self.snap), self.snap.connect() as con:
            heading = "c.heading" if has_headings(con) else "''"  # indexes written before headings
            rows = con.execute(
                f'SELECT c.id, c.doc_id, c.start, c."end", d.title, d.source, d.published, {heading}, d.meta, '
                'substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c JOIN documents d ON d.id = c.doc_id '
                f"WHERE c.id IN ({','.join('?' * len(ids))})", ids).fetchall()
        metas: dict[str, dict] = {}
        out = {}
        for cid, doc_id, start, end, title, source, published, head, meta, text in rows:
            if doc_id not in metas:
                metas[doc_id] = json.loads(meta) if meta else {}
            out[cid] = StoredChunk(cid, doc_id, start, end, text, title, source, published, head, metas[doc_id])
        return out


@contextmanager
def damaged_rows(snap: Snapshot) -> Iterator[None]:
    """A damaged SQLite page met by a query is an IndexCorruptError naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{snap.rows_path} is damaged ({exc}). {rebuild_hint(snap.folder)}") from exc


class LocalStore:
    """The index in a folder (see :mod:`rag.store.generations` for its layout)."""

    def __init__(self, folder: str | os.PathLike, lock_timeout: float = 600.0) -> None:
        self.folder = Path(folder)
        self.where = str(self.folder)
        self.lock_timeout = lock_timeout
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._base: Snapshot | None = None  # the generation a write builds on (while writing)
        manifest = read_manifest(self.folder)
        self._snap: Snapshot | None = load_snapshot(self.folder, manifest) if manifest is not None else None

    # -- state -------------------------------------------------------------------------
    def current(self) -> Snapshot | None:
        """The latest published generation, reloaded when another process wrote one."""
        try:
            mtime = (self.folder / MANIFEST).stat().st_mtime
        except FileNotFoundError:
            return self._snap
        snap = self._snap
        if snap is None or mtime != snap.loaded_mtime:
            with self._read_lock:
                snap = self._snap
                if snap is None or mtime != snap.loaded_mtime:
                    snap = self._load_latest(snap, mtime)
                    self._snap = snap
        return snap

    def _load_latest(self, snap: Snapshot | None, mtime: float) -> Snapshot:
        """Load the generation the manifest names. A writer may replace it while we read;
        then the manifest has moved on and we follow it.

        ``mtime`` is the manifest's time stamp seen *before* reading it: recording a later
        one could pair a newer manifest's time with an older generation, which would then
        never be reloaded."""
        for attempt in range(3):
            manifest = read_manifest(self.folder)
            if snap is not None and manifest["generation"] == snap.generation:
                snap.loaded_mtime = mtime
                return snap
            try:
                new = load_snapshot(self.folder, manifest)
                new.loaded_mtime = mtime
                return new
            except IndexCorruptError:
                if attempt == 2 or read_manifest(self.folder)["generation"] == manifest["generation"]:
                    raise
        raise AssertionError("unreachable")

    def settings(self) -> dict | None:
        snap = self._base or self.current()
        return recorded_settings(snap.manifest) if snap is not None else None

    def view(self) -> LocalView | None:
        snap = self.current()
        return LocalView(snap) if snap is not None else None

    def manifest(self) -> dict | None:
        snap = self.current()
        return snap.manifest if snap is not None else None

    # -- writing -----------------------------------------------------------------------
    @contextmanager
    def writing(self, settings: dict) -> Iterator[None]:
        with self._write_lock, WriteLock(self.folder, self.lock_timeout):
            snap = self.current()
            if snap is None:
                manifest = {"format": FORMAT_VERSION, **recorded_settings(settings), "generation": ""}
                snap = empty_snapshot(self.folder, manifest)
            self._base = snap
            try:
                yield
            finally:
                self._base = None

    def _writing_base(self) -> Snapshot:
        if self._base is None:
            raise RuntimeError("call inside `with store.writing(settings):`")
        return self._base

    def known_documents(self) -> list[KnownDocument]:
        snap = self._writing_base()
        with damaged_rows(snap), snap.connect() as con:
            rows = con.execute("SELECT id, source, file_hash, content_hash FROM documents").fetchall()
        return [KnownDocument(*row) for row in rows]

    def find_document(self, ref: str) -> str | None:
        snap = self._base or self.current()
        if snap is None or not snap.generation:
            return None
        with damaged_rows(snap), snap.connect() as con:
            row = con.execute("SELECT id FROM documents WHERE id = ? OR source = ?", (ref, ref)).fetchone()
        return row[0] if row else None

    def commit(self, batch: Batch) -> list[int]:
        """Write the next generation = the current one + ``batch``; new chunk ids follow the
        highest id ever used (ids are never reused, so a BM25 row is a chunk id)."""
        import faiss

        snap = self._writing_base()
        vectors = faiss.clone_index(snap.vectors)
        bm25 = copy.copy(snap.bm25)
        with damaged_rows(snap), snap.connect() as con:
            old_ids = np.array([r[0] for doc_id in batch.remove
                                for r in con.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))], np.int64)
        if len(old_ids):
            vectors.remove_ids(old_ids)
            bm25.remove(old_ids)
        new_ids = np.arange(bm25.size, bm25.size + len(batch.chunks), dtype=np.int64)
        if len(new_ids):
            vectors.add_with_ids(np.asarray(batch.vectors, np.float32), new_ids)
            bm25.add(new_ids, [c.text for c in batch.chunks])
        now = time.strftime("%Y-%m-%dT%H:%M:%S")

        def changes(con: sqlite3.Connection) -> None:
            for doc_id in batch.remove:
                con.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
                con.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
            counts: dict[str, int] = {}
            for c in batch.chunks:
                counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
            con.executemany(
                "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(d.doc_id, d.title, d.source, d.published, json.dumps(dict(d.meta or {}), ensure_ascii=False),
                  d.text, content_hash(d.text), fh, now, counts.get(d.doc_id, 0)) for d, fh in batch.documents])
            con.executemany(
                'INSERT INTO chunks (id, doc_id, idx, start, "end", heading) VALUES (?,?,?,?,?,?)',
                [(int(i), c.doc_id, c.index, c.start, c.end, c.heading) for i, c in zip(new_ids, batch.chunks)])

        self._base = self._snap = write_generation(snap, vectors, bm25, changes)
        return new_ids.tolist()

    # -- the catalogue -----------------------------------------------------------------
    def documents(self) -> list[dict]:
        snap = self.current()
        if snap is None or not snap.generation:
            return []
        with damaged_rows(snap), snap.connect() as con:
            rows = con.execute(
                "SELECT id, title, source, published, chunk_count, added_at FROM documents ORDER BY added_at, source"
            ).fetchall()
        keys = ("doc_id", "title", "source", "published", "chunks", "added_at")
        return [dict(zip(keys, r)) for r in rows]

    def document(self, doc_id: str) -> Document | None:
        snap = self.current()
        if snap is None or not snap.generation:
            return None
        with damaged_rows(snap), snap.connect() as con:
            row = con.execute(
                "SELECT title, text, source, published, meta, id FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return Document(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5]) if row else None

    def stats(self) -> dict:
        snap = self.current()
        size = sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file()) if self.folder.exists() else 0
        return {
            "documents": snap.stats.get("documents", 0) if snap else 0,
            "chunks": snap.stats.get("chunks", 0) if snap else 0,
            "bytes": size,
            "updated_at": snap.manifest.get("updated_at") if snap else None,
        }
