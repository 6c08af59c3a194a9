"""Optional written answers from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

The extracted short answer and its sources stay the product; a written answer is added only
when a user configures an endpoint (vLLM, Ollama, an in-house gateway). It is checked
against the passages it was given, because a fluent answer is only worth showing when its
citations can be followed: every ``[n]`` must name a given passage, a sentence whose numbers,
names or quoted terms its cited passages lack is flagged, and a number that contradicts the
extracted answer is said out loud. A failing endpoint never raises to the user: the result
carries a one-line Chinese notice instead.

This is the only code that opens a network connection, and only to the configured address
(plain ``http.client``: no proxy from the environment, no other host).

Typical use::

    gen = Generator("http://127.0.0.1:11434/v1", "qwen2.5:7b-instruct")
    kb_answer = kb.answer(question)
    written = write_answer(kb_answer, gen, history=[(q1, a1)])     # or stream_answer(...)
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ..errors import RagError
from ..types import Answer, Passage
from ..zh import jieba, pos_tags
from ..zh.lexicon import CHECKED_UNITS

if TYPE_CHECKING:  # http.client is imported on the first request: `rag ask` without --llm stays fast
    import http.client

log = logging.getLogger(__name__)

__all__ = [
    "GenerationError",
    "Generator",
    "StopSignal",
    "Unverified",
    "WrittenAnswer",
    "check_answer",
    "should_generate",
    "stream_answer",
    "write_answer",
]

API_KEY_ENV = "RAG_LLM_API_KEY"
HISTORY_TURNS = 3  # earlier (question, answer) pairs sent along; older ones are dropped
HISTORY_CHARS = 300  # each earlier answer is cut to this many characters
PASSAGE_CHARS = 1500  # each passage is cut to this many characters in the prompt


class GenerationError(RagError):
    """The endpoint could not give a usable reply; the message is a short Chinese reason."""


class _Stopped(GenerationError):
    """The user stopped the reply: not the endpoint's fault, and said so."""


class StopSignal:
    """Stops a streamed reply from another thread (a stop button in the web app).

    Closing the iterator of :func:`stream_answer` works only between pieces, from the thread
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
        raise _Stopped("已停止生成")


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


# -- the client ---------------------------------------------------------------------------


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
            a = _CITE_RE.sub("", a or "").strip()  # old [n] named other passages
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


# -- reasoning models: a leading <think>...</think> block is not part of the answer -------

_THINK = "<think>"


def _strip_thinking(text: str) -> str:
    body = text.lstrip()
    if not body.startswith(_THINK):
        return text
    end = body.find("</think>")
    return "" if end < 0 else body[end + len("</think>"):].lstrip()


def _visible(raw: str) -> str | None:
    """What of a partial reply can be shown: None while a leading think block may be open."""
    body = raw.lstrip()
    if _THINK.startswith(body) or (body.startswith(_THINK) and "</think>" not in body):
        return None
    return _strip_thinking(raw)


# -- grounding checks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Unverified:
    """A sentence of the written answer that its cited passages do not back."""

    sentence: str
    missing: tuple[str, ...]  # numbers, names or quoted terms its cited passages lack
    cited: tuple[int, ...] = ()  # the valid passage numbers it cites (none: it cites nothing)

    def describe(self) -> str:
        why = f"出处中没有：{'、'.join(self.missing)}" if self.cited else "未注明出处"
        return f"「{self.sentence}」（{why}）"


@dataclass(frozen=True)
class WrittenAnswer:
    """A written answer and what checking it found. ``notice`` is one Chinese line for the
    user when something went wrong (the endpoint failed, a citation names no passage, the
    reply was cut short); ``text`` may then be empty."""

    text: str
    citations: tuple[int, ...] = ()  # valid passage numbers (1-based), in order of first use
    bad_citations: tuple[int, ...] = ()  # numbers that name no given passage
    unverified: tuple[Unverified, ...] = ()
    disagreement: str | None = None  # the extracted and the written answer differ on a number
    notice: str | None = None

    def check_lines(self) -> list[str]:
        """The checks as short Chinese lines, for the CLI and the web app."""
        lines = [f"注意：{self.notice}"] if self.notice else []
        if self.text:
            lines.append("引用：" + (" ".join(f"[{n}]" for n in self.citations) if self.citations else "无"))
        lines += [f"未核实：{u.describe()}" for u in self.unverified]
        if self.disagreement:
            lines.append(f"不一致：{self.disagreement}")
        return lines

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "bad_citations": list(self.bad_citations),
            "unverified": [{"sentence": u.sentence, "missing": list(u.missing), "cited": list(u.cited)}
                           for u in self.unverified],
            "disagreement": self.disagreement,
            "notice": self.notice,
        }


# [1] [1,2] [1、2] [1-3] 【1】 ［1］; four-digit brackets are years of document numbers (国发[2024]5号)
_CITE_RE = re.compile(r"[\[【［]\s*(\d{1,3}(?:\s*[,，、\-–~]\s*\d{1,3})*)\s*[\]】］]")
_SPLIT_AFTER_RE = re.compile(r"(?<=[。！？!?；;\n])")
_LEAD_RE = re.compile(rf"(?:\s*(?:{_CITE_RE.pattern}|[」』”’）)\]】*]))+")
_LIST_MARK_RE = re.compile(r"^\s*(?:#+\s*|\d{1,2}[.、)）]\s*|[（(]\d{1,2}[)）]\s*|[-*•]\s+)")
_WORD_RE = re.compile(r"\w")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_NUM = "[零〇一二两三四五六七八九十百千万亿]+"
_ARABIC = r"\d+(?:,\d{3}(?!\d))*(?:\.\d+)?"
_UNIT = "(?:多|余)?(" + "|".join(re.escape(u) for u in CHECKED_UNITS) + ")?"
_NUMBER_RE = re.compile(rf"({_ARABIC})\s?{_UNIT}")
_CN_NUMBER_RE = re.compile(rf"(?<![\d.])({_CN_NUM}){_UNIT}")
_QUOTED_RE = re.compile(r"《([^《》\n]{2,40})》|「([^「」\n]{2,40})」|“([^“”\n]{2,40})”|\"([^\"\n]{2,40})\"")
_NAME_TAGS = ("nr", "ns", "nt")
_ADMIN_SUFFIX = "省市县区"


class _Number(NamedTuple):
    value: str  # canonical decimal, e.g. "7", "4.5"
    unit: str
    shown: str  # as written, e.g. "7家"


def _canon(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _cn_value(run: str) -> int | None:
    """二〇二四 -> 2024, 十二 -> 12, 一亿二千万 -> 120000000; None if it is not a number
    (万 or 千 alone, as in 千家万户)."""
    if not (run[0] == "十" or any(c in _CN_DIGITS for c in run)):
        return None
    if not any(c in "十百千万亿" for c in run):
        return int("".join(str(_CN_DIGITS[c]) for c in run))
    total = section = 0
    digit: int | None = None
    for c in run:
        if c in _CN_DIGITS:
            digit = _CN_DIGITS[c]
        elif c in "十百千":
            section += (1 if digit is None else digit) * {"十": 10, "百": 100, "千": 1000}[c]
            digit = None
        elif c == "万":
            total += (section + (digit or 0)) * 10_000
            section, digit = 0, None
        else:  # 亿
            total = (total + section + (digit or 0)) * 100_000_000
            section, digit = 0, None
    return total + section + (digit or 0)


def _numbers(text: str, *, bare_chinese: bool) -> list[_Number]:
    """Arabic numbers (with the measure word after them, if any) and Chinese numerals; with
    ``bare_chinese`` False a Chinese numeral counts only before a measure word, so that the
    一 of 统一 or 进一步 is not taken for a number."""
    out = []
    for m in _NUMBER_RE.finditer(text):
        try:
            value = Decimal(m.group(1).replace(",", ""))
        except InvalidOperation:
            continue
        out.append(_Number(_canon(value), m.group(2) or "", m.group(0).strip()))
    for m in _CN_NUMBER_RE.finditer(text):
        if not (bare_chinese or m.group(2)):
            continue
        value = _cn_value(m.group(1))
        if value is not None:
            out.append(_Number(str(value), m.group(2) or "", m.group(0)))
    return out


def _stated_numbers(text: str) -> set[tuple[str, str]]:
    """(value, measure word) of every number a passage states; 10万人 also as (100000, 人)
    and 十万人 also as (10, 万人), so that the ways of writing one quantity match."""
    found = set()
    for n in _numbers(text, bare_chinese=True):
        found.add((n.value, n.unit))
        for big, scale in (("万", Decimal(10_000)), ("亿", Decimal(100_000_000))):
            if n.unit.startswith(big):  # 10万人
                found.add((_canon(Decimal(n.value) * scale), n.unit[1:]))
            elif n.shown.removesuffix(n.unit).endswith(big):  # 十万人
                found.add((_canon(Decimal(n.value) / scale), big + n.unit))
    return found


def _backed(number: _Number, stated: set[tuple[str, str]]) -> bool:
    """A number with a measure word needs the same value with that measure word (or with
    none, as in dates written 2024-10-07) in the passage: 8家 is not backed by 五届八次."""
    if number.unit:
        return (number.value, number.unit) in stated or (number.value, "") in stated
    return any(value == number.value for value, _ in stated)


def _names(text: str) -> list[str]:
    tags = pos_tags()
    seen: dict[str, None] = {}
    for word in jieba().lcut(text, HMM=False):
        if len(word) >= 2 and tags.get(word, "")[:2] in _NAME_TAGS:
            seen.setdefault(word)
    return list(seen)


def _name_in(name: str, text: str) -> bool:
    """晋中市 is backed by a passage that says 晋中."""
    short = name.rstrip(_ADMIN_SUFFIX)
    return name in text or (len(short) >= 2 and short in text)


def _fold(text: str) -> str:
    from ..textnorm import normalize

    return normalize(text)


def _sentences(text: str) -> list[str]:
    """Sentences, each keeping the citation marks and closing quotes written after its stop."""
    out: list[str] = []
    for piece in _SPLIT_AFTER_RE.split(text):
        lead = _LEAD_RE.match(piece)
        if out and lead:
            out[-1] += piece[:lead.end()]
            piece = piece[lead.end():]
        if not _WORD_RE.search(piece):
            if out:
                out[-1] += piece
            continue
        out.append(piece)
    return [s.strip() for s in out if s.strip()]


def _cited(text: str) -> list[int]:
    """The passage numbers the citation marks of ``text`` name, ranges (``[1-3]``) spelled out."""
    found = []
    for m in _CITE_RE.finditer(text):
        for part in re.split(r"\s*[,，、]\s*", m.group(1)):
            ends = [int(x) for x in re.split(r"\s*[\-–~]\s*", part)]
            lo, hi = ends[0], ends[-1]
            found.extend(range(lo, hi + 1) if 0 <= hi - lo <= 20 else (lo, hi))
    return found


def check_answer(text: str, passages: Sequence[Passage], extracted: str | None = None) -> WrittenAnswer:
    """Check a written answer against the passages it was given (numbered from 1).

    Every ``[n]`` must name a given passage; a sentence stating a number, a known name or a
    quoted term is unverified when its cited passages (text, title and date) lack it, or
    when it cites none; a number of ``extracted`` (the short answer) that the written
    answer states differently is a disagreement. Nothing is removed from ``text``."""
    valid = set(range(1, len(passages) + 1))
    all_cited = list(dict.fromkeys(_cited(text)))
    grounds = [f"{p.title}\n{p.published or ''}\n{p.text}" for p in passages]
    folded = [_fold(g) for g in grounds]
    stated = [_stated_numbers(f) for f in folded]

    unverified = []
    for sentence in _sentences(text):
        cited = tuple(n for n in dict.fromkeys(_cited(sentence)) if n in valid)
        body = _fold(_LIST_MARK_RE.sub("", _CITE_RE.sub(" ", sentence)))
        numbers = _numbers(body, bare_chinese=False)
        quoted = [next(g for g in m.groups() if g) for m in _QUOTED_RE.finditer(body)]
        names = [w for w in _names(body) if not any(w in q for q in quoted)]
        if not (numbers or quoted or names):
            continue
        have_numbers = set().union(*(stated[n - 1] for n in cited)) if cited else set()
        have_text = "\n".join(folded[n - 1] for n in cited)
        missing = [n.shown for n in numbers if not _backed(n, have_numbers)]
        missing += [q for q in quoted if q not in have_text]
        missing += [w for w in names if not _name_in(w, have_text)]
        if missing or not cited:
            unverified.append(Unverified(sentence, tuple(dict.fromkeys(missing)), cited))

    bad = tuple(n for n in all_cited if n not in valid)
    notice = None
    if bad:
        notice = f"生成的回答引用了不存在的资料 {' '.join(f'[{n}]' for n in bad)}，请以下方出处为准"
    return WrittenAnswer(
        text=text,
        citations=tuple(n for n in all_cited if n in valid),
        bad_citations=bad,
        unverified=tuple(unverified),
        disagreement=_disagreement(extracted, _fold(_CITE_RE.sub(" ", text)), set().union(*stated)),
        notice=notice,
    )


def _disagreement(extracted: str | None, written: str, stated: set[tuple[str, str]]) -> str | None:
    """Say so when the written answer gives another number for what the short answer counts:
    a number of the short answer is absent from the written one, which states a number
    with the same measure word that no passage states (3家 of another sentence of the
    source is another quantity, not a rival)."""
    if not extracted:
        return None
    ours = _numbers(_fold(extracted), bare_chinese=True)
    theirs = _numbers(written, bare_chinese=False)
    for number in ours:
        if any(n.value == number.value for n in theirs):
            continue
        rivals = list(dict.fromkeys(n.shown for n in theirs if n.unit == number.unit and not _backed(n, stated)))
        if rivals:
            return (f"抽取的答案是「{extracted}」，生成的回答写的是「{'、'.join(rivals)}」，"
                    "两者不一致，请核对出处原文")
    return None


# -- the entry points ---------------------------------------------------------------------


def should_generate(kb_answer: Answer, relevant: bool | None = None) -> bool:
    """Whether to ask the endpoint at all. Not when retrieval abstained: no passages, or no
    short answer and no passage the knowledge base found relevant. ``relevant`` overrides
    the guess; without it, a passage counts as relevant when the answer gate got as far as
    scoring a span (``confidence > 0``: the question's key terms are in the index and a
    candidate answer was found, only not confidently enough)."""
    if not kb_answer.passages:
        return False
    if relevant is not None:
        return relevant
    return kb_answer.text is not None or kb_answer.confidence > 0


def write_answer(kb_answer: Answer, generator: Generator | None,
                 history: Sequence[tuple[str, str]] = (), *, relevant: bool | None = None) -> WrittenAnswer | None:
    """The checked written answer for ``kb_answer`` (one non-streaming request), or None when
    no generator is configured or retrieval abstained. Never raises for endpoint trouble."""
    if generator is None or not should_generate(kb_answer, relevant):
        return None
    try:
        reply = generator.complete(generator.messages(kb_answer.question, kb_answer.passages, history))
        return _finish(kb_answer, generator, reply.text, reply.finish_reason, None)
    except GenerationError as exc:
        return _finish(kb_answer, generator, "", None, exc)
    except Exception as exc:  # an optional extra must never break the answer
        log.exception("written answer failed")
        return _finish(kb_answer, generator, "", None, GenerationError(f"内部错误（{type(exc).__name__}）"))


def stream_answer(kb_answer: Answer, generator: Generator | None,
                  history: Sequence[tuple[str, str]] = (), *,
                  relevant: bool | None = None, stop: StopSignal | None = None) -> Iterator[str | WrittenAnswer]:
    """Stream the written answer: text pieces (``str``) as they arrive, then exactly one
    checked :class:`WrittenAnswer` (whose ``text`` is the pieces joined, cleaned). Yields
    nothing when no generator is configured or retrieval abstained. Closing the iterator,
    or setting ``stop`` from another thread (a stop button), closes the connection; the
    result then keeps what came and says it was stopped. Never raises for endpoint trouble."""
    if generator is None or not should_generate(kb_answer, relevant):
        return
    raw, shown, finish, error, pieces = "", "", None, None, None
    try:
        pieces = generator.stream(generator.messages(kb_answer.question, kb_answer.passages, history), stop)
        while True:
            try:
                raw += next(pieces)
            except StopIteration as end:
                finish = end.value
                break
            visible = _visible(raw)
            if visible and visible.startswith(shown) and len(visible) > len(shown):
                yield visible[len(shown):]
                shown = visible
    except GenerationError as exc:
        error = exc
    except Exception as exc:  # an optional extra must never break the answer
        log.exception("written answer failed")
        error = GenerationError(f"内部错误（{type(exc).__name__}）")
    finally:
        if pieces is not None:
            pieces.close()
    if stop is not None and stop.is_set():  # a shut socket reads as an end or a reset: neither is the server's
        error, finish = _Stopped("已停止生成"), None
    yield _finish(kb_answer, generator, raw, finish, error)


def _finish(kb_answer: Answer, generator: Generator, raw: str, finish: str | None,
            error: GenerationError | None) -> WrittenAnswer:
    text = _strip_thinking(unicodedata.normalize("NFC", raw)).strip()
    if not text and error is None:
        error = GenerationError("模型返回了空回复")
    if not text:
        rest = "以下为抽取的答案与出处" if kb_answer.text else "以下为检索到的出处"
        if isinstance(error, _Stopped):
            return WrittenAnswer("", notice=f"{error}，{rest}")
        return WrittenAnswer("", notice=f"生成式回答不可用：{error}，{rest}")
    checked = check_answer(text, kb_answer.passages, kb_answer.text)
    notes = [checked.notice] if checked.notice else []
    if isinstance(error, _Stopped):
        notes.insert(0, f"{error}，以上回答不完整")
    elif error is not None:
        notes.insert(0, f"生成中断：{error}，以上回答不完整")
    elif finish == "length":
        notes.append(f"回答达到长度上限（{generator.max_tokens} tokens），可能不完整")
    return replace(checked, notice="；".join(notes) or None)
