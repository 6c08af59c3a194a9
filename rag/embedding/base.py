"""The embedder protocol, the prompts of known model families, and the helpers every
embedder shares (row normalization, input checks, the model cache folder)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..config import Environment

DEFAULT_SPEC = "default:multilingual-e5-small"
E5_QUERY_PROMPT = "query: "
E5_PASSAGE_PROMPT = "passage: "
BGE_ZH_QUERY_PROMPT = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY_PROMPT = "Represent this sentence for searching relevant passages: "
E5_INSTRUCT_QUERY_PROMPT = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
)
MAX_SEQ_LENGTH = 512


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors; ``spec`` names the model in index manifests."""

    spec: str
    dim: int

    def embed_passages(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Embed document chunks: an ``(n, dim)`` float32 array, rows L2-normalized."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query: a ``(dim,)`` float32 vector, L2-normalized."""
        ...


def _normalize_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        norm = float(np.linalg.norm(vectors))
        return vectors / norm if norm > 0 else vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed_passages takes a sequence of strings, not one string")
    out = list(texts)
    for text in out:
        if not isinstance(text, str):
            raise TypeError(f"embed_passages takes strings, got {type(text).__name__}")
    return out


def cache_dir() -> Path:
    """Where converted models live: ``$RAG_CACHE_DIR`` or ``~/.cache/rag-zh``."""
    env = Environment.read().cache_dir
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rag-zh"


_PASSAGE_PROMPT_NAMES = ("passage", "document", "doc", "corpus")


def prompts_for(name: str, configured: dict[str, str] | None = None) -> tuple[str, str]:
    """``(query_prompt, passage_prompt)`` for a model. Prompts the model itself defines (named
    ``query`` and ``passage``/``document``) win; otherwise known families by name: e5
    (``query: ``/``passage: ``), e5-instruct, bge (the Chinese retrieval instruction for
    zh/multilingual bge, the English one for ``-en`` models, none for bge-m3); else none."""
    configured = {k: v for k, v in (configured or {}).items() if isinstance(v, str)}
    query = configured.get("query")
    passage = next((configured[k] for k in _PASSAGE_PROMPT_NAMES if k in configured), None)
    if query or passage:
        return query or "", passage or ""
    low = name.lower().replace("\\", "/")
    if re.search(r"(^|[/_\-.])e5([_\-.]|$)", low):
        if "instruct" in low:
            return E5_INSTRUCT_QUERY_PROMPT, ""
        return E5_QUERY_PROMPT, E5_PASSAGE_PROMPT
    if re.search(r"(^|[/_\-.])bge([_\-.]|$)", low):
        if "m3" in low or "gemma" in low or "icl" in low:
            return "", ""
        if re.search(r"[_\-.]en([_\-.]|$)", low):
            return BGE_EN_QUERY_PROMPT, ""
        return BGE_ZH_QUERY_PROMPT, ""
    return "", ""
