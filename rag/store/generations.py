"""The on-disk index: FAISS vectors, BM25 rows, SQLite documents/chunks and a manifest.

Layout of an index folder::

    manifest.json        format version, model, dimension, chunking, tokenizer, vector index
                         settings and kind, generation
    gen-00000007/        one complete, immutable generation
        rows.sqlite      documents (with their cleaned text) and chunks (offsets)
        dense.faiss      vectors, id = chunk id
        bm25/            term-frequency rows, row = chunk id
    .lock                held by the one process that writes

A write builds the next generation in a temporary folder, renames it into place and
then replaces ``manifest.json`` atomically, so a crash at any moment leaves the previous
generation current and whole. Old generations are removed after the switch. A write that
fails (disk full, file-size limit, permission, read-only disk, I/O error) removes what it
wrote and raises :class:`IndexWriteError`; the previous generation stays current.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np

from ..config import VectorIndexSettings
from ..errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexWriteError
from ..lexical import BM25Index

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
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, heading TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a copied older generation's rows up to the current schema: indexes written
    before chunks had a heading path get the column (empty for their chunks)."""
    columns = {row[1] for row in con.execute("PRAGMA table_info(chunks)")}
    if "heading" not in columns:
        con.execute("ALTER TABLE chunks ADD COLUMN heading TEXT NOT NULL DEFAULT ''")


def has_headings(con: sqlite3.Connection) -> bool:
    """Whether a generation's chunks table has the heading column (older ones lack it and
    are read as they are, never written in place)."""
    return any(row[1] == "heading" for row in con.execute("PRAGMA table_info(chunks)"))
# Test hook for the crash tests (docs/reliability.md): RAG_TEST_CRASH_AT="point" or "point:n"
# kills this process with SIGKILL at ``point`` of its n-th generation write (default: the
# first). Points, in order: rows-written, before-rename, after-rename, after-manifest.
# Read once at import; when unset each point costs one comparison with None.
_CRASH_AT = os.environ.get("RAG_TEST_CRASH_AT") or None
_crash_writes = 0


def _crash_point(point: str) -> None:
    name, _, nth = _CRASH_AT.partition(":")
    if name == point and _crash_writes == int(nth or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def rebuild_hint(index_dir: Path) -> str:
    return f"Rebuild it: remove {index_dir} (or choose another --index-dir) and run `rag index PATH`."


_AGAIN = "then run the command again"
_FREE = f"Free space on that disk (or choose another --index-dir), {_AGAIN}."
_WRITE_ERRNOS = {  # errno: (what happened, what to do); "{folder}" is filled in
    errno.ENOSPC: ("the disk is full", _FREE),
    errno.EDQUOT: ("the disk quota is used up", _FREE),
    errno.EFBIG: ("a file would exceed the file-size limit", f"Raise the limit (ulimit -f unlimited), {_AGAIN}."),
    errno.EACCES: ("permission denied",
                   f"Make {{folder}} writable for this user (or choose another --index-dir), {_AGAIN}."),
    errno.EROFS: ("the disk is read-only", f"Choose an --index-dir on a writable disk, {_AGAIN}."),
    errno.EIO: ("an input/output error (the disk may be failing or gone)",
                f"Check the disk (for example with dmesg), {_AGAIN}."),
}
_WRITE_ERRNOS[errno.EPERM] = _WRITE_ERRNOS[errno.EACCES]
_SQLITE_ERRNOS = {"database or disk is full": errno.ENOSPC, "disk I/O error": errno.EIO,
                  "attempt to write a readonly database": errno.EACCES, "unable to open database file": errno.EACCES}


def _failure_errno(exc: BaseException) -> int | None:
    """The errno behind a failed write: OSError carries it, SQLite has its own words."""
    if isinstance(exc, OSError):
        return exc.errno
    return next((code for words, code in _SQLITE_ERRNOS.items() if words in str(exc)), None)


def write_error(folder: Path, path: Path, exc: BaseException) -> IndexWriteError:
    """One line for a failed write: what happened, to which file, and what to do."""
    import resource

    code = _failure_errno(exc)
    what, advice = _WRITE_ERRNOS.get(code, (None, f"Check that disk, {_AGAIN}."))
    detail = " ".join(str(exc).split())[:300]
    what = what or detail or type(exc).__name__
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if fsize != resource.RLIM_INFINITY and code in (errno.EFBIG, errno.EIO, None):
        # SQLite reports a file-size limit as a plain I/O error
        what += f" (the file-size limit, ulimit -f, is {fsize:,} bytes)"
        advice = _WRITE_ERRNOS[errno.EFBIG][1]
    return IndexWriteError(
        f"could not write the index in {folder}: {what} (writing {path}). The index is unchanged "
        f"since its last complete write and still answers. {advice.format(folder=folder)}"
    )


@contextmanager
def _writing(folder: Path, path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` (OSError, SQLite's OperationalError) into an IndexWriteError."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        raise write_error(folder, path, exc) from exc


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


# -- the vector index: exact for small collections, IVF above a measured size -------------
# benchmarks/scale.py measures the choice (benchmarks/README.md; the figures are in
# rag.config.VectorIndexSettings, which holds the thresholds). An IVF index with a
# hash-table direct map keeps remove_ids and reconstruct_batch working (HNSW has no removal).
_DEFAULT_INDEX = VectorIndexSettings()


def ivf_lists(n: int, settings: VectorIndexSettings = _DEFAULT_INDEX) -> int:
    """Inverted lists for ``n`` vectors: about 2 sqrt(n), a power of two, with at least
    ``ivf_train_per_list`` training points each."""
    return max(1, min(1 << max(6, round(np.log2(2 * np.sqrt(max(n, 1))))), n // settings.ivf_train_per_list))


def new_vector_index(dim: int, n: int = 0, train=None, settings: VectorIndexSettings = _DEFAULT_INDEX):
    """The one place that chooses the vector index for a collection of ``n`` vectors.

    Up to ``settings.flat_max`` vectors: exact inner-product search (``IndexIDMap2`` over
    ``IndexFlatIP``). Above: an inverted file with float16 codes (``IndexIVFScalarQuantizer``,
    QT_fp16) and about 2 sqrt(n) lists, trained on ``train`` (a random sample of the vectors
    to be added), scanning ``ivf_probe_fraction`` of its lists (at least ``ivf_min_probe``)
    per query, with a hash-table
    direct map so that ``remove_ids`` and ``reconstruct_batch`` work.
    Vectors are L2-normalized, so inner product is cosine. Ids are the chunk ids.
    """
    import faiss

    if n <= settings.flat_max or train is None:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    per_list = settings.ivf_train_per_list
    nlist = min(ivf_lists(n, settings), max(1, len(train) // per_list))
    train = np.ascontiguousarray(train[: nlist * per_list], dtype=np.float32)  # a random sample
    # float16 codes: half the bytes each query scans and holds in memory; reconstructed
    # vectors differ from the originals by < 1e-3 per component (cosines by ~1e-5)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.cp.spherical = True  # unit centroids: with inner product, long centroids would swallow the lists
    index.train(train)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = min(nlist, max(settings.ivf_min_probe, round(nlist * settings.ivf_probe_fraction)))
    return index


def vector_index_kind(index) -> str:
    """``flat`` or ``ivf<nlist>,fp16,nprobe=<p>``: what the manifest records."""
    import faiss

    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return f"ivf{index.nlist},fp16,nprobe={index.nprobe}"
    if isinstance(index, faiss.IndexIVF):
        return f"ivf{index.nlist},nprobe={index.nprobe}"
    return "flat"


def _all_vectors(index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every vector in a flat-with-ids or IVF index."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        lists = index.invlists
        ids = [faiss.rev_swig_ptr(lists.get_ids(no), lists.list_size(no)).copy()
               for no in range(index.nlist) if lists.list_size(no)]
        ids = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
        return ids, index.reconstruct_batch(ids) if len(ids) else np.zeros((0, index.d), np.float32)
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    return ids, index.index.reconstruct_n(0, index.ntotal) if len(ids) else np.zeros((0, index.d), np.float32)


def search_vectors(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` on one OpenMP thread (restored afterwards; the setting is per thread).

    One question at a time gains nothing from faiss's thread team, and on a busy machine, or
    right after the query embedder's own OpenMP threads ran, the team costs 10-20x: measured
    p50 88 ms against 6 ms for exact search over 10k vectors (benchmarks/README.md)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    finally:
        faiss.omp_set_num_threads(threads)


def fit_vector_index(index, settings: VectorIndexSettings = _DEFAULT_INDEX):
    """``index``, or the same vectors in the kind :func:`new_vector_index` chooses for its
    size now (flat -> IVF as a collection grows past ``flat_max``, IVF retrained when its size
    moved far from what it was trained for, IVF -> flat below ``ivf_shrink``)."""
    import faiss

    n = index.ntotal
    if isinstance(index, faiss.IndexIVF):
        ratio = ivf_lists(n, settings) / index.nlist
        factor = settings.ivf_rebuild_factor
        if n >= settings.ivf_shrink and 1 / factor < ratio < factor:
            return index
    elif n <= settings.flat_max:
        return index
    ids, vecs = _all_vectors(index)
    rng = np.random.default_rng(0)
    sample = (vecs[rng.choice(n, min(n, ivf_lists(n, settings) * settings.ivf_train_per_list), replace=False)]
              if n else vecs)
    new = new_vector_index(index.d, n if n >= settings.ivf_shrink else 0, sample, settings)
    if n:
        new.add_with_ids(vecs, ids)
    log.info("vector index for %d vectors: %s", n, vector_index_kind(new))
    return new


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
    _reader: sqlite3.Connection | None = field(default=None, repr=False, compare=False)

    @property
    def rows_path(self) -> Path:
        return self.folder / self.generation / "rows.sqlite" if self.generation else Path()

    def connect(self, readonly: bool = True) -> sqlite3.Connection:
        """The rows of this generation. Read-only access goes through one connection per
        snapshot, opened when the snapshot is loaded and shared by all threads (SQLite is
        serialized): its open file keeps the generation readable for as long as a request
        holds the snapshot, even after a newer write removed the folder."""
        if not self.generation:
            con = sqlite3.connect(":memory:")
            con.executescript(_SCHEMA)
            return con
        if not readonly:
            return sqlite3.connect(str(self.rows_path), check_same_thread=False)
        con = self._reader
        if con is None:
            uri = f"file:{urllib.parse.quote(str(self.rows_path.resolve()))}?mode=ro"
            con = self._reader = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return con


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is unreadable ({exc}). {rebuild_hint(folder)}") from exc
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path} is not an index manifest (a JSON object). {rebuild_hint(folder)}")
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"{folder} has index format {manifest.get('format')!r}; this version reads format "
            f"{FORMAT_VERSION}. {rebuild_hint(folder)}"
        )
    missing = [key for key in _MANIFEST_KEYS if key not in manifest]
    if missing:
        raise IndexCorruptError(f"{path} lacks {', '.join(missing)}. {rebuild_hint(folder)}")
    if not isinstance(manifest["generation"], str) or not re.fullmatch(r"gen-\d{8}", manifest["generation"]):
        raise IndexCorruptError(
            f"{path} names no valid generation ({manifest['generation']!r}). {rebuild_hint(folder)}"
        )
    return manifest


_MANIFEST_KEYS = ("model", "dim", "chunking", "tokenizer", "generation")


def _check_sqlite_file(path: Path, folder: Path) -> None:
    """A cheap truncation check: the page count in the SQLite header against the file size
    (a query may not touch the missing pages, so opening alone does not notice)."""
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise IndexCorruptError(f"{path} is damaged (not an SQLite database). {rebuild_hint(folder)}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size = path.stat().st_size
    if header[24:28] == header[92:96] and size < pages * page_size:  # the header count is valid
        raise IndexCorruptError(
            f"{path} is damaged (truncated: {size} bytes, the header says {pages * page_size}). "
            f"{rebuild_hint(folder)}"
        )


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
    _check_sqlite_file(rows, folder)
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
    The caller holds the write lock. A failed write raises IndexWriteError and leaves
    nothing behind; the previous generation stays current.
    """
    global _crash_writes
    if _CRASH_AT is not None:
        _crash_writes += 1
    vectors = fit_vector_index(vectors, VectorIndexSettings.recorded(snapshot.manifest))
    folder = snapshot.folder
    number = int(snapshot.generation.split("-")[-1]) + 1 if snapshot.generation else 1
    name = f"gen-{number:08d}"
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    final = folder / name
    try:
        n_docs, n_chunks = _write_files(snapshot, tmp, vectors, bm25, changes)
        with _writing(folder, final):
            shutil.rmtree(final, ignore_errors=True)  # leftover of a crash after rename, before manifest
            if _CRASH_AT is not None:
                _crash_point("before-rename")
            os.replace(tmp, final)
        if _CRASH_AT is not None:
            _crash_point("after-rename")
        manifest = dict(snapshot.manifest, generation=name, documents=n_docs, chunks=n_chunks,
                        vector_index=vector_index_kind(vectors), updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with _writing(folder, folder / MANIFEST):
            write_json_atomic(folder / MANIFEST, manifest)
    except BaseException as exc:  # a failed write, or an interrupt: leave nothing behind
        switched = _manifest_generation(folder) == name  # only the folder's sync after the switch failed
        if not switched:
            _discard(folder, tmp, final)
        if not (switched and isinstance(exc, IndexWriteError)):
            raise
        log.warning("the index in %s was updated but its folder could not be synced to disk (%s)", folder, exc)
    if _CRASH_AT is not None:
        _crash_point("after-manifest")
    try:
        _remove_old_generations(folder, keep={name, snapshot.generation})
    except OSError as exc:  # the new generation is current; the next write tries again
        log.warning("could not remove old generations in %s: %s", folder, exc)
    snap = Snapshot(folder, manifest, vectors, bm25, name, (folder / MANIFEST).stat().st_mtime)
    snap.stats = {"documents": n_docs, "chunks": n_chunks}
    snap.connect()  # open (pin) the rows now, while this generation is surely current
    return snap


def _write_files(snapshot: Snapshot, tmp: Path, vectors, bm25: BM25Index, changes) -> tuple[int, int]:
    """Write the complete next generation into the temporary folder ``tmp`` and sync it to
    disk; returns (documents, chunks)."""
    import faiss

    folder = snapshot.folder
    with _writing(folder, tmp):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    with _writing(folder, tmp / "rows.sqlite"):
        con = sqlite3.connect(tmp / "rows.sqlite")
        try:
            if snapshot.generation:
                with snapshot.connect() as src:
                    src.backup(con)
            con.executescript(_SCHEMA)
            _migrate(con)
            with con:
                changes(con)
            n_chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            n_docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        finally:
            con.close()
    if _CRASH_AT is not None:
        _crash_point("rows-written")
    # through Python's file: a failed write is an OSError with its errno (faiss's own file
    # writer raises RuntimeError and prints a stray unterminated line on stderr)
    with _writing(folder, tmp / "dense.faiss"), open(tmp / "dense.faiss", "wb") as f:
        faiss.write_index(vectors, faiss.PyCallbackIOWriter(f.write))
    with _writing(folder, tmp / "bm25"):
        bm25.save(tmp / "bm25")
    for path in [tmp / "rows.sqlite", tmp / "dense.faiss", *sorted((tmp / "bm25").iterdir())]:
        with _writing(folder, path), open(path, "rb") as f:
            os.fsync(f.fileno())
    return n_docs, n_chunks


def _manifest_generation(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("generation")
    except (OSError, ValueError, AttributeError):
        return None


def _discard(folder: Path, tmp: Path, final: Path) -> None:
    """Remove what a failed write left: its temporary folder, the renamed generation the
    manifest does not name, and a temporary manifest."""
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    with suppress(OSError):
        (folder / f".{MANIFEST}.{os.getpid()}.tmp").unlink(missing_ok=True)


def _remove_old_generations(folder: Path, keep: set[str]) -> None:
    """Drop generations older than the previous one, and temporary leftovers of crashes."""
    for path in folder.iterdir():
        if path.is_dir() and path.name.lstrip(".").startswith("gen-") and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{MANIFEST}.") and path.name.endswith(".tmp"):  # see write_json_atomic
            with suppress(OSError):
                path.unlink(missing_ok=True)


class WriteLock:
    """An inter-process lock on the index folder; a second writer waits, then fails clearly."""

    def __init__(self, folder: Path, timeout: float) -> None:
        from filelock import FileLock

        with _writing(folder, folder):
            folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.timeout = timeout
        self._lock = FileLock(str(folder / ".lock"))

    def __enter__(self) -> Self:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout as exc:  # before OSError: filelock's Timeout is a TimeoutError
            raise IndexLockedError(
                f"another process is writing {self.folder} (lock file {self.folder / '.lock'}); "
                f"waited {self.timeout:g} s. Try again when it has finished."
            ) from exc
        except OSError as exc:
            raise write_error(self.folder, self.folder / ".lock", exc) from exc
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
