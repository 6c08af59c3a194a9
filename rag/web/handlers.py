"""What the page and the API ask of the knowledge base, without Gradio: answering (with
follow-ups and a document/date scope), the document list, previews, originals and deletes.

:func:`answer_question` is the one place that turns a typed question into an answer: the
chat and the ``ask`` endpoint both call it.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TOP_K
from ..conversation import rewrite_followup
from ..errors import RagError
from ..ingest.metadata import doc_type
from ..types import Answer
from .messages import error_text
from .render import basename, render_answer, render_document, render_error

if TYPE_CHECKING:
    from .written import WrittenJobs

log = logging.getLogger(__name__)

MAX_ORIGINAL_BYTES = 50 * 1024 * 1024  # originals larger than this are not sent to the browser


@dataclass(frozen=True)
class Scope:
    """Which documents an answer may come from, as the page's 查找范围 sets it: a set of
    ids, a range of publication dates (inclusive, ``YYYY-MM-DD``) and a document type. It
    becomes the ``filters`` of :meth:`KnowledgeBase.answer` (see :mod:`rag.filters`; a
    document without a date is outside any date range)."""

    doc_ids: frozenset[str] = frozenset()
    date_from: str = ""
    date_to: str = ""
    doc_type: str = ""

    @classmethod
    def parse(cls, data: Any) -> Scope | None:
        """A scope from the page's ``{"docs": [...], "from": "2026-01-01", "to": "", "type": "报告"}``;
        None when it keeps everything."""
        if not isinstance(data, dict):
            return None
        docs = frozenset(str(d) for d in (data.get("docs") or []) if d)
        lo, hi = (str(data.get(k) or "").strip()[:10] for k in ("from", "to"))
        if lo and hi and lo > hi:
            lo, hi = hi, lo
        scope = cls(docs, lo, hi, str(data.get("type") or "").strip()[:20])
        return scope if scope != cls() else None

    def filters(self) -> dict[str, Any]:
        wanted = {"since": self.date_from, "until": self.date_to, "doc_type": self.doc_type,
                  "doc_ids": sorted(self.doc_ids)}
        return {key: value for key, value in wanted.items() if value}

    def label(self) -> str:
        parts = []
        if self.doc_ids:
            parts.append(f"{len(self.doc_ids)} 篇所选文档")
        if self.doc_type:
            parts.append(f"类型为「{self.doc_type}」的文档")
        if self.date_from or self.date_to:
            parts.append(f"发布日期 {self.date_from or '最早'} 至 {self.date_to or '最新'}（日期未知的文档除外）")
        return "；".join(parts)


def answer_question(kb, question: str, previous: str | None = None, top_k: int = TOP_K,
                    scope: Scope | None = None) -> tuple[Answer, str]:
    """Resolve a follow-up against ``previous`` (the prior question), then answer it within
    ``scope``. Returns the answer and the question as typed. Raises :class:`RagError` for bad input."""
    asked = question if isinstance(question, str) else ""
    rewrite = rewrite_followup(asked, previous or None)
    return kb.answer(rewrite.question, top_k=int(top_k), filters=scope.filters() if scope else None), asked


def answer_json(answer: Answer, asked: str) -> dict:
    """The ``ask`` endpoint's JSON: :meth:`Answer.to_dict` plus the question as typed."""
    out = answer.to_dict()
    out["asked"] = asked
    return out


def doc_texts_for(kb, answer: Answer) -> dict[str, str]:
    texts: dict[str, str] = {}
    for p in answer.passages:
        if p.doc_id not in texts:
            try:
                texts[p.doc_id] = kb.document(p.doc_id).text
            except RagError:
                texts[p.doc_id] = ""
    return texts


def chat_reply(kb, data: dict, written: WrittenJobs | None = None) -> dict:
    """One chat turn for the page: ``{"question", "previous", "top_k", "scope", "history"}`` in;
    the reply's HTML, the answer's JSON (kept by the browser for feedback) and the question as
    answered out. With ``written`` (an LLM endpoint is configured), a written answer is started
    and ``written`` says which job to follow; the extracted answer does not wait for it.
    Errors come back as a Chinese message, never as an exception."""
    data = data if isinstance(data, dict) else {}
    question = str(data.get("question") or "")
    try:
        top_k = int(data.get("top_k") or TOP_K)
        scope = Scope.parse(data.get("scope"))
        answer, asked = answer_question(kb, question, str(data.get("previous") or ""), top_k, scope)
    except (RagError, ValueError) as exc:
        return {"ok": False, "html": render_error(error_text(exc))}
    except Exception as exc:  # the page never breaks on a bad question or a broken index
        log.exception("answering %r failed", question)
        return {"ok": False, "html": render_error(error_text(exc))}
    html = render_answer(answer, doc_texts_for(kb, answer), asked=asked, scope=scope.label() if scope else None)
    job = written.start(answer, data.get("history")) if written is not None else None
    return {"ok": True, "html": html, "question": answer.question, "answer": answer_json(answer, asked), "written": job}


# -- documents -------------------------------------------------------------------------
def _source_file(source: str | None) -> Path | None:
    if not source or source.startswith("document:"):
        return None
    path = Path(source)
    return path if path.is_file() else None


def document_rows(kb) -> list[dict]:
    """The document list for the page: id, title, date, chunks, status, file name, added."""
    rows = []
    for d in kb.documents():
        source = d.get("source") or ""
        on_disk = _source_file(source) is not None
        rows.append({
            "id": d.get("doc_id"),
            "title": d.get("title") or "（无标题）",
            "type": doc_type(d.get("title") or "") or "",
            "published": d.get("published") or "",
            "chunks": d.get("chunks", 0),
            "status": "已索引" if on_disk or source.startswith("document:") or not source else "已索引（源文件已移走）",
            "file": basename(source),
            "added": (d.get("added_at") or "").replace("T", " "),
            "original": on_disk,
        })
    return rows


def preview(kb, doc_id: Any) -> str:
    try:
        return render_document(kb.document(str(doc_id or "")))
    except RagError as exc:
        return render_error(error_text(exc))


def original(kb, doc_id: Any) -> dict:
    """The original file of a document for the browser to download (or, for a PDF, to open):
    ``{"name", "mime", "data"}`` with the bytes in base64, or ``{"error"}`` in Chinese."""
    try:
        doc = kb.document(str(doc_id or ""))
    except RagError as exc:
        return {"error": error_text(exc)}
    path = _source_file(doc.source)
    if path is None:
        return {"error": "原文件已不在原来的位置，无法下载"}
    if path.stat().st_size > MAX_ORIGINAL_BYTES:
        return {"error": f"原文件超过 {MAX_ORIGINAL_BYTES // 1024 // 1024} MB，请直接从服务器获取：{path.name}"}
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"name": path.name, "mime": mime, "data": base64.b64encode(path.read_bytes()).decode("ascii")}


def delete_documents(kb, ids: Iterable[str], uploads: Path) -> tuple[list[str], list[str]]:
    """Remove documents (one commit); originals kept in ``uploads`` go too. Returns the titles
    removed and the ids that were not found (already gone: another session deleted them)."""
    found, missing = {}, []
    for doc_id in dict.fromkeys(str(i) for i in ids if i):
        try:
            found[doc_id] = kb.document(doc_id)
        except RagError:
            missing.append(doc_id)
    if found:
        kb.remove(list(found))
    for doc in found.values():
        source = _source_file(doc.source)
        if source is not None and source.parent.resolve() == uploads.resolve():
            source.unlink(missing_ok=True)
    return [d.title or "（无标题）" for d in found.values()], missing
