"""Written answers streamed into the chat: one background job per chat turn, read by polling.

gr.HTML's server functions are plain request and response, so a stream cannot come back
through one. The chat's ``ask`` starts a job here (a thread reading
:func:`rag.answering.stream_answer`) and returns its id along with the extracted answer,
which the page shows at once. The page then calls ``written_poll``, which waits up to
``POLL_WAIT`` seconds for new text and returns as soon as some arrives, so pieces appear as
the endpoint sends them; ``written_stop`` stops a job, shutting its connection to the
endpoint. A job nobody has polled for ``IDLE_SECONDS`` (a closed tab) stops at its next
piece and is forgotten when the next job starts, so nothing keeps running for a page that left. Job ids are random: a session
cannot read or stop another's.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..answering.generate import Generator, StopSignal, WrittenAnswer, should_generate, stream_answer
from ..types import Answer
from .render import render_written

log = logging.getLogger(__name__)

POLL_WAIT = 1.0  # seconds a poll waits for new text before answering with nothing new
IDLE_SECONDS = 60.0  # a job not polled for this long is stopped and dropped
MAX_JOBS = 32  # written answers being generated at once, over all sessions
HISTORY_TURNS = 3
HISTORY_CHARS = 500

GONE = "生成的回答已中断：服务器上已没有这次生成（可能已重启或等待过久），可点「重新回答」再试"
BUSY = "生成式回答暂不可用：同时生成的回答过多，请稍后点「重新回答」"


class WrittenJob:
    """One written answer being generated: the text so far and, at the end, the checked result."""

    def __init__(self, answer: Answer, generator: Generator, history: Sequence[tuple[str, str]]) -> None:
        self.stop_signal = StopSignal()
        self.text = ""
        self.final: WrittenAnswer | None = None
        self.seen = time.monotonic()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(answer, generator, history), daemon=True,
                                        name="rag-written")

    def start(self) -> None:
        self._thread.start()

    def _run(self, answer: Answer, generator: Generator, history: Sequence[tuple[str, str]]) -> None:
        final = None
        try:
            for item in stream_answer(answer, generator, history, stop=self.stop_signal):
                if isinstance(item, WrittenAnswer):
                    final = item
                else:
                    with self._changed:
                        self.text += item
                        self._changed.notify_all()
                    if time.monotonic() - self.seen > IDLE_SECONDS:  # the page left: stop generating for it
                        self.stop_signal.set()
        except Exception:  # stream_answer does not raise for endpoint trouble; this is a bug of ours
            log.exception("written answer failed")
        with self._changed:
            self.final = final or WrittenAnswer("", notice="生成式回答不可用：内部错误，以下为抽取的答案与出处")
            self._changed.notify_all()

    def poll(self, cursor: int, wait: float) -> dict[str, Any]:
        """What came after ``cursor`` characters, waiting up to ``wait`` seconds for something."""
        with self._changed:
            self.seen = time.monotonic()
            self._changed.wait_for(lambda: len(self.text) > cursor or self.final is not None, timeout=wait)
            out: dict[str, Any] = {"text": self.text[cursor:], "cursor": len(self.text), "done": self.final is not None}
            final = self.final
        if final is not None:
            out.update(html=render_written(final), final=final.text)
        return out

    def stop(self, wait: float) -> None:
        """Stop generating (the connection is shut at once) and wait up to ``wait`` seconds for the end."""
        self.stop_signal.set()
        self._thread.join(wait)


def _history(data: Any) -> list[tuple[str, str]]:
    """The page's ``[[question, answer], ...]``, checked and cut to the last few short turns."""
    pairs = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item):
            pairs.append((item[0][:HISTORY_CHARS], item[1][:HISTORY_CHARS]))
    return pairs[-HISTORY_TURNS:]


def _ended(notice: str) -> dict[str, Any]:
    return {"text": "", "cursor": 0, "done": True, "final": "", "html": render_written(WrittenAnswer("", notice=notice))}


class WrittenJobs:
    """The written answers being generated for every session of one app."""

    def __init__(self, generator: Generator | None) -> None:
        self.generator = generator
        self._jobs: dict[str, WrittenJob] = {}
        self._lock = threading.Lock()

    def start(self, answer: Answer, history: Any = None) -> dict[str, Any] | None:
        """Start writing an answer for ``answer``; None when no endpoint is configured or
        retrieval abstained (the endpoint is then not called at all)."""
        if self.generator is None or not should_generate(answer):
            return None
        self._sweep()
        with self._lock:
            if len(self._jobs) >= MAX_JOBS:
                return {"model": self.generator.model, **_ended(BUSY)}
            job_id = secrets.token_urlsafe(16)
            job = self._jobs[job_id] = WrittenJob(answer, self.generator, _history(history))
        job.start()
        return {"job": job_id, "model": self.generator.model, "done": False}

    def poll(self, data: Any) -> dict[str, Any]:
        """``{"job", "cursor"}`` in; ``{"text", "cursor", "done"}`` out, with ``html`` (the
        checked answer, or the notice) and ``final`` (its text) once done."""
        data = data if isinstance(data, dict) else {}
        job = self._jobs.get(str(data.get("job") or ""))
        if job is None:
            return _ended(GONE)
        try:
            cursor = max(0, int(data.get("cursor") or 0))
        except (TypeError, ValueError):
            cursor = 0
        out = job.poll(cursor, POLL_WAIT)
        if out["done"]:
            self._drop(str(data.get("job")))
        return out

    def stop(self, data: Any) -> dict[str, Any]:
        """Stop a job; returns its end like :meth:`poll` (the text so far, checked, marked stopped)."""
        data = data if isinstance(data, dict) else {}
        job_id = str(data.get("job") or "")
        job = self._jobs.get(job_id)
        if job is None:
            return _ended("已停止生成")
        job.stop(wait=10.0)
        out = job.poll(0, 0)
        if out["done"]:
            self._drop(job_id)
        return out

    def _drop(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def _sweep(self) -> None:
        """Stop and forget the jobs no page has polled for a while."""
        now = time.monotonic()
        with self._lock:
            idle = [k for k, job in self._jobs.items() if now - job.seen > IDLE_SECONDS]
            jobs = [self._jobs.pop(k) for k in idle]
        for job in jobs:
            job.stop_signal.set()

    def __len__(self) -> int:
        return len(self._jobs)
