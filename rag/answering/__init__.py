"""Answering: Reranker and Reader protocols, the trained model and the rules behind them,
the abstention gate and the pipeline that composes them."""

from .base import Reader, Reranker, Retriever
from .gate import AnswerGate
from .pipeline import READERS, Pipeline, make_reader, make_reranker

__all__ = ["READERS", "AnswerGate", "Pipeline", "Reader", "Reranker", "Retriever", "make_reader", "make_reranker"]
