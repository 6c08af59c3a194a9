"""The client for one OpenAI-compatible ``/v1/chat/completions`` endpoint: the prompt, the
request, whole and streamed (server-sent events) replies, a stop signal, and the mapping of
every transport failure to a :class:`GenerationError` with a short Chinese reason.

This is the only code that opens a network connection, and only to the configured address
(plain ``http.client``: no proxy from the environment, no other host).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ..errors import RagError
from ..types import Passage
from .grounding import strip_citations

if TYPE_CHECKING:  # http.client is imported on the first request: `rag ask` without --llm stays fast
    import http.client

log = logging.getLogger(__name__)

__all__ = ["API_KEY_ENV", "GenerationError", "Generator", "Reply", "StopSignal", "Stopped", "default_prompt"]

API_KEY_ENV = "RAG_LLM_API_KEY"
HISTORY_TURNS = 3  # earlier (question, answer) pairs sent along; older ones are dropped
HISTORY_CHARS = 300  # each earlier answer is cut to this many characters
PASSAGE_CHARS = 1500  # each passage is cut to this many characters in the prompt


class GenerationError(RagError):
    """The endpoint could not give a usable reply; the message is a short Chinese reason."""


class Stopped(GenerationError):
    """The user stopped the reply: not the endpoint's fault, and said so."""


class StopSignal:
    """Stops a streamed reply from another thread (a stop button in the web app).

    Closing the iterator of :func:`~rag.answering.generate.stream_answer` works only between pieces, from the thread
    that reads them; a reply can wait long for its next visible piece (a slow model, a
    reasoning model's hidden <think> block). :meth:`set` shuts the connection's socket at
    once instead: the read waiting for the next piece returns, and the endpoint sees the
    client hang up and can stop generating."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._set = False

    def set(self) -> None:
        with self._lock:
            self._set = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def is_set(self) -> bool:
        return self._set

    def _watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` when the signal is set (at once if it already is)."""
        with self._lock:
            if not self._set:
                if sock is not None:
                    self._sockets.append(sock)
                return
        raise Stopped("已停止生成")


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class Reply(NamedTuple):
    text: str
    finish_reason: str | None


@dataclass(frozen=True)
class Generator:
    """A client for one OpenAI-compatible chat-completions endpoint.

    ``base_url`` is what OpenAI clients call the base URL (``http://127.0.0.1:8000/v1``);
    a bare host gets ``/v1`` added, a full ``.../chat/completions`` URL is used as is. The
    API key is read from the environment variable ``api_key_env`` at each request, so it is
    never stored on the object (nor shown in its repr); local servers need none.
    ``timeout`` bounds the connection and every wait for the next piece of the reply.
    """

    base_url: str
    model: str
    api_key_env: str = API_KEY_ENV
    timeout: float = 60.0
    max_tokens: int = 800
    temperature: float = 0.2
    prompt: str = field(default="", repr=False)  # system prompt; empty: prompts/answer_zh.txt

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RagError(f"the LLM URL must start with http:// or https:// and name a host, not {self.base_url!r}")
        if not self.model.strip():
            raise RagError("name the LLM model (for example --llm-model qwen2.5:7b-instruct)")
        if not self.timeout > 0:
            raise RagError(f"the LLM timeout must be a positive number of seconds, not {self.timeout!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise RagError(f"max_tokens must be a positive whole number, not {self.max_tokens!r}")
        if not self.prompt:
            object.__setattr__(self, "prompt", default_prompt())

    @property
    def endpoint(self) -> str:
        parts = urlsplit(self.base_url)
        path = parts.path.rstrip("/")
        if not path.endswith("/chat/completions"):
            path = (path or "/v1") + "/chat/completions"
        return parts._replace(path=path).geturl()

    def messages(self, question: str, passages: Sequence[Passage],
                 history: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
        """The chat: system prompt, the last few turns, then the numbered passages and the question."""
        out = [{"role": "system", "content": self.prompt}]
        for q, a in list(history)[-HISTORY_TURNS:]:
            a = strip_citations(a or "").strip()
            out += [{"role": "user", "content": q}, {"role": "assistant", "content": a[:HISTORY_CHARS]}]
        blocks = []
        for n, p in enumerate(passages, 1):
            head = f"[{n}] 《{p.title}》" + (f"（{p.published}）" if p.published else "")
            blocks.append(f"{head}\n{p.text[:PASSAGE_CHARS].strip()}")
        out.append({"role": "user", "content": "资料：\n\n" + "\n\n".join(blocks) + f"\n\n问题：{question}"})
        return out

    def complete(self, messages: list[dict[str, str]]) -> Reply:
        """One whole reply (``stream: false``). Raises GenerationError."""
        with self._post(messages, stream=False) as resp:
            return _whole_reply(resp)

    def stream(self, messages: list[dict[str, str]], stop: StopSignal | None = None) -> Iterator[str]:
        """Text pieces as the server sends them (``stream: true``, server-sent events); the
        generator's return value is the finish reason. Closing it, or setting ``stop``,
        closes the connection. Raises GenerationError."""
        with self._post(messages, stream=True, stop=stop) as resp:
            if "text/event-stream" not in (resp.getheader("Content-Type") or ""):
                reply = _whole_reply(resp)  # a server that ignores "stream": true
                yield reply.text
                return reply.finish_reason
            finish = None
            for piece, reason in _events(resp):
                finish = reason or finish
                if piece:
                    yield piece
            return finish

    def _post(self, messages: list[dict[str, str]], stream: bool, stop: StopSignal | None = None) -> _Exchange:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "stream": stream}
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        key = os.environ.get(self.api_key_env, "").strip()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return _Exchange(self, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers, stop)


class _Exchange:
    """One POST to the endpoint, as a context manager: it yields the 200 response and maps
    every transport failure inside the block to a GenerationError with a Chinese reason."""

    def __init__(self, gen: Generator, body: bytes, headers: dict[str, str], stop: StopSignal | None = None) -> None:
        import http.client

        self.gen, self.body, self.headers, self.stop = gen, body, headers, stop
        parts = urlsplit(gen.endpoint)
        self.host = parts.netloc
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(parts.hostname, parts.port, timeout=gen.timeout)

    def __enter__(self) -> http.client.HTTPResponse:
        try:
            if self.stop is not None:
                self.conn.connect()
                self.stop._watch(self.conn.sock)
            self.conn.request("POST", self.path, body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            if resp.status != 200:
                detail = resp.read(500).decode("utf-8", "replace")
                log.warning("LLM endpoint %s answered HTTP %s: %s", self.gen.endpoint, resp.status, detail)
                raise GenerationError(_status_reason(resp.status, self.gen.api_key_env))
            return resp
        except BaseException as exc:
            self.conn.close()
            if isinstance(exc, Exception) and not isinstance(exc, GenerationError):
                raise self._mapped(exc) from exc
            raise

    def __exit__(self, kind, exc, tb) -> None:
        self.conn.close()
        if isinstance(exc, Exception) and not isinstance(exc, GenerationError):
            raise self._mapped(exc) from exc

    def _mapped(self, exc: Exception) -> GenerationError:
        import http.client

        if isinstance(exc, TimeoutError):
            return GenerationError(f"连接超时（{self.gen.timeout:g} 秒）")
        if isinstance(exc, (http.client.HTTPException, ConnectionResetError, BrokenPipeError)):
            return GenerationError("连接被服务端中断")
        if isinstance(exc, OSError):
            return GenerationError(f"无法连接 {self.host}")
        if isinstance(exc, (ValueError, KeyError, IndexError, TypeError, AttributeError)):
            return GenerationError("回复格式无法解析")
        return GenerationError(f"请求失败（{type(exc).__name__}）")


def _status_reason(status: int, key_env: str) -> str:
    if status in (401, 403):
        return f"API 密钥无效或缺失（HTTP {status}），请检查环境变量 {key_env}"
    if status == 404:
        return "接口地址或模型名不存在（HTTP 404）"
    if status == 429:
        return "请求过多或额度已用完（HTTP 429），请稍后再试"
    if status >= 500:
        return f"服务端出错（HTTP {status}）"
    return f"服务端拒绝了请求（HTTP {status}）"


def _whole_reply(resp: http.client.HTTPResponse) -> Reply:
    data = json.loads(resp.read().decode("utf-8"))
    if isinstance(data, dict) and data.get("error"):
        raise GenerationError("服务端返回了错误")
    choice = data["choices"][0]
    text = choice["message"].get("content") or ""
    if not isinstance(text, str):
        raise GenerationError("回复格式无法解析")
    return Reply(text, choice.get("finish_reason"))


def _events(resp: http.client.HTTPResponse) -> Iterator[tuple[str, str | None]]:
    """(text piece, finish reason) per server-sent event, until ``data: [DONE]`` or the end."""
    while True:
        raw = resp.readline()
        if not raw:
            return
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments (": keep-alive"), event: lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        data = json.loads(payload)
        if data.get("error"):
            raise GenerationError("服务端在生成中途报错")
        if "choices" not in data and "usage" not in data:
            raise GenerationError("回复格式无法解析")
        if not data.get("choices"):
            continue  # a usage-only chunk
        choice = data["choices"][0]
        piece = (choice.get("delta") or {}).get("content") or ""
        if not isinstance(piece, str):
            raise GenerationError("回复格式无法解析")
        yield piece, choice.get("finish_reason")


@lru_cache(maxsize=1)
def default_prompt() -> str:
    """The system prompt shipped in ``rag/answering/prompts/answer_zh.txt``."""
    return resources.files(__package__).joinpath("prompts/answer_zh.txt").read_text(encoding="utf-8").strip()
