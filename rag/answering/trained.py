"""The trained model as a Reranker and a Reader, sharing one forward pass.

Reranking reads each candidate with the question (:class:`~.model.ReaderNetwork`); the
reader then takes the best span of the passages it is given from the same pass (results
are kept for the last few questions, so reranking and reading cost one forward).

Confidence of a span: the geometric mean of the passage's relevance probability
(sigmoid of the relevance logit) and the probability that the span beats "no answer"
(sigmoid of span score minus no-answer score). A count answer is completed to its whole
quantity (「5506.3万」 -> 「5506.3万标准箱」, 「7%」 -> 「7%以上」) by :func:`complete_quantity`.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from ..conversation import elliptical_subject
from ..extraction import change_for_amount, list_only, name_only, respective, slot_only, subject_clause
from ..extraction.candidates import _trim
from ..types import Passage, Span
from .model import ReaderNetwork, Scored

_CACHE = 512  # (question, passage) readings kept


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 40.0), -40.0)))


def shown_text(p: Passage) -> tuple[str, int]:
    """What the model reads for a passage -- what the retrievers saw: its title and heading
    path, a line break, the text -- and the length of that prefix."""
    from ..chunking import retrieval_text

    shown = retrieval_text(p.title, p.text, p.heading)
    return shown, len(shown) - len(p.text)


class TrainedReader:
    """Reranker and reader from the shipped model (``folder``: another trained model)."""

    name = "model"
    min_confidence = 0.5
    RETRIEVAL_WEIGHT = 3.0  # logits per unit of min-max normalized retrieval score (benchmarks/rerank_mix.py)

    def __init__(self, folder=None, *, network: ReaderNetwork | None = None,
                 retrieval_weight: float = RETRIEVAL_WEIGHT) -> None:
        self.network = network or ReaderNetwork(folder)
        self.retrieval_weight = retrieval_weight
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[Scored]] = OrderedDict()

    def warm_up(self) -> None:
        self.network.load()

    def scores(self, question: str, passages: Sequence[Passage]) -> list[Scored]:
        """The model's reading of each passage; readings of recent (question, passage) pairs
        are kept, so reranking then reading the top passages costs one forward pass."""
        keys = [_key(question, p) for p in passages]
        with self._lock:
            known = {k: self._cache[k] for k in keys if k in self._cache}
        todo = [i for i, k in enumerate(keys) if k not in known]
        if todo:
            shown = [shown_text(passages[i]) for i in todo]
            for i, s in zip(todo, self.network.read(question, [t for t, _ in shown], [n for _, n in shown])):
                known[keys[i]] = s
            with self._lock:
                for i in todo:
                    self._cache[keys[i]] = known[keys[i]]
                while len(self._cache) > _CACHE:
                    self._cache.popitem(last=False)
        return [known[k] for k in keys]

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """Ordered by the relevance logit plus ``retrieval_weight`` x the retrieval score
        (min-max normalized over these passages): the model decides, and the retrievers'
        evidence breaks its near-ties (two versions of one law's article differ in the
        title only). Each passage's score becomes its relevance probability."""
        scored = self.scores(question, passages)
        order_by = mixed(scored, passages, self.retrieval_weight)
        order = sorted(range(len(passages)), key=lambda i: -order_by[i])
        return [replace(passages[i], score=_sigmoid(scored[i].relevance)) for i in order]

    def read(self, question: str, passages: Sequence[Passage], evidence: Sequence[float] = ()) -> Span | None:
        """The span of the most confident passage, shaped (:func:`shape_span`); a rate of change
        where the question asks for an amount (:func:`rag.extraction.change_for_amount`)
        passes the turn to the next passage."""
        scored = self.scores(question, passages)
        confident = sorted(((math.sqrt(_sigmoid(s.relevance) * _sigmoid(s.best - s.null)), i)
                            for i, s in enumerate(scored) if s.start >= 0), key=lambda c: -c[0])
        for conf, i in confident:
            text = passages[i].text
            span = shape_span(question, text, scored[i].start, scored[i].end)
            if span is None:
                return None
            start, end = span
            if change_for_amount(question, text, start, end):
                continue
            sent_start, sent_end = sentence_around(text, start, end)
            return Span(text[start:end], i, start, end, sent_start, sent_end, round(conf, 4), "model")
        return None


def shape_span(question: str, text: str, start: int, end: int) -> tuple[int, int] | None:
    """The model's span after the span rules (README, "Span shaping"); None when trimming
    leaves nothing."""
    start, end = _trim(text, start, end, _STRIP)
    if end <= start:
        return None
    start, end = name_only(question, text, *list_only(question, text, *slot_only(question, text, start, end)))
    start, end = respective(question, text, start, end) or (start, end)
    subject = elliptical_subject(question)
    if subject:
        start, end = subject_clause(subject, text, start, end)
    return complete_quantity(question, text, start, end)


def mixed(scored: Sequence[Scored], passages: Sequence[Passage], weight: float,
          dense_weight: float = 0.0) -> list[float]:
    """Relevance logits plus ``weight`` x the passages' retrieval scores and ``dense_weight`` x
    their dense scores, each scaled to [0, 1] over these passages."""
    retrieval = _unit([float(p.score) for p in passages])
    dense = _unit([float(p.dense_score or 0.0) for p in passages])
    return [s.relevance + weight * r + dense_weight * d for s, r, d in zip(scored, retrieval, dense)]


def _unit(values: list[float]) -> list[float]:
    """Min-max to [0, 1]; all equal: all 1."""
    lo, hi = min(values, default=0.0), max(values, default=0.0)
    return [(x - lo) / (hi - lo) if hi > lo else 1.0 for x in values]


def _key(question: str, p: Passage) -> str:
    return hashlib.sha256(f"{question}\x00{p.title}\x00{p.text}".encode("utf-8", "surrogatepass")).hexdigest()


_STRIP = " \t\r\n\u3000，,。；;：:、"  # a model span keeps its brackets and quotes


def sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence (or sentences) of ``text`` that hold ``text[start:end]``."""
    from ..chunking import sentence_spans

    spans = sentence_spans(text)
    first = next((a for a, b in spans if a <= start < b), start)
    last = next((b for a, b in reversed(spans) if a < end <= b), end)
    return min(first, start), max(last, end)


def complete_quantity(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A count question's answer as one whole quantity (:func:`rag.extraction.one_quantity`,
    then :func:`rag.extraction.count_span`)."""
    from ..extraction import count_span, one_quantity, question_type

    if question_type(question) != "count":
        return start, end
    return count_span(question, text, *one_quantity(question, text, start, end))
