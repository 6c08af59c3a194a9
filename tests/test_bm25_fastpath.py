"""BM25's sparse fast path (add, remove, scores, saved weights) gives the scores of the
textbook formula, computed here the slow and obvious way."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from rag.lexical import BM25Index, tokenize

TEXTS = [
    "晋中市建立院士工作站3家，7家省级博士创新站。",
    "山西省新建70个博士创新站，引进人才。",
    "各地要做好疫情防控和复工复产工作。",
    "安全生产检查：企业要落实主体责任。",
    "Beijing 2026 GDP growth target is 5%.",
    "省级博士创新站的设立条件和申报程序。",
]


def reference(index: BM25Index, docs: dict[int, str], query: str) -> np.ndarray:
    """BM25 by the formula, over the live rows ``docs``."""
    tfs = {i: Counter(tokenize(t, index.tokenizer).tolist()) for i, t in docs.items()}
    n = len(tfs)
    avgdl = sum(sum(c.values()) for c in tfs.values()) / n
    terms = set(tokenize(query, index.tokenizer, query=True).tolist())
    out = np.zeros(index.size)
    for term in terms:
        df = sum(term in c for c in tfs.values())
        if not df:
            continue
        idf = math.log1p((n - df + 0.5) / (df + 0.5))
        for i, c in tfs.items():
            f = c.get(term, 0)
            if f:
                dl = sum(c.values())
                out[i] += idf * f * (index.k1 + 1) / (f + index.k1 * (1 - index.b + index.b * dl / avgdl))
    return out


def test_scores_match_formula_through_add_remove_save_load(tmp_path):
    index = BM25Index("bigram")
    index.add(np.arange(3), TEXTS[:3])
    index.add(np.array([5, 3]), [TEXTS[5], TEXTS[3]])  # out of order, with a gap at row 4
    docs = {0: TEXTS[0], 1: TEXTS[1], 2: TEXTS[2], 3: TEXTS[3], 5: TEXTS[5]}
    assert index.size == 6 and list(index.live_ids()) == [0, 1, 2, 3, 5]
    for q in ("晋中有几家省级博士创新站", "疫情防控", "安全生产"):
        np.testing.assert_allclose(index.scores(q), reference(index, docs, q), rtol=1e-5, atol=1e-6)
    index.remove(np.array([1, 99]))
    del docs[1]
    index.add(np.array([6]), [TEXTS[4]])
    docs[6] = TEXTS[4]
    np.testing.assert_allclose(index.scores("博士创新站"), reference(index, docs, "博士创新站"), rtol=1e-5, atol=1e-6)
    index.save(tmp_path / "bm25")
    back = BM25Index.load(tmp_path / "bm25")
    assert back._weights is not None  # prepared weights are read, not recomputed
    for q in ("省级博士创新站", "2026 gdp growth"):
        np.testing.assert_array_equal(back.scores(q), index.scores(q))
    ids, scores = back.search("博士创新站", 2)
    assert sorted(ids) == [0, 5] and scores[0] >= scores[1] > 0


def test_loaded_index_is_not_mutated_by_changes(tmp_path):
    index = BM25Index("bigram")
    index.add(np.arange(len(TEXTS)), TEXTS)
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    before = loaded.scores("博士创新站").copy()
    import copy

    changed = copy.copy(loaded)  # what KnowledgeBase._commit does
    changed.remove(np.array([0, 1]))
    changed.add(np.array([10]), ["博士创新站博士创新站"])
    np.testing.assert_array_equal(loaded.scores("博士创新站"), before)
    assert changed.scores("博士创新站")[10] > 0 and changed.scores("博士创新站")[0] == 0
