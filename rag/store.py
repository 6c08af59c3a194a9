"""The on-disk index: FAISS vectors, BM25 rows, SQLite documents/chunks and a manifest.

Layout of an index folder::

    manifest.json        format version, model, dimension, chunking, tokenizer, generation
    gen-00000007/        one complete, immutable generation
        rows.sqlite      documents (with their cleaned text) and chunks (offsets)
        dense.faiss      vectors, id = chunk id
        bm25/            term-frequency rows, row = chunk id
    .lock                held by the one process that writes

A write builds the next generation in a temporary folder, renames it into place and
then replaces ``manifest.json`` atomically, so a crash at any moment leaves the previous
generation current and whole. Old generations are removed after the switch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import IndexCorruptError, IndexLockedError, IndexMismatchError
from .lexical import BM25Index
from typing import Self

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, published TEXT,
    meta TEXT NOT NULL, text TEXT NOT NULL, content_hash TEXT NOT NULL, file_hash TEXT,
    added_at TEXT NOT NULL, chunk_count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE INDEX IF NOT EXISTS documents_content ON documents(content_hash);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""
def rebuild_hint(index_dir: Path) -> str:
    return f"Rebuild it: remove {index_dir} (or choose another --index-dir) and run `rag index PATH`."


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def new_vector_index(dim: int):
    """An exact inner-product index with explicit ids (vectors are L2-normalized)."""
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


@dataclass
class Snapshot:
    """One loaded generation: everything a query needs, never mutated once published."""

    folder: Path
    manifest: dict
    vectors: object  # faiss index
    bm25: BM25Index
    generation: str = ""
    loaded_mtime: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def rows_path(self) -> Path:
        return self.folder / self.generation / "rows.sqlite" if self.generation else Path()

    def connect(self, readonly: bool = True) -> sqlite3.Connection:
        if not self.generation:
            con = sqlite3.connect(":memory:")
            con.executescript(_SCHEMA)
            return con
        uri = f"file:{self.rows_path}?mode=ro" if readonly else str(self.rows_path)
        con = sqlite3.connect(uri, uri=readonly, check_same_thread=False)
        return con


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is unreadable ({exc}). {rebuild_hint(folder)}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"{folder} has index format {manifest.get('format')!r}; this version reads format "
            f"{FORMAT_VERSION}. {rebuild_hint(folder)}"
        )
    return manifest


def check_model(folder: Path, manifest: dict, model_spec: str | None) -> None:
    """Opening an index with another embedding model is an error, never silent garbage."""
    if model_spec is not None and manifest.get("model") != model_spec:
        raise IndexMismatchError(
            f"{folder} was built with the model {manifest.get('model')!r} (dimension {manifest.get('dim')}), "
            f"not {model_spec!r}. Open it without --model (or with --model {manifest.get('model')}), "
            f"or rebuild: remove {folder} (or choose another --index-dir) and run "
            f"`rag index PATH --model {model_spec}`."
        )


def load_snapshot(folder: Path, manifest: dict) -> Snapshot:
    """Load the generation named by ``manifest``; a damaged file is a clear error."""
    import faiss

    gen = folder / manifest["generation"]
    rows, dense, bm25_dir = gen / "rows.sqlite", gen / "dense.faiss", gen / "bm25"
    for path in (rows, dense, bm25_dir):
        if not path.exists():
            raise IndexCorruptError(f"{path} is missing. {rebuild_hint(folder)}")
    try:
        vectors = faiss.read_index(str(dense))
    except Exception as exc:  # faiss raises RuntimeError with C++ text
        raise IndexCorruptError(f"{dense} is damaged ({str(exc).splitlines()[0]}). {rebuild_hint(folder)}") from exc
    try:
        bm25 = BM25Index.load(bm25_dir)
    except Exception as exc:
        raise IndexCorruptError(f"{bm25_dir} is damaged ({exc}). {rebuild_hint(folder)}") from exc
    snap = Snapshot(folder, manifest, vectors, bm25, manifest["generation"])
    try:
        with snap.connect() as con:
            n_chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{rows} is damaged ({exc}). {rebuild_hint(folder)}") from exc
    if vectors.d != manifest["dim"] or vectors.ntotal != n_chunks or len(bm25.live_ids()) > n_chunks:
        raise IndexCorruptError(
            f"{gen} is inconsistent ({vectors.ntotal} vectors of dimension {vectors.d}, {n_chunks} chunk rows). "
            f"{rebuild_hint(folder)}"
        )
    snap.stats = {"documents": n_docs, "chunks": n_chunks}
    snap.loaded_mtime = (folder / MANIFEST).stat().st_mtime
    return snap


def empty_snapshot(folder: Path, manifest: dict) -> Snapshot:
    bm25 = BM25Index(manifest["tokenizer"])
    snap = Snapshot(folder, manifest, new_vector_index(manifest["dim"]), bm25, "")
    snap.stats = {"documents": 0, "chunks": 0}
    return snap


def write_generation(snapshot: Snapshot, vectors, bm25: BM25Index, changes) -> Snapshot:
    """Write a new generation = ``snapshot`` + ``changes`` and make it current.

    ``changes(con)`` applies the row changes to a writable copy of the SQLite store.
    The caller holds the write lock.
    """
    import faiss

    folder = snapshot.folder
    folder.mkdir(parents=True, exist_ok=True)
    number = int(snapshot.generation.split("-")[-1]) + 1 if snapshot.generation else 1
    name = f"gen-{number:08d}"
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    con = sqlite3.connect(tmp / "rows.sqlite")
    try:
        if snapshot.generation:
            with snapshot.connect() as src:
                src.backup(con)
        con.executescript(_SCHEMA)
        with con:
            changes(con)
        n_chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    finally:
        con.close()
    faiss.write_index(vectors, str(tmp / "dense.faiss"))
    bm25.save(tmp / "bm25")
    for path in [tmp / "rows.sqlite", tmp / "dense.faiss", *sorted((tmp / "bm25").iterdir())]:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)  # leftover of a crash after rename, before manifest
    os.replace(tmp, final)
    manifest = dict(snapshot.manifest, generation=name, documents=n_docs, chunks=n_chunks,
                    updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json_atomic(folder / MANIFEST, manifest)
    _remove_old_generations(folder, keep={name, snapshot.generation})
    snap = Snapshot(folder, manifest, vectors, bm25, name, (folder / MANIFEST).stat().st_mtime)
    snap.stats = {"documents": n_docs, "chunks": n_chunks}
    return snap


def _remove_old_generations(folder: Path, keep: set[str]) -> None:
    """Drop generations older than the previous one, and temporary leftovers of crashes."""
    for path in folder.iterdir():
        if path.is_dir() and path.name.lstrip(".").startswith("gen-") and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


class WriteLock:
    """An inter-process lock on the index folder; a second writer waits, then fails clearly."""

    def __init__(self, folder: Path, timeout: float) -> None:
        from filelock import FileLock

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.timeout = timeout
        self._lock = FileLock(str(folder / ".lock"))

    def __enter__(self) -> Self:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout as exc:
            raise IndexLockedError(
                f"another process is writing {self.folder} (lock file {self.folder / '.lock'}); "
                f"waited {self.timeout:g} s. Try again when it has finished."
            ) from exc
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
