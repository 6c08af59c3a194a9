"""Ingestion: files and documents into the store, with change detection, dedupe and commits.

An :class:`Ingestor` turns ``(source, file hash, load)`` items into batches of the store:
an unchanged file (same hash) is skipped unread, a changed one replaces its document, a
text already stored under another name is a duplicate, and with ``prune`` the documents
whose files left the given folders are removed. Chunks are embedded as they accumulate,
each distinct text once per commit, in bounded slices; a long run commits by count and by
time, so a crash loses at most one commit's work and a rerun skips what was committed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..chunking import Chunk, ChunkSettings, chunk_text, retrieval_text
from ..config import VECTOR_INDEX_KEY, VectorIndexSettings
from ..errors import DocumentError, RagError
from ..store import Batch, ChunkRow, IndexStore
from ..types import Document
from .hashing import file_sha256, sha256_hex

log = logging.getLogger(__name__)

EMBED_SLICE = 2048  # texts per embedder call (bounds tokenizer and activation memory)
EMBED_BATCH = 128  # chunks embedded as soon as this many wait, so a commit by time has vectors to write
COMMIT_OVERHEAD = 10  # commit at most every COMMIT_OVERHEAD x the last commit's duration (<= ~10% of a run)
_SURROGATE = re.compile("[\ud800-\udfff]")

# (source, file hash or None, load): ``load()`` gives the Document (or a Prepared one)
Item = tuple[str, str | None, Callable[[], "Document | Prepared"]]


@dataclass
class AddReport:
    """What an add/index run did; ``failed`` holds (path, reason) for files that were not added."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.unchanged)} unchanged"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicates skipped")
        if self.removed:
            parts.append(f"{len(self.removed)} removed")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return f"{', '.join(parts)}; {self.chunks} chunks in {self.seconds:.1f} s"


def source_name(path: Path) -> str:
    """The absolute path that identifies a file's document."""
    return _valid_text(str(path.resolve()))


def _valid_text(name: str) -> str:
    """A file name that is not valid UTF-8 (lone surrogates from the file system) with its
    odd bytes as ``\\xNN`` escapes: SQLite, hashing, tokenizers and printing need real
    text, and the same file always gets the same name."""
    def escape(m: re.Match[str]) -> str:
        code = ord(m[0])
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE.sub(escape, name)


def _with_source(doc: Document, source: str) -> Document:
    return replace(doc, source=source, title=_valid_text(doc.title))  # a title may be the file name


@dataclass
class Prepared:
    """A document read, chunked and embedded elsewhere (a Ray worker: rag.ray_indexing)."""

    doc: Document
    chunks: list[Chunk]
    vectors: np.ndarray  # one per chunk, in order


@dataclass
class _Pending:
    """Documents read and embedded but not yet committed."""

    docs: list[tuple[Document, str | None]] = field(default_factory=list)  # (document, file hash)
    replace: list[str] = field(default_factory=list)  # doc ids whose old rows go
    chunk_rows: list[tuple[str, int, int, int, str]] = field(default_factory=list)  # doc, idx, start, end, heading
    texts: list[str] = field(default_factory=list)
    # embedded so far: the vectors of each distinct text (in order of first appearance),
    # and for texts[i], i < len(rows), the row of its vector
    vectors: list[np.ndarray] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    first: dict[str, int] = field(default_factory=dict)
    n_vectors: int = 0

    def __len__(self) -> int:
        return len(self.chunk_rows)

    def unembedded(self) -> int:
        return len(self.texts) - len(self.rows)


class Ingestor:
    """Writes documents into ``store``: read, check for changes and twins, chunk, embed, commit.

    ``settings()`` is what a new index records about how it is built (the embedder's model
    and dimension, ``chunking``, ``tokenizer``, ``vector_index``). ``on_commit`` runs after every commit (the
    knowledge base drops its cached query vectors).
    """

    def __init__(self, store: IndexStore, embedder, chunking: ChunkSettings, tokenizer: str, *,
                 vector_index: VectorIndexSettings | None = None, commit_every: int = 2000,
                 commit_seconds: float = 60.0, on_commit: Callable[[], None] | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.chunking = chunking
        self.tokenizer = tokenizer
        self.vector_index = vector_index or VectorIndexSettings()
        self.commit_every = commit_every
        self.commit_seconds = commit_seconds
        self.progress = False  # progress bars while reading and embedding
        self.on_commit = on_commit

    def settings(self) -> dict:
        """What a new index records about how it was built."""
        return {
            "model": self.embedder.spec,
            "dim": int(self.embedder.dim),
            "chunking": {"size": self.chunking.size, "overlap": self.chunking.overlap},
            "tokenizer": self.tokenizer,
            VECTOR_INDEX_KEY: self.vector_index.as_dict(),
        }

    # -- what comes in -------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike] | str | os.PathLike, *, prune: bool = False,
            progress: bool = False, ray: str | None = None, ray_workers: int | None = None) -> AddReport:
        """Files and folders (see :meth:`rag.knowledge_base.KnowledgeBase.add`)."""
        from ..documents import iter_files, read_file

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        report = AddReport()
        self.progress = progress
        files: list[Path] = []
        roots: list[Path] = []
        for p in paths:
            try:
                found = list(iter_files([p]))
            except DocumentError as exc:
                report.failed.append((str(p), str(exc)))
                continue
            files.extend(found)
            if Path(p).is_dir():
                roots.append(Path(p).resolve())

        def items() -> Iterator[Item]:
            for path in _progress(files, progress, "indexing"):
                source = source_name(path)
                try:
                    fh = file_sha256(path)
                    yield source, fh, (lambda path=path, source=source: _with_source(read_file(path), source))
                except OSError as exc:
                    report.failed.append((source, f"cannot read {path}: {exc.strerror or exc}"))

        def prune_sources(known: dict[str, str]) -> list[str]:
            if not prune:
                return []
            seen = {source_name(f) for f in files}
            return [
                doc_id for source, doc_id in known.items()
                if source not in seen and any(Path(source).is_relative_to(r) for r in roots)
            ]

        if ray is not None:
            from ..ray_indexing import ray_items

            return self.ingest(lambda known: ray_items(self, files, report, known, ray, ray_workers),
                               report, prune_sources)
        return self.ingest(items(), report, prune_sources)

    def add_documents(self, documents: Sequence[Document]) -> AddReport:
        """Documents given as values (their ``source`` identifies them for updates)."""
        def items() -> Iterator[Item]:
            for doc in documents:
                if not isinstance(doc, Document):
                    raise TypeError("add_documents takes Document values")
                source = doc.source or f"document:{sha256_hex(doc.text, 16)}"
                yield source, None, (lambda doc=doc, source=source: _with_source(doc, source))

        return self.ingest(items(), AddReport(), lambda known: [])

    def remove(self, refs: Iterable[str] | str) -> list[str]:
        """Remove documents by id or source path in one commit; returns the ids removed.
        An unknown one raises (and nothing is removed)."""
        refs = [refs] if isinstance(refs, str) else list(refs)
        if self.store.view() is None:
            raise RagError(f"{self.store.where} holds no index yet; nothing to remove")
        with self.store.writing(self.settings()):
            found: dict[str, str] = {}
            for ref in refs:
                doc_id = self.store.find_document(ref) or (self.store.find_document(source_name(Path(ref)))
                                                           if ref else None)
                if doc_id is None:
                    raise RagError(f"no document {ref!r} in {self.store.where}; `rag status` lists them")
                found[ref] = doc_id
            pending = _Pending(replace=list(dict.fromkeys(found.values())))
            self._commit(pending)
            return pending.replace

    # -- change detection and commits ----------------------------------------------------
    def ingest(self, items: Iterable[Item] | Callable[[dict[str, str | None]], Iterable[Item]], report: AddReport,
               prune_sources: Callable[[dict[str, str]], list[str]]) -> AddReport:
        """Write ``items`` (or ``items(known)``: given each stored source's file hash, so
        that unchanged files are not even read) and the removals ``prune_sources(known)``
        names (given each stored source's document id); ``report`` says what happened."""
        t0 = time.perf_counter()
        fresh = self.store.view() is None  # a new index is written even with nothing in it
        with self.store.writing(self.settings()):
            known = {d.source: (d.doc_id, d.file_hash, d.content_hash) for d in self.store.known_documents()}
            by_content = {ch: s for s, (_, _, ch) in known.items()}
            if callable(items):
                items = items({s: v[1] for s, v in known.items()})
            pending = _Pending()
            commit_at = time.monotonic() + self.commit_seconds
            for source, file_hash, load in items:
                old = known.get(source)
                if old is not None and file_hash is not None and old[1] == file_hash:
                    report.unchanged.append(source)
                    continue
                try:
                    loaded = load()
                except DocumentError as exc:
                    report.failed.append((source, str(exc)))
                    log.info("%s", exc)  # reported in AddReport.failed; the caller shows it
                    continue
                prepared = loaded if isinstance(loaded, Prepared) else None
                doc = prepared.doc if prepared is not None else loaded
                content = sha256_hex(doc.text)
                if old is not None and old[2] == content:
                    report.unchanged.append(source)
                    continue
                twin = by_content.get(content)
                if twin is not None and twin != source:
                    report.duplicates.append((source, twin))
                    log.info("%s has the same text as %s; skipped", source, twin)  # in report.duplicates
                    continue
                doc_id = old[0] if old else (doc.doc_id or sha256_hex(source, 16))
                doc = replace(doc, doc_id=doc_id)
                if old is not None:
                    pending.replace.append(doc_id)
                    report.updated.append(source)
                else:
                    report.added.append(source)
                by_content[content] = source
                self._prepare(pending, doc, file_hash, prepared)
                if pending.unembedded() >= EMBED_BATCH:
                    self._embed(pending)
                if len(pending) >= self.commit_every or time.monotonic() >= commit_at:
                    report.chunks += len(pending)
                    commit_at = self._timed_commit(pending)
                    fresh, pending = False, _Pending()
            for doc_id in prune_sources({s: v[0] for s, v in known.items()}):
                pending.replace.append(doc_id)
                report.removed.append(doc_id)
            report.chunks += len(pending)
            if pending.docs or pending.replace or fresh:
                self._commit(pending)
        report.seconds = time.perf_counter() - t0
        return report

    def _timed_commit(self, pending: _Pending) -> float:
        """Commit ``pending``; returns when the next commit by time is due."""
        self._embed(pending)
        start = time.monotonic()
        self._commit(pending)
        cost = time.monotonic() - start
        log.info("committed %d chunks in %.2f s", len(pending), cost)
        interval = max(self.commit_seconds, COMMIT_OVERHEAD * cost) if self.commit_seconds > 0 else 0.0
        return time.monotonic() + interval

    def _prepare(self, pending: _Pending, doc: Document, file_hash: str | None, prepared: Prepared | None) -> None:
        chunks = prepared.chunks if prepared is not None else chunk_text(doc.text, doc.doc_id, self.chunking)
        pending.docs.append((doc, file_hash))
        pending.chunk_rows.extend((doc.doc_id, c.index, c.start, c.end, c.heading) for c in chunks)
        texts = [retrieval_text(doc.title, c.text, c.heading) for c in chunks]
        if prepared is None:
            pending.texts.extend(texts)
            return
        self._embed(pending)  # what waits is embedded first, so that rows stay in order
        pending.texts.extend(texts)
        pending.rows.extend(range(pending.n_vectors, pending.n_vectors + len(texts)))
        pending.vectors.append(np.asarray(prepared.vectors, np.float32).reshape(len(texts), -1))
        pending.n_vectors += len(texts)

    def _embed(self, pending: _Pending) -> None:
        """Embed the texts of ``pending`` that have no vector yet. Each distinct text is
        embedded once per commit (a document that repeats itself, or boilerplate shared by
        many chunks), in slices of :data:`EMBED_SLICE`, so the embedder's memory stays
        bounded however many chunks one document has."""
        new: list[str] = []
        for text in pending.texts[len(pending.rows):]:
            row = pending.first.get(text)
            if row is None:
                row = pending.first[text] = pending.n_vectors + len(new)
                new.append(text)
            pending.rows.append(row)
        bar = None
        if self.progress and len(new) > EMBED_SLICE:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(new), desc="embedding", unit="chunk")
        try:
            for lo in range(0, len(new), EMBED_SLICE):
                part = self.embedder.embed_passages(
                    new[lo:lo + EMBED_SLICE], progress=self.progress and bar is None and len(new) > 2 * EMBED_BATCH)
                pending.vectors.append(np.asarray(part, np.float32))
                pending.n_vectors += len(part)
                if bar is not None:
                    bar.update(len(part))
        finally:
            if bar is not None:
                bar.close()

    def _commit(self, pending: _Pending) -> None:
        """Hand ``pending`` to the store as one batch (the store assigns the chunk ids)."""
        vectors = None
        if pending.chunk_rows:
            self._embed(pending)
            vectors = np.concatenate(pending.vectors)
            if pending.n_vectors != len(pending.rows):  # repeated texts share a vector
                vectors = vectors[np.asarray(pending.rows)]
        chunks = [ChunkRow(*row, text) for row, text in zip(pending.chunk_rows, pending.texts)]
        self.store.commit(Batch(pending.replace, pending.docs, chunks, vectors))
        if self.on_commit is not None:
            self.on_commit()


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")
