"""The vector index choice (rag.store.new_vector_index / fit_vector_index): exact search for
small collections, IVF-Flat above a threshold, with removal and reconstruction working in
both. Thresholds are set low (VectorIndexSettings) so that everything runs on a few thousand vectors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from rag.config import VECTOR_INDEX_KEY, VectorIndexSettings
from rag.lexical import BM25Index
from rag.retrieval import search
from rag.store import LocalView
from rag.store import generations as store

DIM = 32


def clustered(n: int, seed: int = 0, clusters: int = 40) -> np.ndarray:
    """Unit vectors in clusters, like sentence embeddings (not uniform on the sphere)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, DIM)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    faiss.normalize_L2(x)
    return x


@pytest.fixture
def low_threshold() -> VectorIndexSettings:
    return VectorIndexSettings(flat_max=1000, ivf_shrink=500)


def flat_with(x: np.ndarray, ids: np.ndarray):
    index = store.new_vector_index(DIM)
    index.add_with_ids(x, ids)
    return index


def test_small_collections_use_exact_search():
    index = store.new_vector_index(DIM)
    assert isinstance(index, faiss.IndexIDMap2)
    assert store.vector_index_kind(index) == "flat"
    index.add_with_ids(clustered(200), np.arange(200))
    assert store.fit_vector_index(index) is index  # below flat_max nothing changes


def test_ivf_above_threshold_recall_against_exact(low_threshold):
    n = 4000
    x, ids = clustered(n), np.arange(n, dtype=np.int64) * 7 + 3  # ids need not be contiguous
    exact = flat_with(x, ids)
    ivf = store.fit_vector_index(exact, low_threshold)
    assert isinstance(ivf, faiss.IndexIVF)
    assert store.vector_index_kind(ivf).startswith("ivf")
    assert ivf.ntotal == n and ivf.nprobe >= low_threshold.ivf_min_probe
    queries = clustered(200, seed=1)
    _, want = exact.search(queries, 10)
    _, got = ivf.search(queries, 10)
    recall = np.mean([len(set(w) & set(g)) / 10 for w, g in zip(want, got)])
    assert recall >= 0.98


def test_ivf_removal_and_reconstruction(low_threshold, tmp_path):
    n = 3000
    x, ids = clustered(n), np.arange(n, dtype=np.int64)
    ivf = store.fit_vector_index(flat_with(x, ids), low_threshold)
    assert isinstance(ivf, faiss.IndexIVF)
    # float16 codes: reconstructed vectors within 1e-3 of the originals
    np.testing.assert_allclose(ivf.reconstruct_batch(ids[[5, 17, 2999]]), x[[5, 17, 2999]], atol=1e-3)
    # what KnowledgeBase._commit does: clone, remove, add, then write and read back
    copy = faiss.clone_index(ivf)
    gone = np.arange(100, 400, dtype=np.int64)
    assert copy.remove_ids(gone) == len(gone)
    assert ivf.ntotal == n  # the published snapshot is untouched
    extra = clustered(50, seed=2)
    copy.add_with_ids(extra, np.arange(n, n + 50, dtype=np.int64))
    faiss.write_index(copy, str(tmp_path / "dense.faiss"))
    back = faiss.read_index(str(tmp_path / "dense.faiss"))
    assert store.vector_index_kind(back) == store.vector_index_kind(copy)
    assert back.ntotal == n - len(gone) + 50
    np.testing.assert_allclose(back.reconstruct_batch(np.array([n + 1, 0], np.int64)), np.stack([extra[1], x[0]]),
                               atol=1e-3)
    _, found = back.search(x[gone[:20]], 10)
    assert not set(found.ravel()) & set(gone.tolist())
    with pytest.raises(RuntimeError):
        back.reconstruct_batch(gone[:1])


def test_ivf_shrinks_back_to_exact(low_threshold):
    n = 2000
    x, ids = clustered(n), np.arange(n, dtype=np.int64)
    ivf = store.fit_vector_index(flat_with(x, ids), low_threshold)
    assert isinstance(ivf, faiss.IndexIVF)
    ivf.remove_ids(np.arange(0, 1700, dtype=np.int64))
    flat = store.fit_vector_index(ivf, low_threshold)
    assert store.vector_index_kind(flat) == "flat" and flat.ntotal == 300
    np.testing.assert_allclose(flat.reconstruct_batch(np.array([1700, 1999], np.int64)), x[[1700, 1999]], atol=1e-3)


def test_ivf_retrained_when_collection_grows(low_threshold):
    x = clustered(20000)
    ivf = store.fit_vector_index(flat_with(x[:1200], np.arange(1200)), low_threshold)
    assert isinstance(ivf, faiss.IndexIVF)
    assert store.fit_vector_index(ivf, low_threshold) is ivf  # same size: kept
    ivf.add_with_ids(x[1200:], np.arange(1200, 20000))
    grown = store.fit_vector_index(ivf, low_threshold)  # 16x the size: lists x4, so retrained
    assert grown is not ivf and grown.nlist > ivf.nlist and grown.ntotal == 20000


def test_store_round_trip_and_hybrid_search(low_threshold, tmp_path):
    """The write path picks the index, the manifest records it, retrieval and removal work."""
    n = 1500
    x = clustered(n)
    texts = [f"第{i}号文件 关于{'晋中博士创新站' if i % 100 == 0 else '安全生产检查'}的通知" for i in range(n)]
    manifest = {"format": store.FORMAT_VERSION, "model": "test", "dim": DIM, "tokenizer": "bigram",
                "chunking": {"size": 300, "overlap": 60}, VECTOR_INDEX_KEY: low_threshold.as_dict(), "generation": ""}
    snap = store.empty_snapshot(tmp_path / "index", manifest)
    vectors = store.new_vector_index(DIM)
    vectors.add_with_ids(x, np.arange(n, dtype=np.int64))
    bm25 = BM25Index("bigram")
    bm25.add(np.arange(n), texts)

    def rows(con):
        con.execute("INSERT INTO documents VALUES ('d','t','s',NULL,'{}','x','h',NULL,'now',?)", (n,))
        con.executemany('INSERT INTO chunks (id, doc_id, idx, start, "end") VALUES (?,?,?,?,?)',
                        [(i, "d", i, 0, 1) for i in range(n)])

    written = store.write_generation(snap, vectors, bm25, rows)
    assert written.manifest["vector_index"].startswith("ivf")
    loaded = store.load_snapshot(tmp_path / "index", written.manifest)
    assert isinstance(loaded.vectors, faiss.IndexIVF)
    hits = search(LocalView(loaded), "晋中博士创新站", x[300], 5, mode="dense")
    assert hits[0].chunk_id == 300
    assert abs(hits[0].dense - 1.0) < 1e-3  # rescored from the reconstructed (float16) vector
    assert 300 in {h.chunk_id for h in search(LocalView(loaded), "晋中博士创新站", x[300], 20)}

    vectors = faiss.clone_index(loaded.vectors)
    bm25 = loaded.bm25
    vectors.remove_ids(np.array([300], np.int64))
    bm25.remove(np.array([300]))

    def drop(con):
        con.execute("DELETE FROM chunks WHERE id = 300")

    again = store.write_generation(loaded, vectors, bm25, drop)
    reloaded = store.load_snapshot(tmp_path / "index", again.manifest)
    for mode in ("hybrid", "dense", "bm25"):
        assert 300 not in {h.chunk_id for h in search(LocalView(reloaded), "晋中博士创新站", x[300], 20, mode=mode)}


def test_search_vectors_matches_search_and_restores_threads():
    x = clustered(500)
    index = flat_with(x, np.arange(500, dtype=np.int64))
    before = faiss.omp_get_max_threads()
    _, got = store.search_vectors(index, x[:3], 5)
    _, want = index.search(x[:3], 5)
    np.testing.assert_array_equal(got, want)
    assert faiss.omp_get_max_threads() == before
