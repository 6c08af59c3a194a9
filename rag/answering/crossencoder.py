"""Any local sentence-transformers CrossEncoder as a Reranker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..types import Passage


class CrossEncoderReranker:
    """``spec`` is the folder of a local CrossEncoder model (models are never downloaded at
    run time). Passages come back reordered by the model's score, which replaces
    ``Passage.score`` (a probability when the model ends in a sigmoid, as most do)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.name = spec
        self._model = None

    def _load(self):
        if self._model is None:
            try:
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(self.spec, local_files_only=True, device="cpu")
            except Exception as exc:
                raise ModelError(
                    f"cannot load the reranker {self.spec!r} ({exc}). Give the path of a local "
                    "CrossEncoder model; models are never downloaded at run time."
                ) from exc
        return self._model

    def scores(self, question: str, passages: Sequence[Passage]) -> np.ndarray:
        model = self._load()
        if not passages:
            return np.zeros(0, np.float32)
        pairs = [(question, f"{p.title}\n{p.text}" if p.title else p.text) for p in passages]
        out = model.predict(pairs, show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(out, np.float32).reshape(len(passages), -1)[:, -1]

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        scores = self.scores(question, passages)
        order = np.argsort(-scores, kind="stable")
        return [replace(passages[i], score=float(scores[i])) for i in order]
