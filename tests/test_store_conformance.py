"""The store protocol's conformance suite: every IndexStore implementation passes it.

Parametrized over the local store (FAISS + BM25 + SQLite generations) and the Milvus store
on Milvus Lite (a local .db file, the real pymilvus API; skipped without the ``scale``
extra). Vectors are made up (deterministic, per text) so that no model loads: these tests
are about the store, and tests/test_store_milvus.py runs the real model through Milvus.
"""

from __future__ import annotations

import errno
import hashlib

import numpy as np
import pytest

from rag.chunking import ChunkSettings, chunk_text, retrieval_text
from rag.errors import IndexWriteError
from rag.store import Batch, ChunkRow, IndexStore, LocalStore, StoreView
from rag.types import Document

DIM = 16
SETTINGS = {"model": "test-vectors", "dim": DIM, "chunking": {"size": 40, "overlap": 10}, "tokenizer": "bigram"}
CHUNKING = ChunkSettings(size=40, overlap=10)
ARTICLES = {
    "parks": ("太原市园林建设", ("太原市今年新建了12座公园，城市绿地面积增加了300公顷。"
              "市园林局表示，明年还将改造20座老旧公园，并新建50公里绿道。")),
    "talent": ("晋中人才工作", ("晋中市建立院士(专家)工作站3家，获批设立1家国家博士后科研站，7家省级博士创新站。"
               "全市引进高层次人才120名。")),
    "mines": ("大同煤矿改造", ("大同市完成了15处煤矿的智能化改造，井下作业人员减少了三成。"
              "下一步将推广无人驾驶运输车辆。")),
}


def vector(text: str) -> np.ndarray:
    """A made-up unit vector, the same for the same text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def document(key: str, text: str | None = None) -> Document:
    title, body = ARTICLES[key]
    return Document(title, text or body, f"/articles/{key}.txt", f"2026-01-0{1 + list(ARTICLES).index(key)}",
                    {"doc_type": "通知"}, f"doc-{key}")


def batch_of(docs: list[Document], remove: list[str] = ()) -> Batch:
    chunks = [ChunkRow(d.doc_id, c.index, c.start, c.end, c.heading, retrieval_text(d.title, c.text, c.heading))
              for d in docs for c in chunk_text(d.text, d.doc_id, CHUNKING)]
    vectors = np.array([vector(c.text) for c in chunks], np.float32).reshape(len(chunks), DIM)
    return Batch(list(remove), [(d, f"file-{d.doc_id}") for d in docs], chunks, vectors)


def commit(store: IndexStore, batch: Batch) -> list[int]:
    with store.writing(SETTINGS):
        return store.commit(batch)


def open_kind(kind: str, path) -> IndexStore:
    if kind == "local":
        return LocalStore(path / "index")
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from rag.store.milvus import MilvusStore

    return MilvusStore(str(path / "kb.db"))


@pytest.fixture(params=["local", pytest.param("milvus", marks=pytest.mark.slow)])  # Milvus Lite starts a server
def kind(request) -> str:
    return request.param


@pytest.fixture
def store(kind, tmp_path):
    s = open_kind(kind, tmp_path)
    yield s
    if hasattr(s, "close"):
        s.close()


@pytest.fixture
def filled(store):
    ids = commit(store, batch_of([document(k) for k in ARTICLES]))
    return store, ids


def fail_next_commit(kind: str, store, monkeypatch) -> None:
    """Make the next commit fail at its last step (publishing), after its rows were written."""
    if kind == "local":
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("rag.store.generations.write_json_atomic", full)
    else:
        from pymilvus.exceptions import MilvusException

        real = store._publish

        def publish(state):
            if state.get("writing") is None:  # the publishing of the commit, not its "writing" mark
                raise MilvusException(message="injected: the server went away")
            return real(state)

        monkeypatch.setattr(store, "_publish", publish)


def all_chunk_ids(view: StoreView) -> set[int]:
    """Every chunk the view can find (the collections here are tiny)."""
    ids, _ = view.dense_top_k(vector("任意"), 1000)
    return set(ids.tolist())


def test_an_empty_store(store):
    assert isinstance(store, IndexStore)
    assert store.settings() is None and store.view() is None
    assert store.documents() == [] and store.document("doc-parks") is None
    assert store.stats()["documents"] == 0 and store.stats()["chunks"] == 0


def test_add_documents_stats_and_chunks(filled):
    store, ids = filled
    assert store.settings() == SETTINGS
    assert len(ids) == len(set(ids)) == store.stats()["chunks"] > 3  # ids assigned by the store, distinct
    assert store.stats()["documents"] == 3
    rows = store.documents()
    assert {r["doc_id"] for r in rows} == {f"doc-{k}" for k in ARTICLES}
    parks = next(r for r in rows if r["doc_id"] == "doc-parks")
    assert parks["title"] == "太原市园林建设" and parks["source"] == "/articles/parks.txt"
    assert parks["published"] == "2026-01-01" and parks["chunks"] >= 1 and parks["added_at"]
    doc = store.document("doc-talent")
    assert doc == document("talent")
    view = store.view()
    assert isinstance(view, StoreView) and view.chunk_count() == len(ids)
    chunks = view.chunks(ids)
    assert set(chunks) == set(ids)
    for c in chunks.values():
        original = document(c.doc_id.removeprefix("doc-"))
        assert c.text == original.text[c.start:c.end] and c.title == original.title
        assert c.meta == {"doc_type": "通知"} and c.source == original.source
    with store.writing(SETTINGS):
        known = {d.doc_id: d for d in store.known_documents()}
    assert known["doc-mines"].file_hash == "file-doc-mines" and known["doc-mines"].source == "/articles/mines.txt"
    assert len({d.content_hash for d in known.values()}) == 3
    assert store.find_document("doc-mines") == "doc-mines" == store.find_document("/articles/mines.txt")
    assert store.find_document("nothing") is None


def test_dense_top_k_and_scores_of_given_ids(filled):
    store, ids = filled
    view = store.view()
    chunks = view.chunks(ids)
    target = ids[len(ids) // 2]
    text = retrieval_text(chunks[target].title, chunks[target].text, chunks[target].heading)
    query = vector(text)
    top, scores = view.dense_top_k(query, 3)
    assert top[0] == target and scores[0] == pytest.approx(1.0, abs=1e-3)
    assert list(scores) == sorted(scores, reverse=True) and len(top) == 3
    exact = view.dense_scores(query, np.array(ids))
    want = [float(vector(retrieval_text(c.title, c.text, c.heading)) @ query) for c in (chunks[i] for i in ids)]
    assert exact == pytest.approx(want, abs=1e-3)
    assert len(view.dense_top_k(query, 1000)[0]) == len(ids)  # k above the size: every chunk once


def test_lexical_top_k_scores_and_evidence(filled):
    store, ids = filled
    view = store.view()
    question = "晋中有几家省级博士创新站"
    top, scores = view.lexical_top_k(question, 5)
    chunks = view.chunks(top)
    assert "7家省级博士创新站" in chunks[int(top[0])].text
    assert all(s > 0 for s in scores) and list(scores) == sorted(scores, reverse=True)
    given = view.lexical_scores(question, np.array(ids))
    by_id = dict(zip(ids, given))
    assert [by_id[int(i)] for i in top] == pytest.approx(list(scores), rel=1e-4)
    parks = [i for i, c in view.chunks(ids).items() if c.doc_id == "doc-parks"]
    assert all(by_id[i] == 0 for i in parks)  # no term of the question: score 0
    known, held = view.query_evidence(question, [int(top[0]), parks[0]])
    assert 0 < known <= 1 and held[0] > 0.5 and held[1] == 0
    missing, names, n = view.missing_words("北京有几家省级博士创新站")
    assert "北京" in missing and "北京" in names and n >= 2
    assert view.missing_words(question)[0] == []
    assert len(view.lexical_top_k("火星探测器", 5)[0]) == 0  # nothing matches: nothing returned


def test_update_replaces_a_document_in_one_commit(filled):
    store, ids = filled
    old = {i for i, c in store.view().chunks(ids).items() if c.doc_id == "doc-talent"}
    new_doc = document("talent", "晋中市今年新增9家省级博士创新站，总数达到16家。")
    new_ids = commit(store, batch_of([new_doc], remove=["doc-talent"]))
    assert not set(new_ids) & set(ids)  # ids are never reused
    view = store.view()
    assert store.stats()["documents"] == 3 and store.document("doc-talent").text == new_doc.text
    assert view.chunks(list(old)) == {}
    assert all_chunk_ids(view) == (set(ids) - old) | set(new_ids)
    top, _ = view.lexical_top_k("晋中新增几家博士创新站", 3)
    assert int(top[0]) in new_ids
    with store.writing(SETTINGS):
        known = {d.doc_id: d for d in store.known_documents()}
    assert len(known) == 3 and known["doc-talent"].content_hash == hashlib.sha256(new_doc.text.encode()).hexdigest()


def test_remove_documents(filled):
    store, _ids = filled
    commit(store, Batch(remove=["doc-talent", "doc-mines"]))
    view = store.view()
    assert [r["doc_id"] for r in store.documents()] == ["doc-parks"]
    assert store.document("doc-talent") is None and store.find_document("/articles/talent.txt") is None
    assert len(view.lexical_top_k("博士创新站", 5)[0]) == 0
    assert {c.doc_id for c in view.chunks(list(all_chunk_ids(view))).values()} == {"doc-parks"}
    assert store.stats()["chunks"] == view.chunk_count() == len(all_chunk_ids(view))
    assert view.missing_words("晋中有几家省级博士创新站")[0]  # its words left with it


def test_retry_after_a_failed_commit(kind, filled, monkeypatch):
    store, ids = filled
    before = (store.documents(), store.stats()["chunks"])
    fail_next_commit(kind, store, monkeypatch)
    extra = Document("运城苹果产业", "运城市苹果种植面积达到160万亩，出口量增长了两成。", "/articles/apples.txt",
                     None, {}, "doc-apples")
    other = Document("吕梁红枣", "吕梁市红枣加工企业达到45家。", "/articles/dates.txt", None, {}, "doc-dates")
    with pytest.raises(IndexWriteError):
        commit(store, batch_of([extra, other], remove=["doc-mines"]))
    monkeypatch.undo()
    assert (store.documents(), store.stats()["chunks"]) == before  # the failed commit changed nothing
    view = store.view()
    assert len(view.lexical_top_k("运城苹果", 5)[0]) == 0 and all_chunk_ids(view) == set(ids)
    new_ids = commit(store, batch_of([extra], remove=["doc-mines"]))  # the retry
    view = store.view()
    assert {r["doc_id"] for r in store.documents()} == {"doc-parks", "doc-talent", "doc-apples"}
    assert all_chunk_ids(view) == {i for i in ids if view.chunks([i])} | set(new_ids)
    assert store.stats()["chunks"] == len(all_chunk_ids(view))  # no rows of the failed try left over
    assert "吕梁" in view.missing_words("吕梁有几家红枣加工企业")[0]  # the failed try's terms are not counted
    assert "160万亩" in view.chunks([int(view.lexical_top_k("运城苹果种植面积", 1)[0][0])]).popitem()[1].text


def test_a_reader_during_a_write_sees_one_state(filled):
    store, _ids = filled
    before = store.view()
    old = all_chunk_ids(before)
    new_doc = document("parks", "太原市今年新建了18座口袋公园。")
    new_ids = set(commit(store, batch_of([new_doc], remove=["doc-parks"])))
    # the view taken before the commit never sees the new rows (it may lose replaced ones)
    assert all_chunk_ids(before) <= old and not all_chunk_ids(before) & new_ids
    assert not set(before.lexical_top_k("口袋公园", 5)[0].tolist()) & new_ids
    after = store.view()
    assert new_ids <= all_chunk_ids(after)
    assert {c.doc_id for c in after.chunks(list(all_chunk_ids(after))).values()} == {f"doc-{k}" for k in ARTICLES}
    assert after.chunks(list(new_ids))[min(new_ids)].text in new_doc.text


def test_reopened_store_has_the_same_state(kind, filled, tmp_path):
    store, ids = filled
    if hasattr(store, "close"):
        store.close()
    again = open_kind(kind, tmp_path)
    try:
        assert again.settings() == SETTINGS and again.stats()["chunks"] == len(ids)
        assert all_chunk_ids(again.view()) == set(ids)
        new_ids = commit(again, batch_of([document("mines", "大同市新建了2座煤矿博物馆。")], remove=["doc-mines"]))
        assert min(new_ids) > max(ids)
    finally:
        if hasattr(again, "close"):
            again.close()
