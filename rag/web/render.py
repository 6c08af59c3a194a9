"""The web app: chat with cited, highlighted sources and a knowledge base managed in the browser.

``build_app(kb)`` returns the Gradio Blocks; ``serve(index_dir, host, port)`` opens the index
and serves it (``rag serve`` and ``python app.py`` both end up here). One KnowledgeBase is
shared by every browser session.

Everything an article holds is untrusted: every piece of text is escaped before it is
wrapped in this module's own markup (see :func:`escape_text`), so HTML, ``<script>`` and
Markdown links in a document are shown as text, never run or fetched. Nothing leaves the
machine: no share link, no analytics (``rag/__init__`` turns them off before gradio is
imported) and a theme that uses fonts installed on the system instead of Google Fonts.

The ask endpoint, ``api_name="ask"``, returns :meth:`Answer.to_dict` as JSON; see README.
"""

from __future__ import annotations

import logging
import os
import shutil
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from .conversation import rewrite_followup
from .errors import RagError
from .types import Answer, Passage

log = logging.getLogger(__name__)

SUPPORTED_UPLOADS = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
UPLOADS = "uploads"  # folder inside the index dir that keeps uploaded files
CONTEXT_CHARS = 400  # characters of the article shown around a passage when it is expanded
DEFAULT_TOP_K = 4
SEED_QUESTION = "晋中有几家省级博士创新站"
# Drawn from the sample article, data/articles/jinzhong_education_science_talent.txt.
EXAMPLE_QUESTIONS = (
    SEED_QUESTION,
    "晋中获批设立了几家国家博士后科研站",
    "晋中与多少所高校开展合作",
    "市科技局局长是谁",
    "晋中举办博士大讲堂多少场",
)
FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC",
         "Microsoft YaHei", "Hiragino Sans GB", "Helvetica Neue", "Arial", "sans-serif")
MONO_FONTS = ("Noto Sans Mono CJK SC", "WenQuanYi Micro Hei Mono", "DejaVu Sans Mono", "Menlo", "Consolas",
              "monospace")

# Every ASCII punctuation mark becomes a numeric character reference: a superset of
# html.escape (< > & " '), which also covers Markdown ([ ] ( ) * _ ` # ! | ~ \\), LaTeX ($) and template syntax ({ }),
# so neither the Markdown renderer nor the HTML sanitizer ever sees syntax from a document.
_ENTITIES = {ord(c): f"&#{ord(c)};" for c in string.punctuation}


def escape_text(text: str, paragraphs: bool = False) -> str:
    """``text`` as inert HTML: markup and Markdown are shown, never interpreted. Line breaks
    become <br>; blank lines collapse into one break, or into one blank line with ``paragraphs``."""
    lines = str(text if text is not None else "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    joined = "<br>".join(line.replace("\t", " ").translate(_ENTITIES) for line in lines)
    limit = "<br><br>" if paragraphs else "<br>"
    while limit + "<br>" in joined:
        joined = joined.replace(limit + "<br>", limit)
    return joined


def _esc(text: Any) -> str:
    """Escape one piece of text for this module's markup (no line breaks expected)."""
    return str("" if text is None else text).replace("\r", " ").replace("\n", " ").translate(_ENTITIES)


def _highlight(text: str, layers: list[tuple[int, int, str, str]], lo: int = 0, hi: int | None = None) -> str:
    """``text[lo:hi]`` escaped, with nested highlight layers (start, end, open tag, close tag),
    outermost first; each layer is clamped inside the one around it."""
    hi = len(text) if hi is None else hi
    if not layers:
        return escape_text(text[lo:hi])
    start, end, open_tag, close_tag = layers[0]
    start = max(lo, min(start, hi))
    end = max(start, min(end, hi))
    if start == end:
        return _highlight(text, layers[1:], lo, hi)
    return (escape_text(text[lo:start]) + open_tag + _highlight(text, layers[1:], start, end) + close_tag
            + escape_text(text[end:hi]))


def _basename(source: str) -> str:
    if not source or source.startswith("document:"):
        return source or "—"
    return Path(source).name or source


# -- rendering answers -------------------------------------------------------------------
def _answer_layers(answer: Answer, index: int, shift: int = 0) -> list[tuple[int, int, str, str]]:
    """Sentence and span highlights for passage ``index``, moved by ``shift`` characters."""
    span = answer.span
    if span is None or span.passage != index:
        return []
    layers = []
    if 0 <= span.sentence_start < span.sentence_end:
        layers.append((span.sentence_start + shift, span.sentence_end + shift, '<span class="rag-sentence">', "</span>"))
    layers.append((span.start + shift, span.end + shift, '<mark class="rag-span">', "</mark>"))
    return layers


def _context_html(passage: Passage, doc_text: str | None, layers: list[tuple[int, int, str, str]]) -> str:
    """The article around ``passage`` with the passage (and answer, if any) highlighted."""
    if not doc_text or doc_text[passage.start:passage.end] != passage.text:
        return '<span class="rag-muted">（原文不可用）</span>'
    lo = max(0, passage.start - CONTEXT_CHARS)
    hi = min(len(doc_text), passage.end + CONTEXT_CHARS)
    shifted = [(s + passage.start, e + passage.start, o, c) for s, e, o, c in layers]
    body = _highlight(doc_text, [(passage.start, passage.end, '<span class="rag-passage">', "</span>"), *shifted], lo, hi)
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(doc_text) else "")


def _source_card(answer: Answer, index: int, doc_text: str | None, closest: bool) -> str:
    p = answer.passages[index]
    layers = _answer_layers(answer, index)
    is_answer = answer.span is not None and answer.span.passage == index
    classes = "rag-source" + (" rag-source-answer" if is_answer else "") + (" rag-source-closest" if closest else "")
    badge = '<span class="rag-badge">答案出处</span>' if is_answer else ""
    meta = " · ".join([
        _esc(p.published or "日期未知"),
        f'<span class="rag-file" title="{_esc(p.source)}">{_esc(_basename(p.source))}</span>',
        f"相关度 {p.score:.3f}",
    ])
    return (
        f'<details class="{classes}" data-rank="{index + 1}"><summary>'
        f'<span class="rag-card-head"><span class="rag-rank">{index + 1}</span>'
        f'<span class="rag-title">{_esc(p.title or "（无标题）")}</span>{badge}</span>'
        f'<span class="rag-meta">{meta}</span>'
        f'<span class="rag-snippet">{_highlight(p.text, layers)}</span>'
        f'<span class="rag-expand">展开上下文</span>'
        f"</summary>"
        f'<div class="rag-context"><span class="rag-context-label">原文上下文</span>'
        f"{_context_html(p, doc_text, layers)}</div></details>"
    )


def render_answer(answer: Answer, doc_texts: dict[str, str] | None = None, asked: str | None = None) -> str:
    """The assistant's chat message for ``answer``: short answer in bold, evidence with the
    span marked, then one expandable card per passage. All text is escaped."""
    doc_texts = doc_texts or {}
    parts = ['<div class="rag-reply">']
    if asked and asked != answer.question:
        parts.append(f'<div class="rag-rewrite">结合上文理解为：「{_esc(answer.question)}」</div>')
    if answer.text is not None:
        parts.append(
            f'<div class="rag-answer"><span class="rag-answer-label">答案</span>'
            f'<strong class="rag-answer-text">{_esc(answer.text)}</strong>'
            f'<span class="rag-confidence">置信度 {answer.confidence:.0%}</span></div>'
        )
        if answer.evidence and answer.span is not None:
            s = answer.span
            sentence = answer.passages[s.passage].text[s.sentence_start:s.sentence_end]
            layers = [(s.start - s.sentence_start, s.end - s.sentence_start, '<mark class="rag-span">', "</mark>")]
            if sentence != answer.evidence:  # offsets do not line up: show the evidence plainly
                layers, sentence = [], answer.evidence
            parts.append(f'<div class="rag-evidence"><span class="rag-evidence-label">依据</span>'
                         f"{_highlight(sentence, layers)}</div>")
        heading = "来源"
    elif answer.passages:
        parts.append('<div class="rag-notfound">未在知识库中找到这个问题的答案。'
                     "下面是最接近的段落，仅供参考，不是答案。</div>")
        heading = "最接近的段落"
    else:
        parts.append('<div class="rag-notfound">知识库中没有找到相关内容。'
                     "如果知识库还是空的，请先在「知识库」页上传文档。</div>")
        heading = ""
    if answer.passages:
        parts.append(f'<div class="rag-sources-head">{heading}<span class="rag-muted">'
                     f"（{len(answer.passages)} 段，点击展开原文上下文）</span></div>")
        for i, p in enumerate(answer.passages):
            parts.append(_source_card(answer, i, doc_texts.get(p.doc_id), closest=answer.text is None))
    parts.append("</div>")
    return "".join(parts)


def render_error(message: str) -> str:
    return f'<div class="rag-reply"><div class="rag-error">⚠ {_esc(message)}</div></div>'


def render_user(message: str) -> str:
    """The user's own message, escaped like everything else (it is shown through Markdown)."""
    return escape_text(message)


def answer_json(answer: Answer, asked: str) -> dict:
    """The ask endpoint's JSON: :meth:`Answer.to_dict` plus the question as typed."""
    out = answer.to_dict()
    out["asked"] = asked
    return out


# -- the app -----------------------------------------------------------------------------
@dataclass
class _AppState:
    """What the shared app remembers across sessions: uploads that could not be read."""

    kb: Any
    failed: dict[str, str] = field(default_factory=dict)  # file name -> reason
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uploads(self) -> Path:
        return Path(self.kb.folder) / UPLOADS


def _safe_name(name: str) -> str:
    name = Path(name.replace("\\", "/")).name.strip().lstrip(".~$")
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"/\\|?*')
    return name or "upload.txt"


def theme() -> gr.themes.Base:
    """Gradio's default look with system fonts only (the stock theme loads Google Fonts)."""
    return gr.themes.Default(
        primary_hue=gr.themes.colors.blue,
        secondary_hue=gr.themes.colors.sky,
        neutral_hue=gr.themes.colors.slate,
        font=list(FONTS),
        font_mono=list(MONO_FONTS),
        radius_size=gr.themes.sizes.radius_md,
    ).set(
        body_background_fill="#f5f7fb",
        block_shadow="0 1px 2px rgba(15, 23, 42, 0.06)",
        button_primary_background_fill="#1d4ed8",
        button_primary_background_fill_hover="#1e40af",
    )


CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto !important; }
#rag-header { display: flex; align-items: flex-end; justify-content: space-between; gap: 16px;
  padding: 18px 4px 6px; flex-wrap: wrap; }
#rag-header h1 { font-size: 1.55rem; margin: 0; font-weight: 700; color: #0f172a; letter-spacing: 0.02em; }
#rag-header p { margin: 4px 0 0; color: #475569; font-size: 0.92rem; }
.rag-stats { display: flex; gap: 8px; flex-wrap: wrap; }
.rag-stat { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 6px 12px;
  font-size: 0.82rem; color: #475569; }
.rag-stat b { color: #0f172a; font-size: 1rem; margin-right: 4px; }
.rag-user { white-space: normal; }
.rag-reply { line-height: 1.7; }
.rag-rewrite { font-size: 0.82rem; color: #64748b; margin-bottom: 6px; }
.rag-answer { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; margin-bottom: 6px; }
.rag-answer-label, .rag-evidence-label, .rag-context-label { font-size: 0.75rem; color: #fff; background: #1d4ed8;
  border-radius: 4px; padding: 1px 7px; margin-right: 8px; white-space: nowrap; }
.rag-evidence-label { background: #64748b; }
.rag-context-label { background: #94a3b8; display: inline-block; margin-bottom: 4px; }
.rag-answer-text { font-size: 1.35rem; color: #0f172a; }
.rag-confidence { font-size: 0.78rem; color: #64748b; }
.rag-evidence { background: #f8fafc; border-left: 3px solid #1d4ed8; padding: 8px 12px; border-radius: 4px;
  margin: 6px 0 10px; color: #1e293b; }
.rag-notfound { background: #fff7ed; border: 1px solid #fed7aa; color: #9a3412; padding: 8px 12px;
  border-radius: 6px; margin-bottom: 8px; }
.rag-error { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; padding: 8px 12px; border-radius: 6px; }
.rag-sources-head { font-weight: 600; color: #334155; margin: 10px 0 6px; font-size: 0.92rem; }
.rag-muted { color: #94a3b8; font-weight: 400; font-size: 0.8rem; margin-left: 4px; }
details.rag-source { border: 1px solid #e2e8f0; border-radius: 8px; background: #fff; margin: 0 0 8px;
  padding: 0; overflow: hidden; }
details.rag-source-answer { border-color: #93c5fd; box-shadow: 0 0 0 1px #dbeafe; }
details.rag-source-closest { border-style: dashed; }
details.rag-source > summary { list-style: none; cursor: pointer; padding: 10px 12px; display: block; }
details.rag-source > summary::-webkit-details-marker { display: none; }
details.rag-source > summary:hover { background: #f8fafc; }
.rag-card-head { display: flex; align-items: center; gap: 8px; }
.rag-rank { display: inline-flex; width: 20px; height: 20px; border-radius: 50%; background: #e2e8f0; color: #334155;
  font-size: 0.72rem; align-items: center; justify-content: center; flex: none; }
.rag-source-answer .rag-rank { background: #1d4ed8; color: #fff; }
.rag-title { font-weight: 600; color: #0f172a; }
.rag-badge { font-size: 0.7rem; background: #dbeafe; color: #1e40af; border-radius: 4px; padding: 0 6px; }
.rag-meta { display: block; font-size: 0.78rem; color: #64748b; margin: 2px 0 4px 28px; }
.rag-snippet { display: block; color: #334155; font-size: 0.9rem; margin-left: 28px; }
details.rag-source:not(.rag-source-answer):not([open]) .rag-snippet { display: -webkit-box; -webkit-line-clamp: 3;
  -webkit-box-orient: vertical; overflow: hidden; }
.rag-expand { display: block; font-size: 0.75rem; color: #1d4ed8; margin: 4px 0 0 28px; }
details[open] .rag-expand { display: none; }
.rag-context { border-top: 1px solid #e2e8f0; background: #f8fafc; padding: 10px 12px 10px 40px; font-size: 0.88rem;
  color: #475569; max-height: 320px; overflow-y: auto; }
.rag-passage { background: #eff6ff; color: #1e293b; }
.rag-sentence { background: #fef9c3; border-bottom: 2px solid #facc15; }
mark.rag-span { background: #fde047; color: #0f172a; font-weight: 700; padding: 0 2px; border-radius: 2px; }
#rag-chat .message-wrap .message { font-size: 0.95rem; }
#rag-doc-preview { max-height: 420px; overflow-y: auto; background: #fff; border: 1px solid #e2e8f0;
  border-radius: 8px; padding: 12px 16px; line-height: 1.8; color: #1e293b; }
#rag-doc-preview h3 { margin: 0 0 4px; font-size: 1.05rem; }
.rag-upload-msg ul { margin: 4px 0 0 18px; padding: 0; }
#rag-docs .table-wrap, #rag-docs .table-wrap * { font-family: var(--font) !important; font-size: 0.86rem; }
.rag-ok { color: #166534; } .rag-warn { color: #9a3412; }
"""


def build_app(kb) -> gr.Blocks:
    """The Gradio app over one shared :class:`~rag.knowledge_base.KnowledgeBase`."""
    state = _AppState(kb)

    # -- data helpers ------------------------------------------------------------------
    def doc_texts_for(answer: Answer) -> dict[str, str]:
        texts: dict[str, str] = {}
        for p in answer.passages:
            if p.doc_id not in texts:
                try:
                    texts[p.doc_id] = kb.document(p.doc_id).text
                except RagError:
                    texts[p.doc_id] = ""
        return texts

    def stats_html() -> str:
        try:
            s = kb.stats()
        except RagError as exc:
            return f'<div class="rag-stats"><span class="rag-stat">{_esc(exc)}</span></div>'
        model = str(s.get("model", "")).replace("default:", "")
        return (
            '<div class="rag-stats">'
            f'<span class="rag-stat" id="rag-stat-docs"><b>{s.get("documents", 0)}</b>篇文档</span>'
            f'<span class="rag-stat" id="rag-stat-chunks"><b>{s.get("chunks", 0)}</b>个段落</span>'
            f'<span class="rag-stat">模型 <b style="font-size:0.85rem">{_esc(model)}</b></span>'
            "</div>"
        )

    def header_html() -> str:
        return (
            '<div id="rag-header"><div><h1>政策文件问答</h1>'
            "<p>用中文提问，答案附原文出处：文章标题、日期、来源文件和原句。全部在本机运行，不联网。</p></div>"
            f"{stats_html()}</div>"
        )

    headers = ["标题", "发布日期", "段落数", "状态", "来源文件", "添加时间", "ID"]

    def doc_rows() -> list[list[Any]]:
        rows: list[list[Any]] = []
        for d in kb.documents():
            source = d.get("source") or ""
            status = "已索引"
            if source and not source.startswith("document:") and not Path(source).exists():
                status = "已索引（源文件已移走）"
            rows.append([d.get("title") or "（无标题）", d.get("published") or "—", d.get("chunks", 0), status,
                         _basename(source), (d.get("added_at") or "").replace("T", " "), d.get("doc_id")])
        with state.lock:
            for name, reason in state.failed.items():
                rows.append([name, "—", 0, f"读取失败：{reason}", name, "", ""])
        return rows

    def doc_choices() -> list[tuple[str, str]]:
        return [(f"{d.get('title') or '（无标题）'}（{_basename(d.get('source') or '')}）", d["doc_id"])
                for d in kb.documents()]

    def refresh_kb():
        choices = doc_choices()
        return (
            header_html(),
            gr.update(value=doc_rows()),
            gr.update(choices=choices, value=None),
        )

    # -- chat --------------------------------------------------------------------------
    def respond(message: str, history: list[dict], last_question: str | None, top_k: float):
        message = (message or "").strip()
        history = list(history or [])
        if not message:
            yield gr.update(), history, history, last_question
            return
        history.append({"role": "user", "content": render_user(message)})
        pending = history + [{"role": "assistant", "content": '<div class="rag-reply rag-muted">正在检索…</div>'}]
        yield "", pending, history, last_question
        rewrite = rewrite_followup(message, last_question)
        try:
            answer = kb.answer(rewrite.question, top_k=int(top_k))
            reply = render_answer(answer, doc_texts_for(answer), asked=message)
            last_question = answer.question
        except RagError as exc:
            reply = render_error(str(exc))
        except Exception as exc:  # the UI never crashes on a bad question or a broken index
            log.exception("answering %r failed", message)
            reply = render_error(f"出错了：{type(exc).__name__}: {exc}")
        history.append({"role": "assistant", "content": reply})
        yield "", history, history, last_question

    def clear_chat():
        return [], [], None, ""

    def pick_example(evt: gr.SelectData) -> str:
        value = evt.value
        return value.get("text", "") if isinstance(value, dict) else str(value or "")

    # -- knowledge base ----------------------------------------------------------------
    def upload(files, progress=gr.Progress()):  # noqa: B008 - gradio's injection idiom
        paths = [Path(f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", f)) for f in (files or [])]
        if not paths:
            msg = '<div class="rag-upload-msg rag-warn">请先选择要上传的文件（支持 txt、md、html、pdf、docx）。</div>'
            return (msg, *refresh_kb(), None)
        state.uploads.mkdir(parents=True, exist_ok=True)
        done: list[str] = []
        problems: list[str] = []
        progress(0, desc="准备索引…")
        for i, src in enumerate(paths):
            name = _safe_name(src.name)
            progress(i / len(paths), desc=f"正在索引 {name}（{i + 1}/{len(paths)}）")
            if Path(name).suffix.lower() not in SUPPORTED_UPLOADS:
                reason = f"不支持的文件类型 {Path(name).suffix or '（无扩展名）'}；支持 txt、md、html、pdf、docx"
                problems.append(f"{_esc(name)}：{_esc(reason)}")
                with state.lock:
                    state.failed[name] = reason
                continue
            dest = state.uploads / name
            backup = None
            if dest.exists():
                backup = dest.with_name(f".{name}.previous")
                shutil.copy2(dest, backup)
            try:
                shutil.copyfile(src, dest)
                report = kb.add([dest])
            except (RagError, OSError) as exc:
                report = None
                reason = str(exc)
            else:
                reason = ""
                if report.failed:
                    reason = "; ".join(r for _, r in report.failed)
            kept = report is not None and not report.failed and not report.duplicates
            if kept:
                with state.lock:
                    state.failed.pop(name, None)
                if report.added:
                    done.append(f"{_esc(name)}：已添加")
                elif report.updated:
                    done.append(f"{_esc(name)}：已更新为新版本")
                else:
                    done.append(f"{_esc(name)}：内容未变，无需重新索引")
            else:
                if report is not None and report.duplicates:
                    twin = report.duplicates[0][1]
                    reason = f"与已有文档「{_basename(twin)}」内容相同，未重复添加"
                    problems.append(f"{_esc(name)}：{_esc(reason)}")
                else:
                    for prefix in (str(dest.resolve()), str(dest)):
                        reason = reason.replace(f"{prefix}: ", "").replace(prefix, name)
                    reason = reason or "无法读取"
                    problems.append(f"{_esc(name)}：无法读取（{_esc(reason)}）")
                    with state.lock:
                        state.failed[name] = reason
                if backup is not None:
                    os.replace(backup, dest)
                    backup = None
                else:
                    dest.unlink(missing_ok=True)
            if backup is not None:
                backup.unlink(missing_ok=True)
        progress(1.0, desc="完成")
        parts = ['<div class="rag-upload-msg">']
        if done:
            parts.append(f'<div class="rag-ok">✓ 已处理 {len(done)} 个文件：</div><ul>'
                         + "".join(f"<li>{d}</li>" for d in done) + "</ul>")
        if problems:
            parts.append(f'<div class="rag-warn">✗ {len(problems)} 个文件未添加：</div><ul>'
                         + "".join(f"<li>{p}</li>" for p in problems) + "</ul>")
        parts.append("</div>")
        return ("".join(parts), *refresh_kb(), None)

    def delete(doc_id: str | None):
        if not doc_id:
            return ('<div class="rag-upload-msg rag-warn">请先在列表中选择要删除的文档。</div>', *refresh_kb(), "")
        try:
            doc = kb.document(doc_id)
            kb.remove([doc_id])
        except RagError as exc:
            return (f'<div class="rag-upload-msg rag-warn">删除失败：{_esc(exc)}</div>', *refresh_kb(), "")
        source = Path(doc.source) if doc.source and not doc.source.startswith("document:") else None
        if source is not None and source.parent.resolve() == state.uploads.resolve():
            source.unlink(missing_ok=True)
        return (f'<div class="rag-upload-msg rag-ok">✓ 已删除「{_esc(doc.title)}」。</div>', *refresh_kb(), "")

    def preview(doc_id: str | None) -> str:
        if not doc_id:
            return '<div class="rag-muted">在上方表格中点击一篇文档，或在下拉框中选择，即可预览全文。</div>'
        try:
            doc = kb.document(doc_id)
        except RagError as exc:
            return f'<div class="rag-warn">{_esc(exc)}</div>'
        return (f'<div id="rag-doc-preview"><h3>{_esc(doc.title)}</h3>'
                f'<div class="rag-meta" style="margin-left:0">{_esc(doc.published or "日期未知")} · '
                f'<span title="{_esc(doc.source)}">{_esc(_basename(doc.source))}</span> · {len(doc.text)} 字</div>'
                f"<div>{escape_text(doc.text, paragraphs=True)}</div></div>")

    def select_row(evt: gr.SelectData):
        row = evt.row_value or []
        doc_id = row[-1] if row else None
        return gr.update(value=doc_id or None)

    # -- the API -----------------------------------------------------------------------
    def ask(question: str, top_k: int = 5, previous: str = "") -> dict:
        """Answer a question from the knowledge base.

        Returns JSON: answer (None when nothing relevant was found), evidence, confidence,
        question (as answered, after resolving a follow-up against ``previous``), asked,
        answer_span, and passages with title, source, published, score, text, start, end.
        """
        try:
            rewrite = rewrite_followup(question or "", previous or None)
            return answer_json(kb.answer(rewrite.question, top_k=int(top_k)), question)
        except RagError as exc:
            raise gr.Error(str(exc)) from None

    # -- layout ------------------------------------------------------------------------
    with gr.Blocks(title="政策文件问答", analytics_enabled=False) as app:
        header = gr.HTML(header_html(), elem_id="rag-header-wrap", js_on_load=None)
        history = gr.State([])
        last_question = gr.State(None)
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                chatbot = gr.Chatbot(
                    value=[],
                    elem_id="rag-chat",
                    label="对话",
                    show_label=False,
                    height=600,
                    layout="panel",
                    sanitize_html=True,
                    render_markdown=True,
                    latex_delimiters=[],
                    feedback_options=None,
                    allow_file_downloads=False,
                    buttons=[],
                    placeholder="<b>向知识库提问</b><br>例如「晋中有几家省级博士创新站」，追问时可以省略主语，"
                                "如「那国家博士后科研站呢？」",
                    examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                )
                with gr.Row(equal_height=True):
                    question = gr.Textbox(
                        placeholder="输入问题，按回车提问，例如：晋中有几家省级博士创新站",
                        show_label=False, lines=1, max_lines=4, scale=8, elem_id="rag-question", autofocus=True,
                    )
                    ask_btn = gr.Button("提问", variant="primary", scale=1, min_width=90, elem_id="rag-ask")
                    clear_btn = gr.Button("清空对话", variant="secondary", scale=1, min_width=90, elem_id="rag-clear")
                with gr.Accordion("设置", open=False):
                    top_k = gr.Slider(1, 10, value=DEFAULT_TOP_K, step=1, label="显示的来源段落数")
            with gr.Tab("知识库", id="kb"):
                with gr.Row():
                    with gr.Column(scale=2):
                        files = gr.File(
                            label="上传文档（txt、md、html、pdf、docx，可多选）",
                            file_count="multiple",
                            file_types=list(SUPPORTED_UPLOADS),
                            elem_id="rag-upload",
                        )
                        add_btn = gr.Button("添加到知识库", variant="primary", elem_id="rag-add")
                        upload_msg = gr.HTML("", elem_id="rag-upload-msg", js_on_load=None)
                    with gr.Column(scale=3):
                        doc_pick = gr.Dropdown(choices=[], label="选择文档（预览或删除）", elem_id="rag-doc-pick",
                                               interactive=True)
                        with gr.Row():
                            delete_btn = gr.Button("删除所选文档", variant="stop", elem_id="rag-delete")
                            refresh_btn = gr.Button("刷新", variant="secondary", elem_id="rag-refresh")
                table = gr.Dataframe(
                    value=None,
                    headers=headers,
                    datatype=["str", "str", "number", "str", "str", "str", "str"],
                    interactive=False,
                    wrap=True,
                    label="文档列表",
                    elem_id="rag-docs",
                    column_widths=["30%", "12%", "7%", "15%", "16%", "12%", "8%"],
                )
                doc_view = gr.HTML(preview(None), elem_id="rag-doc-view", js_on_load=None)

        # -- events --------------------------------------------------------------------
        chat_outputs = [question, chatbot, history, last_question]
        chat_inputs = [question, history, last_question, top_k]
        question.submit(respond, chat_inputs, chat_outputs, api_visibility="private")
        ask_btn.click(respond, chat_inputs, chat_outputs, api_visibility="private")
        chatbot.example_select(pick_example, None, question, api_visibility="private").then(
            respond, chat_inputs, chat_outputs, api_visibility="private")
        clear_btn.click(clear_chat, None, [chatbot, history, last_question, question], api_visibility="private")
        chatbot.clear(clear_chat, None, [chatbot, history, last_question, question], api_visibility="private")

        kb_outputs = [header, table, doc_pick]
        add_btn.click(upload, [files], [upload_msg, *kb_outputs, files], api_visibility="private",
                      show_progress_on=[upload_msg])
        delete_btn.click(delete, [doc_pick], [upload_msg, *kb_outputs, doc_view], api_visibility="private",
                         show_progress_on=[upload_msg])
        refresh_btn.click(refresh_kb, None, kb_outputs, api_visibility="private", show_progress="hidden")
        table.select(select_row, None, doc_pick, api_visibility="private")
        doc_pick.change(preview, [doc_pick], doc_view, api_visibility="private", show_progress="hidden")
        app.load(refresh_kb, None, kb_outputs, api_visibility="private", show_progress="hidden")

        gr.api(ask, api_name="ask", concurrency_limit=8)
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False):
    """Serve ``app`` locally: no share link, system fonts, queue shared by all sessions.
    Returns the local URL (when ``block`` is False the call returns at once)."""
    app.queue(default_concurrency_limit=8)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=True,
        theme=theme(),
        css=CSS,
        footer_links=["api"],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        max_file_size="100mb",
    )
    return app.local_url


def serve(index_dir: str | os.PathLike = "index", host: str = "127.0.0.1", port: int = 7860, *,
          seed: str | os.PathLike | None = None, block: bool = True) -> str:
    """Open (or create) the index in ``index_dir`` and serve the app on ``host:port``.
    With ``seed``, an index that holds no documents yet is first built from that folder."""
    from .knowledge_base import KnowledgeBase

    kb = KnowledgeBase(index_dir)
    if seed is not None and not kb.documents():
        log.warning("%s holds no documents yet; indexing %s first", index_dir, seed)
        report = kb.add([seed], progress=True)
        for path, reason in report.failed:
            log.warning("skipped %s: %s", path, reason)
    return launch(build_app(kb), host, port, block=block)
