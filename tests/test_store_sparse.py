"""Our bigram BM25 as sparse vectors (rag.store.sparse, what the Milvus store writes): built
for a whole commit at once, they score every chunk as the local store's BM25 does, and the
commit's document-frequency changes count each chunk's terms once. No Milvus needed."""

from __future__ import annotations

import numpy as np

from rag.lexical import BM25Index
from rag.store import sparse

TEXTS = [
    "太原市今年新建了12座公园，城市绿地面积增加了300公顷。市园林局表示，明年还将改造20座老旧公园。",
    "晋中市建立院士(专家)工作站3家，获批设立1家国家博士后科研站，7家省级博士创新站。",
    "大同市完成了15处煤矿的智能化改造，井下作业人员减少了三成。公园公园公园。",
    "",
    "Policy 2026: 太原 and 大同 share 公园 plans.",
]
QUESTIONS = ["太原市新建了几座公园", "晋中有几家省级博士创新站", "大同煤矿改造", "没有的词语"]


def test_a_commits_sparse_vectors_score_as_the_local_bm25():
    terms = [sparse.terms(t, "bigram") for t in TEXTS]
    lengths = np.array([c.sum() for _, c in terms], np.float64)
    matrix = sparse.chunk_matrix(terms, float(lengths[lengths > 0].mean()))
    assert matrix.shape[0] == len(TEXTS) and matrix.getrow(3).nnz == 0
    for row, (keys, _) in zip(matrix, terms):
        assert np.array_equal(row.indices, keys)  # one entry per distinct term, in the chunk's own row
    keys, delta = sparse.df_delta(matrix.indices, [])
    df = dict(zip(keys.tolist(), delta.tolist()))
    local = BM25Index()
    local.add(np.arange(len(TEXTS)), TEXTS)
    live = int((lengths > 0).sum())
    for question in QUESTIONS:
        query = sparse.QueryTerms(sparse.terms(question, "bigram", query=True)[0], df, live)
        ours = [query.score(dict(zip(r.indices.tolist(), r.data.tolist()))) for r in matrix]
        np.testing.assert_allclose(ours, local.scores(question), rtol=1e-5, atol=1e-6)
    assert max(local.scores(QUESTIONS[0])) > 0 and not any(local.scores(QUESTIONS[-1]))


def test_df_delta_counts_added_and_removed_chunks():
    terms = [sparse.terms(t, "bigram") for t in TEXTS]
    matrix = sparse.chunk_matrix(terms, 20.0)
    removed = [dict(zip(r.indices.tolist(), r.data.tolist())) for r in matrix[:2]]
    keys, delta = sparse.df_delta(sparse.chunk_matrix(terms[2:], 20.0).indices, removed)
    want: dict[int, int] = {}
    for k in np.concatenate([t[0] for t in terms[2:]]).tolist():
        want[k] = want.get(k, 0) + 1
    for vec in removed:
        for k in vec:
            want[k] = want.get(k, 0) - 1
    assert dict(zip(keys.tolist(), delta.tolist())) == {k: v for k, v in want.items() if v}
    assert np.all(np.diff(keys) > 0) and len(keys) > 20  # sorted, unique: the store looks them up in order
