"""The reader's forward pass for answering, without transformers.

Training builds the model with transformers (:func:`rag.answering.model.build_model`);
answering runs the same XLM-RoBERTa encoder as a dozen functional torch ops over the loaded
weights. That keeps ``rag ask`` from importing transformers and from building (and randomly
initialising) a model only to overwrite it: seconds of a cold start (benchmarks/cold_start.py).

The arithmetic is what ``torch.autocast`` does to the transformers model: matrix products
(and attention) in ``dtype`` (bf16 where the CPU has fast bf16, else fp32), embeddings,
residual stream and layer norms in fp32. The linear weights are cast once at load instead
of on every call. The word embeddings stay memory-mapped from the default model's file (a
question reads a few hundred of its 250k rows), so they cost neither load time nor memory.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
_DTYPES = {"F32": np.float32, "F16": np.float16}


def mmap_tensor(path: Path, name: str) -> np.ndarray:
    """One tensor of a safetensors file as a read-only memory map (format: an 8-byte header
    length, a JSON header of dtype/shape/offsets, then the data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        info = json.loads(f.read(n))[name]
    begin, _ = info["data_offsets"]
    return np.memmap(path, dtype=_DTYPES[info["dtype"]], mode="r", offset=8 + n + begin,
                     shape=tuple(info["shape"]))


@dataclass
class Encoder:
    """XLM-RoBERTa weights (names as in transformers' ``XLMRobertaModel``) plus the reader's
    two heads, ready for :meth:`forward`."""

    weights: dict[str, Any]
    words: np.ndarray  # the word embeddings, memory-mapped
    config: dict[str, Any]
    dtype: Any  # torch dtype of the matrix products

    @classmethod
    def load(cls, base: Path, reader_file: Path, freeze_layers: int, dtype) -> Encoder:
        """The frozen part from ``base`` (the converted default model), the rest from
        ``reader_file`` (the reader's ``encoder.*``, ``rel.*`` and ``span.*`` tensors)."""
        from safetensors import safe_open

        config = json.loads((base / "config.json").read_text(encoding="utf-8"))
        frozen = ("embeddings.",) + tuple(f"encoder.layer.{i}." for i in range(freeze_layers))
        weights: dict[str, Any] = {}
        with safe_open(str(base / "model.safetensors"), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                if key != WORD_EMBEDDINGS and key.startswith(frozen):
                    weights[key] = f.get_tensor(key).float()
        with safe_open(str(reader_file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                weights[key.removeprefix("encoder.")] = f.get_tensor(key).float()
        for key in list(weights):
            if key.startswith(("encoder.layer.", "rel.", "span.")) and "LayerNorm" not in key:
                weights[key] = weights[key].to(dtype)
        return cls(weights, mmap_tensor(base / "model.safetensors", WORD_EMBEDDINGS), config, dtype)

    def missing(self) -> list[str]:
        """Weights the forward pass needs that were not loaded."""
        layer = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                 "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")
        need = ["embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
                "embeddings.LayerNorm.weight", "rel.weight", "span.weight"]
        need += [f"encoder.layer.{i}.{p}.weight" for i in range(self.config["num_hidden_layers"]) for p in layer]
        return [k for k in need if k not in self.weights]

    def forward(self, input_ids, attention_mask):
        """(relevance logits, start logits, end logits), as ``ReaderModel.forward`` gives them."""
        import torch
        import torch.nn.functional as F

        w, cfg, dt = self.weights, self.config, self.dtype
        hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
        pad = cfg["pad_token_id"]

        def norm(x, name):
            return F.layer_norm(x, (hidden,), w[f"{name}.weight"], w[f"{name}.bias"], eps)

        def linear(x, name):
            return F.linear(x.to(dt), w[f"{name}.weight"], w[f"{name}.bias"])

        real = input_ids.ne(pad)
        positions = torch.cumsum(real, dim=1) * real + pad
        words = torch.from_numpy(np.asarray(self.words[input_ids.numpy()], dtype=np.float32))
        x = (words + w["embeddings.position_embeddings.weight"][positions]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = norm(x, "embeddings.LayerNorm")
        batch, length = input_ids.shape
        keep = attention_mask.bool()[:, None, None, :]
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (linear(x, p + f"attention.self.{n}").view(batch, length, heads, -1).transpose(1, 2)
                       for n in ("query", "key", "value"))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(batch, length, hidden)
            x = norm(linear(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            x = norm(linear(F.gelu(linear(x, p + "intermediate.dense")), p + "output.dense") + x, p + "output.LayerNorm")
        rel = linear(x[:, 0], "rel").squeeze(-1)
        span = linear(x, "span")
        masked = attention_mask == 0
        return rel, span[..., 0].masked_fill(masked, -1e4), span[..., 1].masked_fill(masked, -1e4)
