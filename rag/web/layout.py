"""The page: a header, the chat and the knowledge-base panel, and the events between them.

The chat and the document list are ``gr.HTML`` widgets with their own JavaScript
(``static/chat.js``, ``static/docs.js``) that call Python through ``server_functions``.
Gradio's Chatbot was replaced because its queue semantics lose work: a submit while one was
pending was dropped, the box was cleared when the previous answer landed (taking what the
user had typed since), and replies were scrolled to their bottom. The widget's queue
answers every question once, in order, never writes to the box, and scrolls each reply's
top into view.

Reading (asking, listing, previews, originals, feedback) is open to every visitor. Writing
(upload, delete) is a Gradio event that checks :class:`~rag.web.server.Access` on the
server, so calling it through the queue API is refused the same way as in the page.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from .. import feedback as feedback_store
from ..config import TOP_K
from ..errors import RagError
from . import handlers
from .messages import SUPPORTED_LIST, error_text
from .render import esc, render_notice
from .theme import static_text
from .uploads import UPLOADS, ProgressEmbedder, UploadJob
from .written import WrittenJobs

log = logging.getLogger(__name__)

TITLE = "政策文件问答"
SEED_QUESTION = "晋中有几家省级博士创新站"
# Drawn from the sample article, data/articles/jinzhong_education_science_talent.txt.
EXAMPLE_QUESTIONS = (
    SEED_QUESTION,
    "晋中获批设立了几家国家博士后科研站",
    "晋中与多少所高校开展合作",
    "市科技局局长是谁",
    "晋中举办博士大讲堂多少场",
)
DEFAULT_TOP_K = TOP_K  # the CLI's and the API's default too (rag.config)
POLL_SECONDS = 0.4  # how often a running upload reports its progress
FAILED_LOGIN_PAUSE = 1.0  # seconds a wrong admin login waits before it is answered


def _chat_template() -> str:
    examples = "".join(f'<button type="button" class="rag-example">{esc(q)}</button>' for q in EXAMPLE_QUESTIONS)
    top_k = "".join(f'<option value="{k}"{" selected" if k == DEFAULT_TOP_K else ""}>{k}</option>'
                    for k in (3, 4, 5, 8, 10))
    return f"""<div class="rag-chat">
<div class="rag-transcript" role="log" aria-label="对话记录" tabindex="0">
<div class="rag-empty"><b>向知识库提问</b><br>例如「{esc(SEED_QUESTION)}」；追问时可以省略主语，如「那国家博士后科研站呢？」
<div class="rag-examples">{examples}</div></div>
</div>
<div class="rag-bar rag-undo" hidden>已清空对话。<button type="button" class="rag-link">撤销</button></div>
<form class="rag-ask" autocomplete="off">
<label class="rag-sr" for="rag-question">问题</label>
<textarea id="rag-question" rows="1" aria-label="问题" placeholder="输入问题，按回车提问"
title="回车提问，Shift+回车换行"></textarea>
<button type="submit" class="rag-btn rag-btn-primary" id="rag-ask">提问</button>
</form>
<div class="rag-filter-row">
<details class="rag-filter"><summary><span class="rag-filter-summary">查找范围：全部文档</span></summary>
<div class="rag-filter-body">
<div class="rag-filter-row"><label for="rag-date-from">发布日期从</label>
<input class="rag-field" type="date" id="rag-date-from"><label for="rag-date-to">到</label>
<input class="rag-field" type="date" id="rag-date-to">
<label for="rag-doc-type">类型</label><select class="rag-field" id="rag-doc-type"><option value="">全部类型</option></select></div>
<input class="rag-field" type="search" id="rag-filter-search" placeholder="按标题或文件名查找文档" aria-label="查找文档">
<div class="rag-filter-docs" role="group" aria-label="只在这些文档中查找（不选则查找全部）"></div>
<div class="rag-filter-row"><label for="rag-top-k">显示的来源段落数</label>
<select class="rag-field" id="rag-top-k">{top_k}</select>
<button type="button" class="rag-btn rag-btn-small" id="rag-filter-clear">清除筛选</button></div>
</div></details>
<button type="button" class="rag-btn rag-btn-small" id="rag-clear">清空对话</button>
</div>
</div>"""


def _docs_template(writable: bool) -> str:
    delete = '<button type="button" class="rag-btn rag-btn-stop" id="rag-doc-delete">删除所选</button>' if writable else ""
    return f"""<div class="rag-docs">
<h2 class="rag-sr">文档列表</h2>
<div class="rag-docs-tools">
<input class="rag-field" type="search" id="rag-doc-search" placeholder="搜索标题、文件名、日期或状态" aria-label="搜索文档">
<select class="rag-field" id="rag-doc-status" aria-label="按状态筛选">
<option value="">全部状态</option><option value="ok">已索引</option><option value="moved">源文件已移走</option>
<option value="failed">读取失败</option></select>{delete}
</div>
<div class="rag-bar rag-docs-confirm" role="alertdialog" aria-label="确认删除" hidden><span class="rag-confirm-text"></span>
<button type="button" class="rag-btn rag-btn-small rag-btn-stop rag-confirm-yes">确定删除</button>
<button type="button" class="rag-btn rag-btn-small rag-confirm-no">取消</button></div>
<div class="rag-docs-msg" aria-live="polite"></div>
<div class="rag-docs-count"></div>
<div class="rag-docs-list" role="list" aria-label="文档列表"></div>
<div class="rag-docs-preview"><div class="rag-muted">点击文档标题即可预览全文。</div></div>
</div>"""


def header_html(kb) -> str:
    try:
        s = kb.stats()
        model = str(s.get("model", "")).replace("default:", "")
        stats = (f'<span class="rag-stat" id="rag-stat-docs"><b>{s.get("documents", 0)}</b>篇文档</span>'
                 f'<span class="rag-stat" id="rag-stat-chunks"><b>{s.get("chunks", 0)}</b>个段落</span>'
                 f'<span class="rag-stat">模型 <b style="font-size:0.85rem">{esc(model)}</b></span>')
    except RagError as exc:
        stats = f'<span class="rag-stat">{esc(error_text(exc))}</span>'
    return (f'<div id="rag-header"><div><h1>{TITLE}</h1>'
            "<p>用中文提问，答案附原文出处：文章标题、日期、来源文件和原句。全部在本机运行，不联网。</p></div>"
            f'<div class="rag-stats">{stats}</div></div>')


def _docs_value(old: Any, notice: str = "", failed: list[dict] | None = None) -> str:
    """The document widget's next value: a new version (so the page reloads the list), a
    notice, and this session's unreadable files (old ones kept unless dismissed)."""
    try:
        state = json.loads(old) if isinstance(old, str) and old else {}
    except json.JSONDecodeError:
        state = {}
    kept = {f.get("name"): f for f in state.get("failed") or [] if isinstance(f, dict)}
    for f in failed or []:
        kept[f["name"]] = f
    return json.dumps({"v": int(state.get("v") or 0) + 1, "notice": notice, "failed": list(kept.values()),
                       "selected": []}, ensure_ascii=False)


def _reading(kb, folder: Path) -> dict[str, Callable]:
    """The widgets' server functions, by the name their JavaScript calls: open to every visitor.
    Feedback goes to ``folder`` (see :func:`rag.feedback.data_folder`)."""
    written = WrittenJobs(kb.generator)

    def ask(data: dict) -> dict:
        return handlers.chat_reply(kb, data, written)

    def written_poll(data: dict) -> dict:
        return written.poll(data)

    def written_stop(data: dict) -> dict:
        return written.stop(data)

    def documents(_: Any = None) -> list[dict]:
        try:
            return handlers.document_rows(kb)
        except RagError as exc:
            log.warning("listing documents failed: %s", exc)
            return []

    def preview(doc_id: Any) -> str:
        return handlers.preview(kb, doc_id)

    def original(doc_id: Any) -> dict:
        return handlers.original(kb, doc_id)

    def feedback(data: dict) -> dict:
        data = data if isinstance(data, dict) else {}
        try:
            line = feedback_store.record(str(data.get("turn") or ""), str(data.get("vote") or ""), data.get("answer") or {})
            feedback_store.append(folder, line)
        except (ValueError, OSError) as exc:
            log.warning("feedback not saved: %s", exc)
            return {"ok": False}
        return {"ok": True}

    return {fn.__name__: fn for fn in (ask, written_poll, written_stop, documents, preview, original, feedback)}


def _writing(kb, access, folder: Path) -> dict[str, Callable]:
    """The events that change the knowledge base; each checks ``access`` on the server.
    Uploaded originals are kept in ``folder``/uploads."""
    uploads = folder / UPLOADS
    ProgressEmbedder.install(kb)
    jobs: dict[str, UploadJob] = {}
    jobs_lock = threading.Lock()

    def upload(files, docs_value, is_admin: bool, request: gr.Request):
        keep = gr.update()
        paths = [Path(f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", f)) for f in (files or [])]
        refused = access.refusal(is_admin)
        if refused or not paths:
            text = refused or f"请先选择要上传的文件（支持 {SUPPORTED_LIST}）。"
            yield render_notice("warn", [], text), gr.update(visible=False), gr.update(interactive=True), keep, keep, keep
            return
        job = UploadJob(paths)
        with jobs_lock:
            jobs[request.session_hash] = job
        worker = threading.Thread(target=job.run, args=(kb, uploads), name="rag-upload", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                yield job.progress_html(), gr.update(visible=True), gr.update(interactive=False), keep, keep, keep
                worker.join(POLL_SECONDS)
        finally:
            with jobs_lock:
                jobs.pop(request.session_hash, None)
        yield (job.report_html(), gr.update(visible=False), gr.update(interactive=True), None,
               _docs_value(docs_value, failed=job.failures()), header_html(kb))

    def cancel_upload(request: gr.Request) -> None:
        with jobs_lock:
            job = jobs.get(request.session_hash)
        if job is not None:
            job.cancel()

    def remove_selected(docs_value, is_admin: bool):
        refused = access.refusal(is_admin)
        try:
            ids = json.loads(docs_value or "{}").get("selected") or []
        except (json.JSONDecodeError, AttributeError):
            ids = []
        if refused:
            return _docs_value(docs_value, render_notice("warn", [], refused)), gr.update()
        if not ids:
            return _docs_value(docs_value, render_notice("warn", [], "请先勾选要删除的文档。")), gr.update()
        try:
            titles, missing = handlers.delete_documents(kb, ids, uploads)
        except RagError as exc:
            notice = render_notice("warn", [], f"删除失败：{error_text(exc)}")
        else:
            lines = [f"「{t}」" for t in titles] + ([f"{len(missing)} 篇已被删除（可能是在别的页面）"] if missing else [])
            notice = render_notice("ok", lines, f"✓ 已删除 {len(titles)} 篇文档")
        return _docs_value(docs_value, notice), header_html(kb)

    def login(user: str, password: str):
        if access.check(user or "", password or ""):
            return True, render_notice("ok", [], "✓ 已以管理员身份登录：可以上传和删除文档。"), gr.update(value="")
        time.sleep(FAILED_LOGIN_PAUSE)  # slows down guessing
        return False, render_notice("warn", [], "用户名或口令不正确。"), gr.update(value="")

    return {fn.__name__: fn for fn in (upload, cancel_upload, remove_selected, login)}


def build_app(kb, access=None, data_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The Gradio app over one shared :class:`~rag.knowledge_base.KnowledgeBase`; ``access``
    (:class:`~rag.web.server.Access`) decides who may upload and delete (default: anyone);
    feedback and uploaded originals go to ``data_dir`` (:func:`rag.feedback.data_folder`)."""
    from .server import Access

    access = access or Access()
    data = feedback_store.data_folder(kb.folder, data_dir)
    read, write = _reading(kb, data), _writing(kb, access, data)

    # -- layout ----------------------------------------------------------------------------
    writable = not access.read_only
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        header = gr.HTML(header_html(kb), elem_id="rag-header-wrap", js_on_load=None)
        is_admin = gr.State(False)
        with gr.Tabs(elem_id="rag-tabs"):
            with gr.Tab("问答", id="chat"):
                gr.HTML("", html_template=_chat_template(), js_on_load=static_text("chat.js"),
                        server_functions=[read[name] for name in ("ask", "written_poll", "written_stop", "feedback", "documents")],
                        apply_default_css=False,
                        elem_id="rag-chat")
            with gr.Tab("知识库", id="kb"):
                if writable and access.login_required:
                    with gr.Row(elem_id="rag-login"):
                        user = gr.Textbox(label="管理员用户名", scale=2, visible=access.needs_user,
                                          elem_id="rag-login-user")
                        password = gr.Textbox(label="管理员口令", type="password", scale=2,
                                              elem_id="rag-login-password")
                        login_btn = gr.Button("登录", scale=1, elem_id="rag-login-btn")
                    login_msg = gr.HTML("", js_on_load=None, elem_id="rag-login-msg")
                if writable:
                    files = gr.File(label="上传文档", file_count="multiple", elem_id="rag-upload", height=150)
                    gr.HTML(f'<div class="rag-muted rag-upload-note">支持 {SUPPORTED_LIST}，一次可选多个文件。</div>',
                            js_on_load=None)
                    with gr.Row():
                        add_btn = gr.Button("添加到知识库", variant="primary", elem_id="rag-add")
                        cancel_btn = gr.Button("取消上传", variant="stop", visible=False, elem_id="rag-cancel")
                    upload_msg = gr.HTML("", js_on_load=None, elem_id="rag-upload-msg")
                else:
                    gr.HTML(render_notice("info", [], "只读模式：可以查看和提问，不能上传或删除文档。"),
                            js_on_load=None, elem_id="rag-read-only")
                docs = gr.HTML(_docs_value(""), html_template=_docs_template(writable), js_on_load=static_text("docs.js"),
                               server_functions=[read["documents"], read["preview"], read["original"]], apply_default_css=False,
                               elem_id="rag-docs")

        # -- events --------------------------------------------------------------------------
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        if writable:
            files.upload(lambda: "", None, upload_msg, **private)  # a stale message goes once files are picked
            add_btn.click(write["upload"], [files, docs, is_admin], [upload_msg, cancel_btn, add_btn, files, docs, header],
                          concurrency_limit=None, **private)
            cancel_btn.click(write["cancel_upload"], None, None, concurrency_limit=None, **private)
            docs.remove_selected(write["remove_selected"], [docs, is_admin], [docs, header], **private)
            if access.login_required:
                login_btn.click(write["login"], [user, password], [is_admin, login_msg, password], **private)
                password.submit(write["login"], [user, password], [is_admin, login_msg, password], **private)
        app.load(lambda: header_html(kb), None, header, **private)

        def ask_api(question: str, top_k: int = DEFAULT_TOP_K, previous: str = "") -> dict:
            """Answer a question from the knowledge base.

            Returns JSON: answer (None when nothing relevant was found), evidence, confidence,
            question (as answered, after resolving a follow-up against ``previous``), asked,
            answer_span, and passages with title, source, published, score, text, start, end.
            """
            try:
                answer, asked = handlers.answer_question(kb, question, previous, top_k)
            except RagError as exc:
                raise gr.Error(str(exc)) from None
            return handlers.answer_json(answer, asked)

        ask_api.__name__ = "ask"
        gr.api(ask_api, api_name="ask", concurrency_limit=8)
    return app

