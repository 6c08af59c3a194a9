"""Hybrid search: dense (FAISS) and BM25 candidates, rescored by both and fused.

The candidate pool is the union of the top ``pool`` of each method. Every candidate gets
both scores (its exact cosine from the stored vector, its BM25 score from the full score
vector), each normalized over the pool, then the two are mixed with ``dense_weight``.
Methods ``dense`` and ``bm25`` rank by one score alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .store import Snapshot

MODES = ("hybrid", "dense", "bm25")
NORMALIZATIONS = ("minmax", "zscore", "rrf")


@dataclass(frozen=True)
class FusionSettings:
    dense_weight: float = 0.5
    normalization: str = "minmax"
    pool: int = 50

    def __post_init__(self) -> None:
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError("dense_weight must be between 0 and 1")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}")


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float
    dense: float
    lexical: float


def _normalize(scores: np.ndarray, how: str) -> np.ndarray:
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
    return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)


def dense_candidates(snapshot: Snapshot, query_vec: np.ndarray, n: int) -> np.ndarray:
    if snapshot.vectors.ntotal == 0:
        return np.zeros(0, np.int64)
    _, ids = snapshot.vectors.search(query_vec[None, :].astype(np.float32), min(n, snapshot.vectors.ntotal))
    return ids[0][ids[0] >= 0]


def search(
    snapshot: Snapshot,
    question: str,
    query_vec: np.ndarray | None,
    k: int,
    mode: str = "hybrid",
    settings: FusionSettings = FusionSettings(),
) -> list[Hit]:
    """The ``k`` best chunks for ``question``, best first."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    pool = max(settings.pool, k)
    lexical_all = snapshot.bm25.scores(question) if mode != "dense" else None
    ids: list[np.ndarray] = []
    if mode != "bm25" and query_vec is not None:
        ids.append(dense_candidates(snapshot, query_vec, pool))
    if lexical_all is not None:
        hits = np.flatnonzero(lexical_all > 0)
        if len(hits) > pool:
            hits = hits[np.argpartition(-lexical_all[hits], pool - 1)[:pool]]
        ids.append(hits)
    if not ids:
        return []
    cand = np.unique(np.concatenate(ids)).astype(np.int64)
    if len(cand) == 0:
        return []
    lexical = lexical_all[cand] if lexical_all is not None else np.zeros(len(cand), np.float32)
    if query_vec is not None:
        dense = snapshot.vectors.reconstruct_batch(cand) @ query_vec.astype(np.float32)
    else:
        dense = np.zeros(len(cand), np.float32)
    if mode == "dense":
        fused = dense
    elif mode == "bm25":
        fused = lexical
    else:
        w = settings.dense_weight
        fused = w * _normalize(dense, settings.normalization) + (1 - w) * _normalize(lexical, settings.normalization)
    order = np.argsort(-fused, kind="stable")[:k]
    return [Hit(int(cand[i]), float(fused[i]), float(dense[i]), float(lexical[i])) for i in order]


class CrossEncoderReranker:
    """Optional second stage: a sentence-transformers CrossEncoder scores (question, passage)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._model = None

    def _load(self):
        if self._model is None:
            from .errors import ModelError

            try:
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(self.spec, local_files_only=True)
            except Exception as exc:
                raise ModelError(
                    f"cannot load the reranker {self.spec!r} ({exc}). Give the path of a local "
                    "CrossEncoder model; models are never downloaded at run time."
                ) from exc
        return self._model

    def rerank(self, question: str, passages: list) -> list:
        from dataclasses import replace

        scores = self._load().predict([(question, p.text) for p in passages], show_progress_bar=False)
        order = np.argsort(-np.asarray(scores), kind="stable")
        return [replace(passages[i], score=float(scores[i])) for i in order]
