"""The answering components' protocols: each is one small object, replaceable by argument.

``KnowledgeBase`` composes retriever -> reranker -> reader -> gate (:mod:`.pipeline`):

* a **Retriever** returns candidate passages, best first (the knowledge base's own hybrid
  dense + BM25 search is the one shipped);
* a **Reranker** reorders the first candidates by reading each with the question;
* a **Reader** finds the answer span in the passages it is given and says how sure it is;
* the **gate** refuses when the question's key terms are absent from the index, when the
  reader finds nothing, or when its confidence is below the reader's own threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..types import Passage, Span


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, question: str, k: int, mode: str = "hybrid") -> list[Passage]:
        """The ``k`` best candidate passages for ``question``, best first."""
        ...


@runtime_checkable
class Reranker(Protocol):
    name: str

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """``passages`` reordered, best first, with ``score`` replaced by the reranker's own
        (a value in [0, 1] that means the same across questions)."""
        ...


@runtime_checkable
class Reader(Protocol):
    name: str
    min_confidence: float  # the gate refuses answers below this

    def read(self, question: str, passages: Sequence[Passage], evidence: Sequence[float]) -> Span | None:
        """The answer span in ``passages`` (``Span.score``: confidence in [0, 1]), or None.
        ``evidence[i]``: the share of the question's (IDF-weighted, indexed) terms that
        ``passages[i]`` holds, for readers that weigh lexical support."""
        ...
