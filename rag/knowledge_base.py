"""The facade: open or create an index, add and remove documents, search and answer."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .answering import AnswerGate, Pipeline, Reader, Reranker, make_reader, make_reranker
from .chunking import Chunk, ChunkSettings, chunk_text, retrieval_text
from .config import TOKENIZER, TOP_K
from .errors import DocumentError, QuestionError, RagError
from .filters import OVERFETCH, Filters
from .ingest.hashing import file_sha256, sha256_hex
from .retrieval import MODES, FusionSettings, Hit
from .retrieval import search as hybrid_search
from .store import Batch, ChunkRow, IndexStore, StoreView, check_model, open_store
from .types import Answer, Document, Passage

if TYPE_CHECKING:
    from .answering.generate import Generator

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
MAX_TOP_K = 100
EMBED_SLICE = 2048  # texts per embedder call (bounds tokenizer and activation memory)
EMBED_BATCH = 128  # chunks embedded as soon as this many wait, so a commit by time has vectors to write
COMMIT_OVERHEAD = 10  # commit at most every COMMIT_OVERHEAD x the last commit's duration (<= ~10% of a run)
# zero-width and bidi marks, C0/C1 controls, and lone surrogates (from a bad byte in argv or
# a JSON "\ud800"), which no tokenizer or encoder can take
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


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


def clean_question(question: str) -> str:
    """The question without control/zero-width characters; an unusable one is a QuestionError."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", question)).strip()
    if not text:
        raise QuestionError("the question is empty; type a question such as 「晋中有几家省级博士创新站」")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. Ask a shorter question."
        )
    return text


def check_top_k(top_k: int) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise QuestionError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {top_k!r}")
    return top_k


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


class KnowledgeBase:
    """A folder of Chinese articles, indexed for hybrid search and short answers.

    ``KnowledgeBase("index")`` opens the index in ``index/`` or starts an empty one there;
    it is written on the first ``add``. ``model`` names the embedding model (default: the
    bundled multilingual-e5-small); opening an index built with another model is an
    ``IndexMismatchError``.

    ``store`` says where the index lives: ``local`` (default: ``index_dir``), a Milvus Lite
    file (``index.db``), a Milvus server (``http://host:19530``) or an :class:`IndexStore`.

    A long ``add`` commits what it has embedded every ``commit_every`` chunks and every
    ``commit_seconds`` (stretched to 10x the last commit's duration, so commits never take
    more than ~10% of a run; 0: after every document), so a crash loses at most that much
    work and a rerun skips what was committed.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike = "index",
        model: str | None = None,
        *,
        chunk_size: int = ChunkSettings.size,
        chunk_overlap: int = ChunkSettings.overlap,
        tokenizer: str = TOKENIZER,
        fusion: FusionSettings | None = None,
        reader: str | Reader | None = None,
        reranker: str | Reranker | None = None,
        lock_timeout: float = 600.0,
        commit_every: int = 2000,
        commit_seconds: float = 60.0,
        generator: Generator | None = None,
        store: str | IndexStore | None = None,
    ) -> None:
        from .embedding import load_embedder

        self.folder = Path(index_dir)  # also where feedback and uploads go
        self.fusion = fusion or FusionSettings()
        self.lock_timeout = lock_timeout
        self.commit_every = commit_every
        self.commit_seconds = commit_seconds
        self._query_cache: dict[str, np.ndarray] = {}
        self.store: IndexStore = (store if store is not None and not isinstance(store, str)
                                  else open_store(store, self.folder, lock_timeout))
        stored = self.store.settings()
        if stored is not None:
            if model is not None:
                check_model(Path(self.store.where), stored, load_embedder(model).spec)
            self.embedder = load_embedder(stored["model"])
        else:
            self.embedder = load_embedder(model)
        settings = (stored or {}).get("chunking") or {"size": chunk_size, "overlap": chunk_overlap}
        self.chunking = ChunkSettings(**settings)
        self.tokenizer = (stored or {}).get("tokenizer", tokenizer)
        reader_obj = make_reader(reader)
        self.pipeline = Pipeline(reader_obj, make_reranker(reranker, reader_obj))
        self._progress = False
        self.generator = generator  # optional written answers: rag.answering.write_answer / stream_answer

    def _settings(self) -> dict:
        """What a new index records about how it was built."""
        return {
            "model": self.embedder.spec,
            "dim": int(self.embedder.dim),
            "chunking": {"size": self.chunking.size, "overlap": self.chunking.overlap},
            "tokenizer": self.tokenizer,
        }

    # -- writing -----------------------------------------------------------------------
    def add(
        self,
        paths: Iterable[str | os.PathLike] | str | os.PathLike,
        *,
        prune: bool = False,
        progress: bool = False,
        ray: str | None = None,
        ray_workers: int | None = None,
    ) -> AddReport:
        """Index files and folders: new files are added, changed ones replaced, unchanged
        ones skipped; with ``prune``, documents whose files are gone from the given folders
        are removed. Unreadable files are reported in ``failed``; the rest are indexed.
        With ``ray`` (``local``, ``auto`` or ``ray://host:10001``), files are read, chunked
        and embedded by Ray workers (:mod:`rag.ray_indexing`); this process writes the store."""
        from .documents import iter_files, read_file

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        report = AddReport()
        self._progress = progress
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

        def items():
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
            from .ray_indexing import ray_items

            return self._ingest(lambda known: ray_items(self, files, report, known, ray, ray_workers),
                                report, prune_sources)
        return self._ingest(items(), report, prune_sources)

    def add_documents(self, documents: Sequence[Document]) -> AddReport:
        """Index documents given as values (their ``source`` identifies them for updates)."""
        def items():
            for doc in documents:
                if not isinstance(doc, Document):
                    raise TypeError("add_documents takes Document values")
                source = doc.source or f"document:{sha256_hex(doc.text, 16)}"
                yield source, None, (lambda doc=doc, source=source: _with_source(doc, source))

        return self._ingest(items(), AddReport(), lambda known: [])

    def remove(self, refs: Iterable[str]) -> list[str]:
        """Remove documents by id or source path; returns the ids removed. Unknown ones raise."""
        refs = [refs] if isinstance(refs, str) else list(refs)
        if self.store.view() is None:
            raise RagError(f"{self.store.where} holds no index yet; nothing to remove")
        with self.store.writing(self._settings()):
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

    def _ingest(self, items, report: AddReport, prune_sources: Callable[[dict[str, str]], list[str]]) -> AddReport:
        t0 = time.perf_counter()
        fresh = self.store.view() is None  # a new index is written even with nothing in it
        with self.store.writing(self._settings()):
            known = {d.source: (d.doc_id, d.file_hash, d.content_hash) for d in self.store.known_documents()}
            by_content = {ch: s for s, (_, _, ch) in known.items()}
            if callable(items):  # given what is known, so that unchanged files are not even read
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
        if self._progress and len(new) > EMBED_SLICE:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(new), desc="embedding", unit="chunk")
        try:
            for lo in range(0, len(new), EMBED_SLICE):
                part = self.embedder.embed_passages(
                    new[lo:lo + EMBED_SLICE], progress=self._progress and bar is None and len(new) > 2 * EMBED_BATCH)
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
        self._query_cache.clear()

    # -- reading -----------------------------------------------------------------------
    def _query_vector(self, question: str) -> np.ndarray:
        vec = self._query_cache.get(question)
        if vec is None:
            vec = self.embedder.embed_query(question)
            if len(self._query_cache) > 256:
                self._query_cache.clear()
            self._query_cache[question] = vec
        return vec

    def search(self, question: str, top_k: int = TOP_K, mode: str = "hybrid", filters: dict | None = None) -> list[Passage]:
        """The ``top_k`` passages that best match ``question``, best first: the retriever's
        candidates (``mode``: hybrid, dense or bm25), the first of them reordered by the
        reranker. ``filters`` (see :mod:`rag.filters`: since, until, doc_type, doc_ids) keep
        only passages of matching documents, chosen from a larger candidate pool."""
        return self._search(self.store.view(), question, top_k, mode, filters)

    def _search(self, view: StoreView | None, question: str, top_k: int, mode: str,
                filters: dict | None) -> list[Passage]:
        """:meth:`search` on one state of the store (``answer`` reads its evidence from the same)."""
        question = clean_question(question)
        check_top_k(top_k)
        wanted = Filters.parse(filters)
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {', '.join(MODES)}")
        if view is None or view.chunk_count() == 0:
            return []
        qvec = self._query_vector(question) if mode != "bm25" else None
        depth = self.pipeline.pool(question)
        k = max(top_k, depth, OVERFETCH) if wanted else max(top_k, depth)
        hits = hybrid_search(view, question, qvec, k, mode, self.fusion)
        passages = wanted.apply(_passages(view, hits)) if wanted else _passages(view, hits)
        return self.pipeline.rerank(question, passages)[:top_k]

    @property
    def answer_gate(self) -> AnswerGate:
        return self.pipeline.gate

    @answer_gate.setter
    def answer_gate(self, gate: AnswerGate) -> None:
        self.pipeline.gate = gate

    def answer(self, question: str, top_k: int = TOP_K, *, mode: str = "hybrid", filters: dict | None = None) -> Answer:
        """The short answer to ``question`` with its evidence; ``text`` is None when the
        knowledge base holds nothing relevant (the closest passages are still returned).

        No answer is given when the question's key terms are absent from the index, when
        the reader finds no span, or when its confidence is below the gate's threshold
        (:class:`rag.answering.AnswerGate`); ``confidence`` then says how close it came."""
        question = clean_question(question)
        view = self.store.view()
        passages = self._search(view, question, top_k, mode, filters)
        if view is None:
            return Answer(question, None, tuple(passages), 0.0)

        def evidence(shown) -> tuple[float, list[float], bool]:
            if not _CJK.search(question):  # another language: the lexical gate cannot judge it
                return 1.0, [0.0] * len(shown), False
            known, held = view.query_evidence(question, [p.chunk_id for p in shown])
            missing = self.answer_gate.key_terms_missing(*view.missing_words(question))
            return known, [float(h) / known if known > 0 else 0.0 for h in held], missing

        return self.pipeline.answer(question, passages, evidence)

    def warm_up(self, background: bool = False) -> threading.Thread | None:
        """Load the embedding model, the reader and the reranker now, so that the first upload
        and the first question do not wait for them; ``background=True`` does it in a
        daemon thread (the web app's start) and returns the thread."""
        if background:
            thread = threading.Thread(target=self.warm_up, name="rag-warm-up", daemon=True)
            thread.start()
            return thread
        t0 = time.perf_counter()
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()
        for part in {id(p): p for p in (self.pipeline.reader, self.pipeline.reranker)}.values():
            if hasattr(part, "warm_up"):
                part.warm_up()
        log.info("warmed up in %.1f s", time.perf_counter() - t0)
        return None

    def documents(self) -> list[dict]:
        """One row per document: doc_id, title, source, published, chunks, added_at."""
        return self.store.documents()

    def document(self, doc_id: str) -> Document:
        """The stored, cleaned document ``doc_id``."""
        doc = self.store.document(doc_id)
        if doc is None:
            raise RagError(f"no document {doc_id!r} in {self.store.where}")
        return doc

    def stats(self) -> dict:
        """Documents, chunks, model, size on disk and last update."""
        settings = self.store.settings() or self._settings()
        stats = self.store.stats()
        return {
            "index_dir": str(self.folder),
            "store": self.store.where,
            "documents": stats["documents"],
            "chunks": stats["chunks"],
            "model": settings["model"],
            "dim": settings["dim"],
            "tokenizer": settings["tokenizer"],
            "chunking": settings["chunking"],
            "bytes_on_disk": stats.get("bytes", 0),
            "updated_at": stats.get("updated_at"),
        }


def _passages(view: StoreView, hits: list[Hit]) -> list[Passage]:
    rows = view.chunks([h.chunk_id for h in hits]) if hits else {}
    return [Passage(c.text, c.title, c.source, c.published, h.score, c.doc_id, c.start, c.end, h.chunk_id,
                    h.dense, h.lexical, c.heading, c.meta)
            for h in hits if (c := rows.get(h.chunk_id)) is not None]


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file")


def _with_source(doc: Document, source: str) -> Document:
    return replace(doc, source=source, title=_valid_text(doc.title))  # a title may be the file name


def answer(question: str, index_dir: str | os.PathLike = "index", top_k: int = TOP_K, filters: dict | None = None) -> Answer:
    """Answer ``question`` from the index in ``index_dir`` (opened once per folder and reused)."""
    key = str(Path(index_dir).resolve())
    kb = _OPEN.get(key)
    if kb is None:
        kb = _OPEN.setdefault(key, KnowledgeBase(index_dir))
    return kb.answer(question, top_k=top_k, filters=filters)


_OPEN: dict[str, KnowledgeBase] = {}
