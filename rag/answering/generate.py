"""Optional written answers from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

The extracted short answer and its sources stay the product; a written answer is added only
when a user configures an endpoint (vLLM, Ollama, an in-house gateway). It is checked
against the passages it was given (:mod:`.grounding`), because a fluent answer is only worth
showing when its citations can be followed. A failing endpoint never raises to the user:
the result carries a one-line Chinese notice instead.

This module holds the entry points; the endpoint client is :mod:`.llm_client` (the only
code that opens a network connection), the checks :mod:`.grounding`. Every public name of
the three is importable from here.

Typical use::

    gen = Generator("http://127.0.0.1:11434/v1", "qwen2.5:7b-instruct")
    kb_answer = kb.answer(question)
    written = write_answer(kb_answer, gen, history=[(q1, a1)])     # or stream_answer(...)
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import replace

from ..types import Answer
from .grounding import Unverified, WrittenAnswer, check_answer
from .llm_client import API_KEY_ENV, GenerationError, Generator, Reply, Stopped, StopSignal, default_prompt

log = logging.getLogger(__name__)

__all__ = [
    "API_KEY_ENV",
    "GenerationError",
    "Generator",
    "Reply",
    "StopSignal",
    "Unverified",
    "WrittenAnswer",
    "check_answer",
    "default_prompt",
    "should_generate",
    "stream_answer",
    "write_answer",
]


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
        error, finish = Stopped("已停止生成"), None
    yield _finish(kb_answer, generator, raw, finish, error)


def _finish(kb_answer: Answer, generator: Generator, raw: str, finish: str | None,
            error: GenerationError | None) -> WrittenAnswer:
    text = _strip_thinking(unicodedata.normalize("NFC", raw)).strip()
    if not text and error is None:
        error = GenerationError("模型返回了空回复")
    if not text:
        rest = "以下为抽取的答案与出处" if kb_answer.text else "以下为检索到的出处"
        if isinstance(error, Stopped):
            return WrittenAnswer("", notice=f"{error}，{rest}")
        return WrittenAnswer("", notice=f"生成式回答不可用：{error}，{rest}")
    checked = check_answer(text, kb_answer.passages, kb_answer.text)
    notes = [checked.notice] if checked.notice else []
    if isinstance(error, Stopped):
        notes.insert(0, f"{error}，以上回答不完整")
    elif error is not None:
        notes.insert(0, f"生成中断：{error}，以上回答不完整")
    elif finish == "length":
        notes.append(f"回答达到长度上限（{generator.max_tokens} tokens），可能不完整")
    return replace(checked, notice="；".join(notes) or None)
