"""Answering: Reranker and Reader protocols, the trained model and the rules behind them,
the abstention gate, the pipeline that composes them, and optional written answers."""

from .base import Reader, Reranker, Retriever
from .gate import AnswerGate
from .generate import (
    GenerationError,
    Generator,
    StopSignal,
    Unverified,
    WrittenAnswer,
    check_answer,
    should_generate,
    stream_answer,
    write_answer,
)
from .pipeline import READERS, Pipeline, make_reader, make_reranker

__all__ = [
    "READERS", "AnswerGate", "GenerationError", "Generator", "Pipeline", "Reader", "Reranker", "Retriever",
    "StopSignal", "Unverified", "WrittenAnswer", "check_answer", "make_reader", "make_reranker", "should_generate",
    "stream_answer", "write_answer",
]
