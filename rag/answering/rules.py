"""The rule-based reader: typed candidate spans scored by how they fit the question
(:mod:`rag.extraction`); confidence is the geometric mean of the extractor's score and the
share of the question that the answer's passage holds (calibrated in README.md, Abstention)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..types import Passage, Span


class RulesReader:
    name = "rules"
    min_confidence = 0.4

    def warm_up(self) -> None:
        """Load the segmenter and its dictionary (~1 s) before the first question."""
        self.read("晋中有几家省级博士创新站", [Passage("7家省级博士创新站。", "", "", None, 1.0, "", 0, 9)], [1.0])

    def read(self, question: str, passages: Sequence[Passage], evidence: Sequence[float]) -> Span | None:
        from ..extraction import extract_answer

        span = extract_answer(question, passages)
        if span is None:
            return None
        share = float(evidence[span.passage]) if span.passage < len(evidence) else 0.0
        return replace(span, score=confidence(span.score, share))


def confidence(extraction_score: float, passage_share: float) -> float:
    """Confidence in [0, 1] of an extracted answer."""
    return float(np.sqrt(min(max(extraction_score, 0.0), 1.0) * min(max(passage_share, 0.0), 1.0)))
