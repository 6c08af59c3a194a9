"""Hybrid search: dense and BM25 candidates, rescored by both and fused.

The candidate pool is the union of the top ``pool`` of each method, asked of the store
(:class:`rag.store.StoreView`). Every candidate gets both scores, asked of the store for
those ids (its exact cosine from the stored vector, its BM25 score), each normalized over the pool, then the two are mixed with a dense weight that
depends on the question (:func:`dense_weight_for`): how much of the question the best
BM25 candidate holds (its IDF-weighted share of the question's terms, ``strength``).
When the question's words are all there, BM25 is precise and leads; when they are not
(a paraphrase, a question written without the text at hand), the dense score leads.
Methods ``dense`` and ``bm25`` rank by one score alone.

The defaults were chosen on two development sets (CMRC 2018 and the 疫情政务问答 policy
set); the figures are in README.md and ``benchmarks/retrieval_quality.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import FusionSettings

if TYPE_CHECKING:
    from .store import StoreView

MODES = ("hybrid", "dense", "bm25")
FUSION = FusionSettings()  # the default


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float
    dense: float
    lexical: float


def normalize_scores(scores: np.ndarray, how: str) -> np.ndarray:
    """Scores of one pool mapped to a common scale; an all-zero pool stays all zero."""
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        return scores
    if how == "rrf":
        ranks = np.empty(len(scores))
        ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
        return 1.0 / (60.0 + ranks)
    if how == "zscore":
        std = scores.std()
        return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    span = scores.max() - scores.min()
    if span > 0:
        return (scores - scores.min()) / span
    return np.ones_like(scores) if scores.max() != 0 else np.zeros_like(scores)


def dense_weight_for(settings: FusionSettings, strength: float) -> float:
    """The dense weight for a question whose best BM25 candidate holds ``strength``
    (0..1) of the question's term weight."""
    w = settings.dense_weight + settings.adaptive * (settings.pivot - strength)
    return float(min(max(w, settings.min_dense), settings.max_dense))


def fuse(dense: np.ndarray, lexical: np.ndarray, settings: FusionSettings, strength: float = 0.5) -> np.ndarray:
    """Fused scores of a candidate pool from its dense and BM25 scores."""
    if not np.any(lexical > 0):  # BM25 knows nothing of the question: dense alone
        return normalize_scores(dense, settings.normalization)
    w = dense_weight_for(settings, strength)
    how = settings.normalization
    return w * normalize_scores(dense, how) + (1 - w) * normalize_scores(lexical, how)


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """Ids of the ``n`` highest positive scores, best first."""
    hits = np.flatnonzero(scores > 0)
    if len(hits) > n:
        hits = hits[np.argpartition(-scores[hits], n - 1)[:n]]
    return hits[np.argsort(-scores[hits], kind="stable")]


def search(
    view: StoreView,
    question: str,
    query_vec: np.ndarray | None,
    k: int,
    mode: str = "hybrid",
    settings: FusionSettings = FUSION,
) -> list[Hit]:
    """The ``k`` best chunks for ``question``, best first."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    pool = max(settings.pool, k)
    use_dense = mode != "bm25" and query_vec is not None
    ids: list[np.ndarray] = []
    if use_dense:
        ids.append(view.dense_top_k(query_vec, pool)[0])
    if mode != "dense":
        ids.append(view.lexical_top_k(question, pool)[0])
    if not ids:
        return []
    cand = np.unique(np.concatenate(ids)).astype(np.int64)
    if len(cand) == 0:
        return []
    lexical = view.lexical_scores(question, cand) if mode != "dense" else np.zeros(len(cand), np.float32)
    if use_dense:
        dense = view.dense_scores(query_vec.astype(np.float32), cand)
    else:
        dense = np.zeros(len(cand), np.float32)
    if mode == "dense":
        fused = dense
    elif mode == "bm25":
        fused = lexical
    else:
        strength = 0.5
        if settings.adaptive and np.any(lexical > 0):
            best = cand[int(np.argmax(lexical))]
            strength = float(view.query_evidence(question, [int(best)])[1][0])
        fused = fuse(dense, lexical, settings, strength)
    order = np.argsort(-fused, kind="stable")[:k]
    return [Hit(int(cand[i]), float(fused[i]), float(dense[i]), float(lexical[i])) for i in order]
