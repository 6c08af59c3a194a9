"""The Milvus store: the whole index in Milvus, so an app replica needs nothing local.

The same code runs against Milvus Lite (``KnowledgeBase(store="index.db")``, a local file,
the real pymilvus API) and a Milvus standalone or cluster (``http://host:19530``; its token,
if any, from the environment variable ``MILVUS_TOKEN``). Four collections, named with a
prefix (``rag`` by default; ``uri#name`` picks another):

* ``rag_chunks``: one row per chunk -- id (assigned here), commit number, document id,
  offsets, heading path, text, the dense vector (FLAT up to ``flat_max`` chunks, then HNSW:
  :class:`~rag.config.VectorIndexSettings`, recorded with the settings) and
  the BM25 sparse vector of our bigram terms (:mod:`rag.store.sparse`, why below);
* ``rag_docs``: documents -- title, source, date, metadata, hashes, and the cleaned text in
  pieces of 16,000 characters (a VARCHAR holds at most 65,535 bytes);
* ``rag_terms``: one row per term: the number of chunks holding it (its document frequency),
  the number before the last commit that changed it, and that commit's number, so that a
  reader of an older state, or of a state whose commit failed, takes the previous number
  (the writer keeps the numbers it published, :class:`_KnownCounts`, and reads only new terms);
* ``rag_meta``: one row, the state: settings, the last published commit, counts.

**Commits.** Milvus has no transactions, so a commit numbered ``b`` inserts its rows tagged
``b`` (invisible: every read filters ``commit <= published``), then publishes by replacing
the one state row, then deletes the rows of replaced documents (hidden from that moment by
the state's ``retire`` list). Every read at query time is a lookup by primary key (a chunk,
a document's first row, a term) or a vector search: a filtered scan of a collection costs
about 0.1 ms a row in Milvus Lite (14 s for 20 terms among 150,000 rows, against 11-32 ms
by key). A commit that fails or is killed before publishing leaves
rows tagged above the published number; the next writer deletes them first, and finishes
the deletes of a published commit that did not get to them. A reader sees one published
state; a request that started before a commit may lose (never mix in) the replaced rows.

**Why client-side BM25.** Milvus's own full-text search (a BM25 function over an
analyzer) was checked in milvus-lite 3.2.2: its tokenizers are ``standard`` and ``jieba``
(the ``chinese`` analyzer type is refused). Word-level jieba BM25 lost to our character
bigrams on both development sets (ncp strict R@5 80.4 vs 83.9 at 300/60 chunks, README), and
the answer gate needs term document frequencies that the server does not expose. So the
sparse vectors carry our own bigram BM25 weights and the server only ranks them.

**One writer.** Writes in one process are serialised by a thread lock. A Milvus Lite file is
open in one process at a time (milvus-lite holds a lock on it); this store takes a file lock
next to it first (``index.db.lock``), so a second process *waits* for the first to finish
(up to ``lock_timeout``, as a second writer of the local store does) and then fails with an
:class:`IndexLockedError` that says why. Milvus itself has no client-side lock or conditional
write (inserts, upserts and deletes take no precondition), so on a server two writers could
interleave their commits: run one writer (the indexing job, or one admin replica), the rest
``--read-only`` (deploy/README.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..config import VectorIndexSettings
from ..errors import IndexLockedError, IndexWriteError, RagError
from ..types import Document
from . import sparse
from .base import Batch, KnownDocument, StoredChunk, recorded_settings
from .local import content_hash

log = logging.getLogger(__name__)

TEXT_PIECE = 16_000  # characters of document text per row (4 bytes each at most: < 65,535)
PAGE = 1000
QUERY_MAX = 16_384  # Milvus's largest query result
_DUMMY = [0.0, 0.0]  # Milvus wants a vector field in every collection


_LITE_HELD: dict[str, object] = {}  # Milvus Lite files this process holds, by absolute path
_LITE_LOCK = threading.Lock()


def _hold_lite_file(path: Path, timeout: float) -> None:
    """Take the file lock next to a Milvus Lite file for the rest of this process (milvus-lite
    keeps the file open until exit too), waiting up to ``timeout`` for another process."""
    from filelock import FileLock, Timeout

    key = str(path.resolve())
    with _LITE_LOCK:
        if key in _LITE_HELD:
            return
        lock = FileLock(key + ".lock")
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                log.warning("another process has %s open; waiting up to %.0f s for it to finish", path, timeout)
                lock.acquire(timeout=timeout)
        except Timeout as exc:
            raise IndexLockedError(
                f"another process has the Milvus Lite file {path} open (lock file {key}.lock); waited {timeout:.0f} s. "
                "A Milvus Lite file is open in one process at a time: stop the other `rag` command or `rag serve`, "
                "or use a Milvus server (http://host:19530) for several processes") from exc
        except OSError as exc:
            raise RagError(f"cannot lock the Milvus Lite file {path} ({key}.lock): {exc}") from exc
        _LITE_HELD[key] = lock


def _quote(values: Sequence[str]) -> str:
    return "[" + ",".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


class _KnownCounts:
    """Document frequencies as of the last commit this writer published: the terms it looked
    up or wrote, or every term when it wrote the store's first commit (``complete``). A commit
    then looks up by key only the terms it has not met: a lookup costs ~75 us a term in
    Milvus Lite, and looking up every term of every commit was a fifth of a commit's time."""

    def __init__(self, commit: int = -1, complete: bool = False) -> None:
        self.commit, self.complete = commit, complete
        self.keys = self.df = np.zeros(0, np.int64)  # sorted by key

    def get(self, keys: np.ndarray, fetch) -> np.ndarray:
        """The counts of ``keys`` (sorted, unique); ``fetch(keys)`` reads the ones not known."""
        pos = np.searchsorted(self.keys, keys).clip(0, max(len(self.keys) - 1, 0))
        hit = self.keys[pos] == keys if len(self.keys) else np.zeros(len(keys), bool)
        out = np.where(hit, self.df[pos] if len(self.keys) else 0, 0).astype(np.int64)
        if not self.complete and not hit.all():
            found = fetch(keys[~hit])
            out[~hit] = [found.get(int(k), 0) for k in keys[~hit]]
        return out

    def put(self, keys: np.ndarray, df: np.ndarray, commit: int) -> None:
        keep = ~np.isin(self.keys, keys)
        merged, counts = np.concatenate([self.keys[keep], keys]), np.concatenate([self.df[keep], df])
        order = np.argsort(merged, kind="stable")
        self.keys, self.df, self.commit = merged[order], counts[order], commit


class MilvusView:
    """One published state of the store, for one request."""

    def __init__(self, store: MilvusStore, state: dict) -> None:
        self.store, self.state = store, state
        self.visible = store.visible(state)
        self.ef = VectorIndexSettings.recorded(state["settings"]).hnsw_ef_search  # HNSW's search breadth
        self._rows: dict[int, dict] = {}
        self._terms: dict[str, sparse.QueryTerms] = {}

    def chunk_count(self) -> int:
        return int(self.state.get("chunks", 0))

    def warm_up(self) -> None:
        """Search the sparse index once: Milvus Lite loads it on a process's first sparse search
        (6 s at 12k chunks, most of a minute at 100k), which would otherwise be the first
        question's wait. Any vector will do."""
        self._search({0: 1.0}, "sparse", 1)

    def _query_terms(self, question: str) -> sparse.QueryTerms:
        found = self._terms.get(question)
        if found is None:
            keys = sparse.terms(question, self.state["settings"]["tokenizer"], query=True)[0]
            found = self._terms[question] = sparse.QueryTerms(keys, self.store.df(keys, self.state),
                                                              self.chunk_count())
        return found

    def _vectors(self, ids: Sequence[int]) -> list[dict]:
        """The dense and sparse vectors of ``ids``, fetched once per view."""
        want = [int(i) for i in ids if int(i) not in self._rows]
        if want:
            for row in self.store.client.query(self.store.chunks, ids=want, output_fields=["id", "dense", "sparse"]):
                self._rows[int(row["id"])] = row
        return [self._rows.get(int(i), {}) for i in ids]

    def _search(self, data, field: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 1 or self.chunk_count() == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params = {"metric_type": "IP", "params": {"ef": max(k, self.ef)} if field == "dense" else {}}
        hits = self.store.client.search(self.store.chunks, data=[data], anns_field=field, limit=min(k, 16384),
                                        filter=self.visible, search_params=params, output_fields=["id"])[0]
        ids = np.array([int(h["id"]) for h in hits], np.int64)
        return ids, np.array([float(h["distance"]) for h in hits], np.float32)

    def dense_top_k(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search(np.asarray(query, np.float32).tolist(), "dense", k)

    def lexical_top_k(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        vector = self._query_terms(question).vector()
        if not vector:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids, scores = self._search(vector, "sparse", k)
        keep = scores > 0
        return ids[keep], scores[keep]

    def dense_scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        rows = self._vectors(ids)
        query = np.asarray(query, np.float32)
        return np.array([float(np.dot(row["dense"], query)) if row else 0.0 for row in rows], np.float32)

    def lexical_scores(self, question: str, ids: np.ndarray) -> np.ndarray:
        terms = self._query_terms(question)
        return np.array([terms.score(row.get("sparse") or {}) for row in self._vectors(ids)], np.float32)

    def query_evidence(self, question: str, ids: Sequence[int]) -> tuple[float, np.ndarray]:
        return self._query_terms(question).evidence([row.get("sparse") or {} for row in self._vectors(list(ids))])

    def missing_words(self, question: str) -> tuple[list[str], list[str], int]:
        words = sparse.word_keys(question, self.state["settings"]["tokenizer"])
        keys = np.unique(np.concatenate([k for _, _, k in words] + [np.zeros(0, np.int64)]))
        return sparse.missing_words(words, self.store.df(keys, self.state))

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        fields = ["id", "doc_id", "commit", "start", "end", "heading", "text"]
        rows = self.store.client.query(self.store.chunks, ids=ids, output_fields=fields)
        docs = self.store.doc_heads([(r["doc_id"], int(r["commit"])) for r in rows])
        out = {}
        for r in rows:
            d = docs.get(r["doc_id"])
            if d is not None:
                out[int(r["id"])] = StoredChunk(int(r["id"]), r["doc_id"], int(r["start"]), int(r["end"]), r["text"],
                                                d["title"], d["source"], d["published"] or None, r["heading"],
                                                json.loads(d["meta"]))
        return out


class MilvusStore:
    """The index in Milvus (see the module's docstring)."""

    def __init__(self, uri: str, lock_timeout: float = 600.0, prefix: str = "rag") -> None:
        from pymilvus import MilvusClient

        uri, _, name = uri.partition("#")
        self.where = uri + (f"#{name}" if name else "")
        self.uri, self.lock_timeout = uri, lock_timeout
        self.chunks, self.docs, self.terms, self.meta = (f"{name or prefix}_{part}"
                                                         for part in ("chunks", "docs", "terms", "meta"))
        local = not uri.startswith(("http://", "https://"))
        if local:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            _hold_lite_file(Path(uri), lock_timeout)
        token = os.environ.get("MILVUS_TOKEN", "") if not local else ""
        try:
            self.client = MilvusClient(uri, token=token)
        except Exception as exc:
            hint = (" A Milvus Lite file is open in one process at a time: is another `rag` command or "
                    "`rag serve` using it?") if local else " Check the address, the server and MILVUS_TOKEN."
            raise RagError(f"cannot open the Milvus store {self.where}: {_short(exc)}.{hint}") from exc
        self._lock = threading.Lock()
        self._schemas: dict[str, dict] = {}  # described once, for _put
        self._known = _KnownCounts()
        self._state: dict | None = None  # the state a write builds on (while writing)
        with _milvus_errors(self.where, RagError, "open"):
            for name in (self.chunks, self.docs, self.terms, self.meta):  # a reopened Milvus Lite file
                if self.client.has_collection(name):                      # has them released
                    self.client.load_collection(name)

    # -- state -------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        if not self.client.has_collection(self.meta):
            return None
        rows = self.client.query(self.meta, ids=["state"], output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def visible(self, state: dict) -> str:
        """The filter of rows a reader of ``state`` sees."""
        expr = f"commit <= {int(state['committed'])}"
        if state.get("retire"):
            expr += f" and not (doc_id in {_quote(state['retire'])} and commit < {int(state['committed'])})"
        return expr

    def settings(self) -> dict | None:
        state = self._state or self._read_state()
        return dict(state["settings"]) if state else None

    def view(self) -> MilvusView | None:
        state = self._read_state()
        return MilvusView(self, state) if state is not None else None

    def df(self, keys: np.ndarray, state: dict) -> dict[int, int]:
        """Chunks holding each of ``keys`` in ``state``: a term's row written by a commit
        after ``state``'s (unpublished, or newer than this reader) gives its previous count."""
        out: dict[int, int] = {}
        keys = [int(k) for k in keys]
        committed = int(state["committed"])
        for lo in range(0, len(keys), PAGE):
            for row in self.client.query(self.terms, ids=keys[lo:lo + PAGE], output_fields=["term", "df", "prev", "commit"]):
                out[int(row["term"])] = int(row["df"] if int(row["commit"]) <= committed else row["prev"])
        return out

    def doc_heads(self, versions: Sequence[tuple[str, int]]) -> dict[str, dict]:
        """Title, source, date and metadata of each (document, commit) version, by key."""
        keys = list(dict.fromkeys(f"{doc_id}@{commit}#0" for doc_id, commit in versions))
        if not keys:
            return {}
        rows = self.client.query(self.docs, ids=keys, output_fields=["doc_id", "title", "source", "published", "meta"])
        return {r["doc_id"]: r for r in rows}

    def _all(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        """Every row matching ``expr`` (a query returns at most 16,384 rows; more come in pages)."""
        rows = self.client.query(collection, filter=expr, output_fields=fields, limit=QUERY_MAX)
        if len(rows) < QUERY_MAX:
            return rows
        it = self.client.query_iterator(collection, batch_size=PAGE, filter=expr, output_fields=fields)
        out: list[dict] = []
        try:
            while page := it.next():
                out.extend(page)
        finally:
            it.close()
        return out

    # -- writing -----------------------------------------------------------------------
    @contextmanager
    def writing(self, settings: dict) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise RagError(f"another thread is writing {self.where}; try again when it has finished")
        try:
            with _milvus_errors(self.where):
                state = self._read_state()
                if state is None:
                    self._create(settings["dim"])
                    state = {"settings": recorded_settings(settings), "committed": 0, "retire": [],
                             "next_id": 0, "documents": 0, "chunks": 0, "length": 0, "dense_index": "FLAT",
                             "fresh": True}
                self._recover(state)
            if state.get("fresh"):
                self._known = _KnownCounts(0, complete=True)
            elif self._known.commit != int(state["committed"]):  # another writer committed since
                self._known = _KnownCounts()
            self._state = state
            yield
        finally:
            self._state = None
            self._lock.release()

    def _create(self, dim: int) -> None:
        from pymilvus import DataType

        def collection(name: str, fields: list[tuple], *indexes: tuple[str, str, str, dict]) -> None:
            if self.client.has_collection(name):
                return
            schema = self.client.create_schema(auto_id=False)
            for field, kind, opts in fields:
                schema.add_field(field, kind, **opts)
            self.client.create_collection(name, schema=schema, consistency_level="Strong")
            params = self.client.prepare_index_params()
            for field, kind, metric, opts in indexes:
                params.add_index(field, index_type=kind, metric_type=metric, params=opts)
            # empty: nothing to wait for (pymilvus would poll each index every 0.5 s)
            self.client.create_index(name, params, sync=False)
            self.client.load_collection(name)

        text = {"max_length": 65535}
        small = ("_v", "FLAT", "L2", {})
        collection(self.chunks, [
            ("id", DataType.INT64, {"is_primary": True}), ("commit", DataType.INT64, {}),
            ("doc_id", DataType.VARCHAR, {"max_length": 512}), ("idx", DataType.INT64, {}),
            ("start", DataType.INT64, {}), ("end", DataType.INT64, {}), ("length", DataType.INT64, {}),
            ("heading", DataType.VARCHAR, text), ("text", DataType.VARCHAR, text),
            ("dense", DataType.FLOAT_VECTOR, {"dim": dim}), ("sparse", DataType.SPARSE_FLOAT_VECTOR, {}),
        ], ("dense", "FLAT", "IP", {}), ("sparse", "SPARSE_INVERTED_INDEX", "IP", {}))
        collection(self.docs, [
            ("key", DataType.VARCHAR, {"is_primary": True, "max_length": 600}),
            ("doc_id", DataType.VARCHAR, {"max_length": 512}), ("commit", DataType.INT64, {}),
            ("part", DataType.INT64, {}), ("title", DataType.VARCHAR, text), ("source", DataType.VARCHAR, text),
            ("published", DataType.VARCHAR, {"max_length": 64}), ("meta", DataType.VARCHAR, text),
            ("content_hash", DataType.VARCHAR, {"max_length": 64}), ("file_hash", DataType.VARCHAR, {"max_length": 64}),
            ("added_at", DataType.VARCHAR, {"max_length": 32}), ("chunk_count", DataType.INT64, {}),
            ("text", DataType.VARCHAR, text), ("_v", DataType.FLOAT_VECTOR, {"dim": 2}),
        ], small)
        collection(self.terms, [
            ("term", DataType.INT64, {"is_primary": True}), ("df", DataType.INT64, {}), ("prev", DataType.INT64, {}),
            ("commit", DataType.INT64, {}), ("_v", DataType.FLOAT_VECTOR, {"dim": 2}),
        ], small)
        collection(self.meta, [
            ("key", DataType.VARCHAR, {"is_primary": True, "max_length": 64}), ("value", DataType.VARCHAR, text),
            ("_v", DataType.FLOAT_VECTOR, {"dim": 2}),
        ], small)

    def _publish(self, state: dict) -> None:
        """Make ``state`` the one readers see: one row replaced, the commit's only atomic step."""
        public = {k: v for k, v in state.items() if k != "fresh"}
        self.client.upsert(self.meta, [{"key": "state", "value": json.dumps(public, ensure_ascii=False), "_v": _DUMMY}])

    def _recover(self, state: dict) -> None:
        """Drop what an unpublished commit left (the state names the commit that was being
        written), and finish the deletes of a published one."""
        committed = int(state["committed"])
        if int(state.get("writing") or 0) > committed:
            above = f"commit > {committed}"
            for name in (self.chunks, self.docs):
                self.client.delete(name, filter=above)
            rows = self._all(self.terms, above, ["term", "prev"])
            prev = [int(r["prev"]) for r in rows]
            self._put(self.terms, {"term": [int(r["term"]) for r in rows], "df": prev, "prev": prev,
                                   "commit": [committed] * len(rows)}, upsert=True)
            state["writing"] = None
            self._publish(state)
        if state.get("retire"):
            old = f"doc_id in {_quote(state['retire'])} and commit < {int(state['committed'])}"
            self.client.delete(self.chunks, filter=old)
            self.client.delete(self.docs, filter=old)
            state["retire"] = []
            self._publish(state)

    def _base(self) -> dict:
        if self._state is None:
            raise RuntimeError("call inside `with store.writing(settings):`")
        return self._state

    def known_documents(self) -> list[KnownDocument]:
        state = self._base()
        if state.get("fresh"):
            return []
        rows = self._all(self.docs, f"part == 0 and {self.visible(state)}",
                         ["doc_id", "source", "file_hash", "content_hash"])
        return [KnownDocument(r["doc_id"], r["source"], r["file_hash"] or None, r["content_hash"]) for r in rows]

    def find_document(self, ref: str) -> str | None:
        state = self._state or self._read_state()
        if state is None or state.get("fresh"):
            return None
        expr = f"part == 0 and (doc_id == {json.dumps(ref)} or source == {json.dumps(ref)}) and {self.visible(state)}"
        rows = self.client.query(self.docs, filter=expr, output_fields=["doc_id"], limit=1)
        return rows[0]["doc_id"] if rows else None

    def commit(self, batch: Batch) -> list[int]:
        state = self._base()
        with _milvus_errors(self.where):
            new_state, ids, counts = self._write(state, batch)
            self._publish(new_state)
            self._known.put(*counts, new_state["committed"])
            self._state = new_state
            if new_state["retire"]:
                self._recover(new_state)
            self._fit_dense_index(new_state)
            # Seal the new rows: searching unsealed ones was 10-60x slower in Milvus Lite. Terms
            # are only read by key, as fast unsealed, and sealing them took 3 s a commit.
            for name in (self.chunks, self.docs):
                self.client.flush(name)
        return ids

    def _write(self, state: dict, batch: Batch) -> tuple[dict, list[int], tuple[np.ndarray, np.ndarray]]:
        """Insert ``batch``'s rows under the next commit number (not yet visible); returns the
        state to publish, the new chunks' ids and the changed terms' new counts."""
        number = int(state["committed"]) + 1
        state["writing"] = number  # so that a failure anywhere below is cleaned up by the next writer
        self._publish(state)
        tokenizer = state["settings"]["tokenizer"]
        visible = self.visible(state)
        old_chunks = old_docs = []
        if batch.remove and not state.get("fresh"):
            gone = f"doc_id in {_quote(batch.remove)} and {visible}"
            old_chunks = self._all(self.chunks, gone, ["id", "sparse", "length"])
            old_docs = self._all(self.docs, f"part == 0 and {gone}", ["doc_id"])
        terms = [sparse.terms(c.text, tokenizer) for c in batch.chunks]
        lengths = [int(t[1].sum()) for t in terms]
        n = int(state["chunks"]) - len(old_chunks) + len(batch.chunks)
        length = int(state["length"]) - sum(int(c["length"]) for c in old_chunks) + sum(lengths)
        avgdl = length / n if n else 1.0
        first = int(state["next_id"])
        ids = list(range(first, first + len(batch.chunks)))
        vectors = sparse.chunk_matrix(terms, avgdl)
        if ids:
            docs = {d.doc_id: d for d, _ in batch.documents}  # a passage's text is its document's own slice
            self._put(self.chunks, {
                "id": ids, "commit": [number] * len(ids), "doc_id": [c.doc_id for c in batch.chunks],
                "idx": [c.index for c in batch.chunks], "start": [c.start for c in batch.chunks],
                "end": [c.end for c in batch.chunks], "length": lengths, "heading": [c.heading for c in batch.chunks],
                "text": [docs[c.doc_id].text[c.start:c.end] for c in batch.chunks],
                "dense": np.asarray(batch.vectors, np.float32), "sparse": vectors}, page=PAGE)
        self._insert_docs(batch, number)
        counts = self._update_terms(state, vectors.indices, old_chunks, number)
        new_state = dict(state, committed=number, next_id=first + len(ids), chunks=n, length=length,
                         documents=int(state["documents"]) - len(old_docs) + len(batch.documents),
                         retire=list(batch.remove), writing=None, updated_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        new_state.pop("fresh", None)
        return new_state, ids, counts

    def _update_terms(self, state: dict, added: np.ndarray, old_chunks: list[dict],
                      number: int) -> tuple[np.ndarray, np.ndarray]:
        """Write each changed term's new count, keeping the published one as ``prev``;
        returns (terms, new counts)."""
        keys, delta = sparse.df_delta(added, (c.get("sparse") or {} for c in old_chunks))
        prev = self._known.get(keys, lambda unknown: self.df(unknown, state))
        self._put(self.terms, {"term": keys, "df": prev + delta, "prev": prev, "commit": np.full(len(keys), number)},
                  upsert=True)
        return keys, prev + delta

    def _insert_docs(self, batch: Batch, number: int) -> None:
        counts: dict[str, int] = {}
        for c in batch.chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        rows = []
        for d, file_hash in batch.documents:
            pieces = [d.text[i:i + TEXT_PIECE] for i in range(0, len(d.text), TEXT_PIECE)] or [""]
            for part, piece in enumerate(pieces):
                head = part == 0
                rows.append({
                    "key": f"{d.doc_id}@{number}#{part}", "doc_id": d.doc_id, "commit": number, "part": part,
                    "title": d.title if head else "", "source": d.source if head else "",
                    "published": (d.published or "") if head else "",
                    "meta": json.dumps(dict(d.meta or {}), ensure_ascii=False) if head else "{}",
                    "content_hash": content_hash(d.text) if head else "", "file_hash": (file_hash or "") if head else "",
                    "added_at": now, "chunk_count": counts.get(d.doc_id, 0) if head else 0, "text": piece})
        if rows:
            self._put(self.docs, {name: [r[name] for r in rows] for name in rows[0]}, page=100)

    def _put(self, collection: str, columns: dict, upsert: bool = False, page: int = 5 * PAGE) -> None:
        """Insert (or upsert) rows given as columns (lists, arrays, a sparse matrix), ``page``
        rows a request. MilvusClient takes only a dict per row, whose packing cost more than
        the write itself (profiled: 42% of a commit's time); the client's connection takes
        columns, as pymilvus's own column-based insert does. A collection's dummy ``_v``
        vector is added here."""
        conn = self.client._get_connection()
        schema = self._schemas.get(collection)
        if schema is None:
            schema = self._schemas[collection] = self.client.describe_collection(collection)
        n = len(next(iter(columns.values())))  # the first column is the primary key
        for lo in range(0, n, page):
            entities = []
            for f in schema["fields"]:
                values = columns[f["name"]][lo:lo + page] if f["name"] != "_v" else [_DUMMY] * min(page, n - lo)
                if isinstance(values, np.ndarray):
                    values = values.tolist()
                entities.append({"name": f["name"], "type": f["type"], "values": values})
            write = conn.upsert if upsert else conn.batch_insert
            write(collection, entities, schema=schema, context=self.client._generate_call_context())

    def _fit_dense_index(self, state: dict) -> None:
        """Exact search while the collection is small, HNSW above ``flat_max`` chunks."""
        settings = VectorIndexSettings.recorded(state["settings"])
        want = "HNSW" if int(state["chunks"]) > settings.flat_max else "FLAT"
        if want == state.get("dense_index", "FLAT"):
            return
        self.client.release_collection(self.chunks)
        self.client.drop_index(self.chunks, "dense")
        params = self.client.prepare_index_params()
        hnsw = {"M": settings.hnsw_m, "efConstruction": settings.hnsw_ef_construction}
        params.add_index("dense", index_type=want, metric_type="IP", params=hnsw if want == "HNSW" else {})
        self.client.create_index(self.chunks, params)
        self.client.load_collection(self.chunks)
        state["dense_index"] = want
        self._publish(state)

    # -- the catalogue -----------------------------------------------------------------
    def documents(self) -> list[dict]:
        state = self._read_state()
        if state is None:
            return []
        rows = self._all(self.docs, f"part == 0 and {self.visible(state)}",
                         ["doc_id", "title", "source", "published", "chunk_count", "added_at"])
        rows.sort(key=lambda r: (r["added_at"], r["source"]))
        return [{"doc_id": r["doc_id"], "title": r["title"], "source": r["source"], "published": r["published"] or None,
                 "chunks": int(r["chunk_count"]), "added_at": r["added_at"]} for r in rows]

    def document(self, doc_id: str) -> Document | None:
        state = self._read_state()
        if state is None:
            return None
        rows = self._all(self.docs, f"doc_id == {json.dumps(doc_id)} and {self.visible(state)}",
                         ["part", "title", "source", "published", "meta", "text"])
        if not rows:
            return None
        rows.sort(key=lambda r: int(r["part"]))
        head = rows[0]
        return Document(head["title"], "".join(r["text"] for r in rows), head["source"], head["published"] or None,
                        json.loads(head["meta"]), doc_id)

    def stats(self) -> dict:
        state = self._read_state() or {}
        path = Path(self.uri)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else (
            path.stat().st_size if path.is_file() else 0)
        return {"documents": int(state.get("documents", 0)), "chunks": int(state.get("chunks", 0)), "bytes": size,
                "updated_at": state.get("updated_at"), "dense_index": state.get("dense_index")}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _short(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "message", None) or exc).split())[:300]


@contextmanager
def _milvus_errors(where: str, error: type[RagError] = IndexWriteError, doing: str = "write") -> Iterator[None]:
    """A failed Milvus call while writing is one IndexWriteError line; nothing is published."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        if doing != "write":
            raise error(f"could not {doing} the Milvus store {where}: {_short(exc)}") from exc
        raise IndexWriteError(
            f"could not write the index in Milvus ({where}): {_short(exc)}. The index is unchanged since its last "
            "complete commit and still answers; what this write left is removed by the next one. Check the server, "
            "then run the command again.") from exc
