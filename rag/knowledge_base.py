"""The facade: open or create an index, add and remove documents, search and answer."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .answering import AnswerGate, Pipeline, Reader, Reranker, make_reader, make_reranker
from .config import TOKENIZER, TOP_K, ChunkSettings, VectorIndexSettings
from .errors import QuestionError, RagError
from .filters import OVERFETCH, Filters
from .ingest.ingestor import (
    COMMIT_OVERHEAD,
    EMBED_BATCH,
    EMBED_SLICE,
    AddReport,
    Ingestor,
    Prepared,
    source_name,
)
from .questions import MAX_QUESTION_CHARS, MAX_TOP_K, check_top_k, clean_question, has_chinese
from .retrieval import MODES, FusionSettings, Hit
from .retrieval import search as hybrid_search
from .store import IndexStore, StoreView, check_model, open_store
from .types import Answer, Document, Passage

if TYPE_CHECKING:
    from .answering.generate import Generator

log = logging.getLogger(__name__)

__all__ = [  # the names importers have used from here, which live in their own modules now
    "COMMIT_OVERHEAD", "EMBED_BATCH", "EMBED_SLICE", "MAX_QUESTION_CHARS", "MAX_TOP_K", "AddReport",
    "KnowledgeBase", "Prepared", "answer", "check_top_k", "clean_question", "source_name",
]


class _Ingesting:
    """An attribute of the knowledge base that its :class:`Ingestor` keeps (and reads on each
    write), so that ``kb.embedder = wrapped`` or ``kb.chunking = ...`` reach the writes."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name.lstrip("_")

    def __get__(self, kb: KnowledgeBase | None, owner: type | None = None):
        return self if kb is None else getattr(kb.ingestor, self.name)

    def __set__(self, kb: KnowledgeBase, value) -> None:
        setattr(kb.ingestor, self.name, value)


class KnowledgeBase:
    """A folder of Chinese articles, indexed for hybrid search and short answers.

    ``KnowledgeBase("index")`` opens the index in ``index/`` or starts an empty one there;
    it is written on the first ``add``. ``model`` names the embedding model (default: the
    bundled multilingual-e5-small); opening an index built with another model is an
    ``IndexMismatchError``.

    ``store`` says where the index lives: ``local`` (default: ``index_dir``), a Milvus Lite
    file (``index.db``), a Milvus server (``http://host:19530``) or an :class:`IndexStore`.
    A new index records its chunking, tokenizer and ``vector_index`` settings; an existing
    one is opened with those it recorded.

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
        vector_index: VectorIndexSettings | None = None,
    ) -> None:
        from .embedding import load_embedder

        self.folder = Path(index_dir)  # also where feedback and uploads go
        self.fusion = fusion or FusionSettings()
        self.lock_timeout = lock_timeout
        self._query_cache: dict[str, np.ndarray] = {}
        self.store: IndexStore = (store if store is not None and not isinstance(store, str)
                                  else open_store(store, self.folder, lock_timeout))
        stored = self.store.settings()
        if stored is not None:
            if model is not None:
                check_model(Path(self.store.where), stored, load_embedder(model).spec)
            embedder = load_embedder(stored["model"])
        else:
            embedder = load_embedder(model)
        chunking = (stored or {}).get("chunking") or {"size": chunk_size, "overlap": chunk_overlap}
        self.ingestor = Ingestor(
            self.store, embedder, ChunkSettings(**chunking), (stored or {}).get("tokenizer", tokenizer),
            vector_index=VectorIndexSettings.recorded(stored) if stored is not None else vector_index,
            commit_every=commit_every, commit_seconds=commit_seconds, on_commit=self._query_cache.clear)
        reader_obj = make_reader(reader)
        self.pipeline = Pipeline(reader_obj, make_reranker(reranker, reader_obj))
        self.generator = generator  # optional written answers: rag.answering.write_answer / stream_answer

    # kept by the ingestor, which reads them on every write
    embedder = _Ingesting()
    chunking = _Ingesting()
    tokenizer = _Ingesting()
    commit_every = _Ingesting()
    commit_seconds = _Ingesting()
    _progress = _Ingesting()  # progress bars during add (rag.evaluation sets it)

    def _settings(self) -> dict:
        """What a new index records about how it was built."""
        return self.ingestor.settings()

    # -- writing (rag.ingest.ingestor) ---------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike] | str | os.PathLike, *, prune: bool = False,
            progress: bool = False, ray: str | None = None, ray_workers: int | None = None) -> AddReport:
        """Index files and folders: new files are added, changed ones replaced, unchanged
        ones skipped; with ``prune``, documents whose files are gone from the given folders
        are removed. Unreadable files are reported in ``failed``; the rest are indexed.
        With ``ray`` (``local``, ``auto`` or ``ray://host:10001``), files are read, chunked
        and embedded by Ray workers (:mod:`rag.ray_indexing`); this process writes the store."""
        return self.ingestor.add(paths, prune=prune, progress=progress, ray=ray, ray_workers=ray_workers)

    def add_documents(self, documents: Sequence[Document]) -> AddReport:
        """Index documents given as values (their ``source`` identifies them for updates)."""
        return self.ingestor.add_documents(documents)

    def remove(self, refs: Iterable[str]) -> list[str]:
        """Remove documents by id or source path; returns the ids removed. Unknown ones raise."""
        return self.ingestor.remove(refs)

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
            if not has_chinese(question):  # another language: the lexical gate cannot judge it
                return 1.0, [0.0] * len(shown), False
            known, held = view.query_evidence(question, [p.chunk_id for p in shown])
            missing = self.answer_gate.key_terms_missing(*view.missing_words(question))
            return known, [float(h) / known if known > 0 else 0.0 for h in held], missing

        return self.pipeline.answer(question, passages, evidence)

    def warm_up(self, background: bool = False) -> threading.Thread | None:
        """Load the embedding model, the reader and the reranker (and what the store loads on
        its first search) now, so that the first upload and the first question do not wait for
        them; ``background=True`` does it in a daemon thread (the web app's start) and returns
        the thread."""
        if background:
            thread = threading.Thread(target=self.warm_up, name="rag-warm-up", daemon=True)
            thread.start()
            return thread
        t0 = time.perf_counter()
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()
        view = self.store.view()
        for part in {id(p): p for p in (self.pipeline.reader, self.pipeline.reranker, view)}.values():
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


def answer(question: str, index_dir: str | os.PathLike = "index", top_k: int = TOP_K, filters: dict | None = None) -> Answer:
    """Answer ``question`` from the index in ``index_dir`` (opened once per folder and reused)."""
    key = str(Path(index_dir).resolve())
    kb = _OPEN.get(key)
    if kb is None:
        kb = _OPEN.setdefault(key, KnowledgeBase(index_dir))
    return kb.answer(question, top_k=top_k, filters=filters)


_OPEN: dict[str, KnowledgeBase] = {}
