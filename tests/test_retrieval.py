"""Fusion of dense and BM25 scores, hybrid search on a real index, and the optional
cross-encoder reranker (built here from a local model, never from a hub name)."""

from __future__ import annotations

import numpy as np
import pytest

from rag import Document, KnowledgeBase
from rag.answering.crossencoder import CrossEncoderReranker
from rag.retrieval import (
    FusionSettings,
    dense_weight_for,
    fuse,
    normalize_scores,
)

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

# ---------------------------------------------------------------------------------------
# fusion arithmetic


def test_normalizations():
    s = np.array([3.0, 1.0, 2.0])
    assert normalize_scores(s, "minmax") == pytest.approx([1.0, 0.0, 0.5])
    z = normalize_scores(s, "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1) and z[0] > z[2] > z[1]
    assert normalize_scores(s, "rrf") == pytest.approx([1 / 60, 1 / 62, 1 / 61])
    # a pool where BM25 matched nothing stays at zero; a single candidate is the best one
    assert not normalize_scores(np.zeros(4), "minmax").any()
    assert not normalize_scores(np.zeros(4), "zscore").any()
    assert normalize_scores(np.array([0.7]), "minmax") == pytest.approx([1.0])


def test_dense_weight_moves_with_bm25_strength():
    fixed = FusionSettings(dense_weight=0.4, adaptive=0.0)
    assert dense_weight_for(fixed, 0.0) == dense_weight_for(fixed, 1.0) == 0.4
    s = FusionSettings(dense_weight=0.5, adaptive=1.0, pivot=0.5, min_dense=0.2, max_dense=0.8)
    assert dense_weight_for(s, 0.5) == pytest.approx(0.5)
    assert dense_weight_for(s, 0.3) == pytest.approx(0.7)  # weak BM25 evidence: trust dense more
    assert dense_weight_for(s, 0.7) == pytest.approx(0.3)
    assert dense_weight_for(s, 0.0) == pytest.approx(0.8)  # clipped
    assert dense_weight_for(s, 1.0) == pytest.approx(0.2)


def test_fuse_orders_by_the_weighted_sum():
    dense = np.array([0.90, 0.80, 0.70])  # dense prefers 0
    lexical = np.array([1.0, 2.0, 9.0])  # BM25 prefers 2
    assert np.argmax(fuse(dense, lexical, FusionSettings(dense_weight=1.0))) == 0
    assert np.argmax(fuse(dense, lexical, FusionSettings(dense_weight=0.0))) == 2
    w = 0.3
    expected = w * np.array([1.0, 0.5, 0.0]) + (1 - w) * np.array([0.0, 1 / 8, 1.0])
    assert fuse(dense, lexical, FusionSettings(dense_weight=w)) == pytest.approx(expected)
    # query-dependent: the same pool ranks by BM25 when the best BM25 candidate holds the
    # whole question, by dense when it holds little of it
    s = FusionSettings(dense_weight=0.5, adaptive=2.0, pivot=0.5)
    assert np.argmax(fuse(dense, lexical, s, strength=1.0)) == 2
    assert np.argmax(fuse(dense, lexical, s, strength=0.0)) == 0


def test_fuse_without_bm25_evidence_is_dense_order():
    dense = np.array([0.2, 0.9, 0.5])
    for how in ("minmax", "zscore", "rrf"):
        f = fuse(dense, np.zeros(3), FusionSettings(dense_weight=0.1, normalization=how))
        assert list(np.argsort(-f)) == [1, 2, 0]


@pytest.mark.parametrize(
    "kwargs",
    [{"dense_weight": 1.5}, {"normalization": "max"}, {"pool": 0}, {"adaptive": -1.0},
     {"min_dense": 0.8, "max_dense": 0.2}],
)
def test_fusion_settings_are_checked(kwargs):
    with pytest.raises(ValueError):
        FusionSettings(**kwargs)


# ---------------------------------------------------------------------------------------
# hybrid search on a real index

DOCS = [
    Document("晋中人才", "晋中市建立院士工作站3家，获批设立1家国家博士后科研站，7家省级博士创新站。", "d1"),
    Document("太原绿化", "太原市今年新建公园12座，城市绿化覆盖率达到43%。", "d2"),
    Document("大同煤矿", "大同市推进煤矿智能化改造，建成智能化工作面85个。", "d3"),
    Document("Budget", "The committee approved the annual budget after a long debate.", "d4"),
    Document("Weather", "Heavy rain is expected in the northern mountains this weekend.", "d5"),
]


@pytest.fixture(scope="module")
def kb_folder(tmp_path_factory, minilm_path):
    folder = tmp_path_factory.mktemp("retrieval") / "index"
    KnowledgeBase(folder, minilm_path).add_documents(DOCS)
    return folder


def test_modes(kb_folder):
    kb = KnowledgeBase(kb_folder)
    for mode in ("hybrid", "bm25", "dense"):
        top = kb.search("晋中有几家省级博士创新站", top_k=3, mode=mode)
        assert top, mode
    assert kb.search("晋中有几家省级博士创新站", top_k=1, mode="hybrid")[0].source == "d1"
    bm25 = kb.search("太原新建公园", top_k=5, mode="bm25")
    assert [p.source for p in bm25] == ["d2"]  # only rows with a positive BM25 score
    assert all(p.lexical_score > 0 for p in bm25)
    # English paraphrase: no shared words with the best passage, dense finds it
    dense = kb.search("Which group passed the yearly spending plan?", top_k=1, mode="dense")
    assert dense[0].source == "d4"


def test_unseen_question_is_not_zero_score_noise(kb_folder):
    kb = KnowledgeBase(kb_folder)
    assert kb.search("量子引力是什么", top_k=5, mode="bm25") == []
    # hybrid still returns the closest passages (by the dense score alone) ...
    hybrid = kb.search("量子引力是什么", top_k=5, mode="hybrid")
    dense = kb.search("量子引力是什么", top_k=5, mode="dense")
    assert [p.chunk_id for p in hybrid] == [p.chunk_id for p in dense]
    assert all(p.lexical_score == 0 for p in hybrid)
    # ... but no answer comes out of them
    assert kb.answer("量子引力是什么").text is None


def test_fusion_weights_are_configurable(kb_folder):
    q = "Which group passed the yearly spending plan? 太原公园"
    base = KnowledgeBase(kb_folder)
    by_dense = base.search(q, top_k=1, mode="dense")[0].source
    by_bm25 = base.search(q, top_k=1, mode="bm25")[0].source
    assert by_bm25 == "d2"
    dense_only = KnowledgeBase(kb_folder, fusion=FusionSettings(dense_weight=1.0, adaptive=0.0))
    bm25_only = KnowledgeBase(kb_folder, fusion=FusionSettings(dense_weight=0.0, adaptive=0.0))
    assert dense_only.search(q, top_k=1)[0].source == by_dense
    assert bm25_only.search(q, top_k=1)[0].source == by_bm25


# ---------------------------------------------------------------------------------------
# cross-encoder reranker


@pytest.fixture(scope="module")
def cross_encoder_path(tmp_path_factory, minilm_path):
    """A small CrossEncoder built from the local MiniLM weights (one output), saved and
    loaded by path."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(minilm_path, num_labels=1, local_files_only=True, device="cpu")
    folder = tmp_path_factory.mktemp("cross") / "model"
    model.save(str(folder))
    return str(folder)


def test_reranker_orders_by_its_own_scores(kb_folder, cross_encoder_path):
    from sentence_transformers import CrossEncoder

    question = "The committee approved the budget"
    plain = KnowledgeBase(kb_folder, reader="rules", reranker="none")
    reranked = KnowledgeBase(kb_folder, reader="rules", reranker=cross_encoder_path)
    before = plain.search(question, top_k=5)
    after = reranked.search(question, top_k=5)
    # reranked = the pool (all five chunks here) sorted by the model's predict()
    model = CrossEncoder(cross_encoder_path, device="cpu")
    scores = model.predict([(question, f"{p.title}\n{p.text}") for p in before], show_progress_bar=False)
    expected = [before[i].chunk_id for i in np.argsort(-np.asarray(scores), kind="stable")]
    assert [p.chunk_id for p in after] == expected
    assert [p.score for p in after] == pytest.approx(sorted(np.asarray(scores).tolist(), reverse=True), abs=1e-5)
    assert sorted(p.chunk_id for p in after) == sorted(p.chunk_id for p in before)


@pytest.mark.slow  # loads sentence-transformers and torch
def test_reranker_with_a_bad_path_is_a_clear_error(tmp_path):
    from rag.errors import ModelError

    with pytest.raises(ModelError, match="local CrossEncoder"):
        CrossEncoderReranker(str(tmp_path / "missing")).rerank("q", [object()])


# ---------------------------------------------------------------------------------------
# abstention: KnowledgeBase.answer says nothing was found rather than invent an answer


def test_answers_with_evidence_and_confidence(kb_folder):
    kb = KnowledgeBase(kb_folder)
    a = kb.answer("晋中有几家省级博士创新站")
    assert a.text == "7家"
    assert "7家省级博士创新站" in a.evidence
    assert kb.answer_gate.threshold(kb.pipeline.reader) <= a.confidence <= 1.0


@pytest.mark.parametrize(
    "question",
    [
        "北京有几家省级博士创新站",  # a place the knowledge base never mentions
        "火星上有几家省级博士创新站",  # a noun it never mentions
        "量子引力理论是谁提出的",  # nothing of it is there
        "是什么？",  # no content at all
    ],
)
def test_abstains_when_key_terms_are_absent(kb_folder, question):
    a = KnowledgeBase(kb_folder).answer(question)
    assert a.text is None and a.span is None and a.evidence is None
    assert a.confidence == 0.0
    assert len(a.passages) > 0  # the closest passages still come back, as such


def test_abstains_when_the_evidence_is_weak(kb_folder, monkeypatch):
    from rag.answering import AnswerGate
    from rag.answering.rules import confidence
    from rag.types import Span

    def extract(question, passages):  # a confident extractor, wrong passage or not
        p = passages[0]
        return Span(p.text[:2], 0, 0, 2, 0, len(p.text), 0.81, "what")

    monkeypatch.setattr("rag.extraction.extract_answer", extract)
    kb = KnowledgeBase(kb_folder, reader="rules")
    q = "晋中有几家省级博士创新站"
    first = kb.search(q, top_k=5)[0]
    known, held = kb.store.view().query_evidence(q, [first.chunk_id])
    expected = confidence(0.81, held[0] / known)
    assert expected == pytest.approx(np.sqrt(0.81 * held[0] / known))
    answered = kb.answer(q)
    assert answered.text == first.text[:2] and answered.confidence == pytest.approx(expected)
    kb.answer_gate = AnswerGate(min_confidence=min(expected + 0.01, 1.0))
    refused = kb.answer(q)
    assert refused.text is None and refused.confidence == pytest.approx(expected)
    # the extractor finding nothing is no answer either
    monkeypatch.setattr("rag.extraction.extract_answer", lambda q, p: None)
    assert KnowledgeBase(kb_folder, reader="rules").answer(q).text is None


def test_cli_says_nothing_was_found(kb_folder):
    import subprocess
    import sys

    from rag.cli import NOT_FOUND

    from .conftest import REPO

    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "北京有几所大学", "--index-dir", str(kb_folder)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert NOT_FOUND in proc.stdout and "答案" not in proc.stdout


def test_answer_gate_settings_are_checked():
    from rag.answering import AnswerGate

    with pytest.raises(ValueError):
        AnswerGate(min_confidence=1.5)
    gate = AnswerGate(min_found_words=0.5)
    assert gate.key_terms_missing(["甲乙"], ["甲乙"], 3)  # a key word is missing
    assert not gate.key_terms_missing(["甲乙"], [], 3)  # 2 of 3 content words found
    assert gate.key_terms_missing(["甲乙", "丙丁"], [], 3)  # 1 of 3
    assert not gate.key_terms_missing([], [], 0)
