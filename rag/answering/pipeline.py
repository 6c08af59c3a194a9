"""Retriever -> reranker -> reader -> gate: the answering steps after retrieval, composed
from components given by name or as objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..config import Environment
from ..errors import RagError
from ..lexical import place_and_person_names
from ..types import Answer, Passage
from .base import Reader, Reranker
from .gate import AnswerGate

READERS = ("model", "rules")
_ARTICLE_RE = re.compile(r"第[一二三四五六七八九十百千零〇两0-9]+条")
_COUNTRY = "中华人民共和国"
RERANK_DEPTH = 5  # candidates the reranker reads: the top_k the reader sees, at the speed target (README)
NAMED_POOL = 20  # candidates searched for the article a law question names (benchmarks/law_articles.py)


def make_reader(spec: str | Reader | None) -> Reader:
    """``"model"`` (the trained reader), ``"rules"``, or a Reader object; None: the
    environment's ``RAG_READER``, else ``"model"``."""
    if spec is None:
        spec = Environment.read().reader
    if spec == "model":
        from .trained import TrainedReader

        return TrainedReader()
    if spec == "rules":
        from .rules import RulesReader

        return RulesReader()
    if isinstance(spec, str):
        raise RagError(f"unknown reader {spec!r}; choose one of {', '.join(READERS)}")
    return spec


def make_reranker(spec: str | Reranker | None, reader: Reader) -> Reranker | None:
    """``"model"`` (the trained model; shares its forward pass with a model reader), ``"none"``,
    the folder of a local sentence-transformers CrossEncoder, or a Reranker object; None:
    the environment's ``RAG_RERANKER``, else ``"model"``."""
    if spec is None:
        spec = Environment.read().reranker
    if spec == "none":
        return None
    if spec == "model":
        from .trained import TrainedReader

        return reader if isinstance(reader, TrainedReader) else TrainedReader()
    if isinstance(spec, str):
        from .crossencoder import CrossEncoderReranker

        return CrossEncoderReranker(spec)
    return spec


def named(question: str, p: Passage) -> int:
    """How exactly the question names the passage: the article it asks for (「第五十三条」) is
    the passage's own heading, and the document's title (less 中华人民共和国) is in the question.
    The reranker reads neither structure; a law question that names both wants that article."""
    asked = _ARTICLE_RE.findall(question)
    if not asked:
        return 0
    last = p.heading.rsplit(" > ", 1)[-1] if p.heading else ""
    title = p.title.removeprefix(_COUNTRY)
    return int(any(last.startswith(a) for a in asked)) + int(bool(title) and title in question)


@dataclass
class Pipeline:
    reader: Reader
    reranker: Reranker | None = None
    gate: AnswerGate = field(default_factory=AnswerGate)
    rerank_depth: int = RERANK_DEPTH

    def pool(self, question: str) -> int:
        """Candidates to fetch at least: the reranker's ``rerank_depth``, or ``NAMED_POOL``
        when the question names an article (in 9 of 30 law questions the asked article ranked
        6th-18th)."""
        if _ARTICLE_RE.search(question):
            return max(self.rerank_depth, NAMED_POOL)
        return self.rerank_depth if self.reranker is not None else 0

    def rerank(self, question: str, candidates: list[Passage]) -> list[Passage]:
        """The first ``rerank_depth`` candidates in the reranker's order, then the rest; the
        article a law question names (:func:`named`) first."""
        if _ARTICLE_RE.search(question):
            candidates = sorted(candidates, key=lambda p: -named(question, p))  # stable
        if self.reranker is None or not candidates:
            return candidates
        head = self.reranker.rerank(question, candidates[: self.rerank_depth])
        return sorted(head, key=lambda p: -named(question, p)) + candidates[self.rerank_depth:]

    def answer(self, question: str, passages: Sequence[Passage],
               index_evidence: Callable[[Sequence[Passage]], tuple[float, list[float], bool]]) -> Answer:
        """Read ``passages`` and apply the gate. ``index_evidence(passages)`` gives the
        question's indexed term weight, each passage's share of it, and whether the
        question's key terms are missing from the index."""
        passages = tuple(passages)
        if not passages:
            return Answer(question, None, passages, 0.0)
        known, shares, missing = index_evidence(passages)
        if known <= 0 or missing:
            return Answer(question, None, passages, 0.0)  # its key terms are not in the index
        span = self.reader.read(question, passages, shares)
        names = place_and_person_names(question) if span is not None else []
        if span is not None and self.gate.names_missing(question, passages, span.passage, names):
            # about another place or person: read only the documents that name them, if any
            keep = [i for i in range(len(passages)) if not self.gate.names_missing(question, passages, i, names)]
            span = self.reader.read(question, [passages[i] for i in keep], [shares[i] for i in keep]) if keep else None
            span = replace(span, passage=keep[span.passage]) if span is not None else None
        if span is None:
            return Answer(question, None, passages, 0.0)
        if span.score < self.gate.threshold(self.reader):  # the best evidence is too weak
            return Answer(question, None, passages, span.score)
        source = passages[span.passage].text
        return Answer(question, span.text, passages, confidence=span.score, span=span,
                      evidence=source[span.sentence_start:span.sentence_end])
