"""Uploads from the page: copy, index, roll back on failure; progress by chunks embedded; cancel.

An :class:`UploadJob` runs in its own thread while the page polls it. It reads every file
first (to count its chunks: the progress bar's total), then adds them one at a time, so a
bad file is reported by name and the others are kept. The knowledge base's embedder is
wrapped once by :class:`ProgressEmbedder`, which embeds a job's passages in small slices,
counting them and stopping at the next slice when the job is cancelled: the add then fails
before its commit, so the index is left as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..chunking import chunk_text
from ..documents import SUPPORTED_SUFFIXES, read_file
from ..errors import DocumentError, RagError
from .messages import SUPPORTED_LIST, error_text, file_reason
from .render import basename, render_notice, render_progress

log = logging.getLogger(__name__)

UPLOADS = "uploads"  # folder inside the data dir (rag.feedback.data_folder) that keeps uploaded files


class UploadCancelled(Exception):
    """Raised inside an add when the user cancels the upload; nothing is committed."""


def safe_name(name: str) -> str:
    """The uploaded file's own name, without folders or characters unsafe in a file name."""
    name = Path(name.replace("\\", "/")).name.strip().lstrip(".~$")
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"/\\|?*')
    return name or "upload.txt"


class ProgressEmbedder:
    """The knowledge base's embedder, reporting chunks embedded to the upload job running in
    this thread (if any) and honouring its cancel. Everything else is passed through."""

    # Passages per call while a job watches: progress and cancel at this step. Costs ~6% more
    # CPU than one call (slices of 32: ~9%), python benchmarks/web_upload.py --slices 32,64.
    SLICE = 64

    def __init__(self, inner) -> None:
        self.inner = inner
        self._local = threading.local()

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @classmethod
    def install(cls, kb) -> ProgressEmbedder:
        if not isinstance(kb.embedder, cls):
            kb.embedder = cls(kb.embedder)
        return kb.embedder

    @contextmanager
    def watching(self, job: UploadJob) -> Iterator[None]:
        self._local.job = job
        try:
            yield
        finally:
            self._local.job = None

    def embed_passages(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        job: UploadJob | None = getattr(self._local, "job", None)
        if job is None or len(texts) <= self.SLICE:
            if job is not None:
                job.check()
            out = self.inner.embed_passages(texts, batch_size=batch_size, progress=progress and job is None)
            if job is not None:
                job.embedded(len(texts))
            return out
        parts = []
        for lo in range(0, len(texts), self.SLICE):
            job.check()
            parts.append(self.inner.embed_passages(texts[lo:lo + self.SLICE], batch_size=batch_size))
            job.embedded(len(parts[-1]))
        return np.concatenate(parts)


@dataclass
class FileResult:
    name: str
    ok: bool
    text: str  # what happened, in Chinese


@dataclass
class UploadJob:
    """One upload of several files, run by :meth:`run` in a thread and polled by the page."""

    files: list[Path]
    results: list[FileResult] = field(default_factory=list)
    total_chunks: int = 0
    done_chunks: int = 0
    current: str = ""
    phase: str = "准备中"
    finished: bool = False
    changed: bool = False  # the index changed (something added or updated)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _slice_started: float | None = None
    _slices: list[tuple[int, float]] = field(default_factory=list)  # (chunks, seconds) per slice

    # -- called from the page ------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress_html(self) -> str:
        if self.phase == "读取":
            detail = f"正在读取 {self.current}"
        elif self.done_chunks == 0:
            detail = f"{self.current}：正在准备嵌入（第一次上传时要先加载模型，约需十几秒）"
        else:
            share = self.done_chunks / max(self.total_chunks, 1)
            detail = f"已嵌入 {self.done_chunks}/{self.total_chunks} 段（{share:.0%}）"
            eta = self.eta_seconds()
            if eta is not None:
                detail += f"，预计还需约 {_duration(eta)}"
        if self.cancelled:
            detail = "正在取消…"
        n = len(self.files)
        return render_progress(f"正在添加 {n} 个文件到知识库", self.done_chunks, self.total_chunks, detail)

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate measured so far (the first slice, which may include loading
        the model, is left out once there are others)."""
        timed = self._slices[1:] or self._slices
        chunks, seconds = sum(n for n, _ in timed), sum(s for _, s in timed)
        if not chunks:
            return None
        return max(0.0, (self.total_chunks - self.done_chunks) * seconds / chunks)

    def report_html(self) -> str:
        ok = [r for r in self.results if r.ok]
        bad = [r for r in self.results if not r.ok]
        parts = []
        if self.cancelled:
            parts.append(render_notice("warn", [], "已取消上传：没有完成的文件未加入知识库。"))
        if ok:
            parts.append(render_notice("ok", [f"{r.name}：{r.text}" for r in ok], f"✓ 已处理 {len(ok)} 个文件"))
        if bad:
            parts.append(render_notice("warn", [f"{r.name}：{r.text}" for r in bad], f"✗ {len(bad)} 个文件未添加"))
        return "".join(parts) or render_notice("warn", [], "没有可添加的文件。")

    def failures(self) -> list[dict]:
        """Files that could not be read, for this session's document list (not cancellations)."""
        return [{"name": r.name, "reason": r.text} for r in self.results if not r.ok and r.text != _CANCELLED]

    # -- called from the add -------------------------------------------------------------
    def check(self) -> None:
        """Before each slice: stop here if cancelled."""
        if self._cancel.is_set():
            raise UploadCancelled
        self._slice_started = time.perf_counter()

    def embedded(self, n: int) -> None:
        """After each slice: ``n`` more chunks embedded."""
        if self._slice_started is not None:
            self._slices.append((n, time.perf_counter() - self._slice_started))
            self._slice_started = None
        self.done_chunks = min(self.total_chunks, self.done_chunks + n)

    # -- the work ------------------------------------------------------------------------
    def run(self, kb, uploads: Path) -> None:
        """Read, copy and index every file; never raises (the page shows the results)."""
        try:
            embedder = ProgressEmbedder.install(kb)
            todo = self._read_all(kb)
            self.phase = "嵌入"
            uploads.mkdir(parents=True, exist_ok=True)
            for name, src, chunks in todo:
                if self.cancelled:
                    self.results.append(FileResult(name, False, _CANCELLED))
                    continue
                self.current = name
                before = self.done_chunks
                with embedder.watching(self):
                    self._add_one(kb, name, src, uploads)
                self.done_chunks = before + chunks  # a file found unchanged embeds nothing
        except Exception as exc:  # anything unexpected is reported, not raised into a thread
            log.exception("upload of %s failed", self.current)
            self.results.append(FileResult(self.current or "上传", False, error_text(exc)))
        finally:
            self.finished = True

    def _read_all(self, kb) -> list[tuple[str, Path, int]]:
        """Check and read every file first: its chunks make up the progress bar's total."""
        self.phase = "读取"
        todo = []
        for src in self.files:
            name = safe_name(src.name)
            self.current = name
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                suffix = Path(name).suffix or "（无扩展名）"
                self.results.append(FileResult(name, False, f"不支持的文件类型 {suffix}；支持 {SUPPORTED_LIST}"))
                continue
            try:
                doc = read_file(src)
            except DocumentError as exc:
                self.results.append(FileResult(name, False, file_reason(str(exc), src)))
                continue
            chunks = len(chunk_text(doc.text, "", kb.chunking))
            self.total_chunks += chunks
            todo.append((name, src, chunks))
        return todo

    def _add_one(self, kb, name: str, src: Path, uploads: Path) -> None:
        dest = uploads / name
        backup = None
        if dest.exists():
            backup = dest.with_name(f".{name}.previous")
            shutil.copy2(dest, backup)
        report, reason = None, ""
        try:
            shutil.copyfile(src, dest)
            report = kb.add([dest])
        except UploadCancelled:
            reason = _CANCELLED
        except (RagError, OSError) as exc:
            reason = error_text(exc)
        else:
            if report.failed:
                reason = file_reason("; ".join(r for _, r in report.failed), dest)
            elif report.duplicates:
                reason = f"与已有文档「{basename(report.duplicates[0][1])}」内容相同，未重复添加"
        if report is not None and not reason:
            self.changed = self.changed or bool(report.added or report.updated)
            text = "已添加" if report.added else "已更新为新版本" if report.updated else "内容未变，无需重新索引"
            self.results.append(FileResult(name, True, text))
            if backup is not None:
                backup.unlink(missing_ok=True)
            return
        self.results.append(FileResult(name, False, reason))
        if backup is not None:
            os.replace(backup, dest)
        else:
            dest.unlink(missing_ok=True)


_CANCELLED = "已取消，未加入知识库"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} 秒"
    return f"{int(seconds // 60)} 分 {round(seconds % 60)} 秒"
