"""HTML for answers, documents and upload reports: everything from a document is escaped here.

Everything an article holds is untrusted: each piece of text is escaped before it is wrapped
in this module's markup (:func:`escape_text`), so HTML, ``<script>`` and Markdown links in a
document are shown as text, never run or fetched. The chat inserts this HTML as it is, so
this module is the one place that decides what markup reaches the page.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..types import Answer, Document, Passage

if TYPE_CHECKING:
    from ..answering.generate import WrittenAnswer

CONTEXT_CHARS = 400  # characters of the article shown around a passage when it is expanded

# Every ASCII punctuation mark becomes a numeric character reference: a superset of
# html.escape (< > & " '), which also covers Markdown ([ ] ( ) * _ ` # ! | ~ \\), LaTeX ($) and
# template syntax ({ } and the backtick of JS template literals, which gr.HTML evaluates), so
# no renderer or template engine ever sees syntax from a document.
_ENTITIES = {ord(c): f"&#{ord(c)};" for c in string.punctuation}

Layer = tuple[int, int, str, str]  # start, end, open tag, close tag


def escape_text(text: str, paragraphs: bool = False) -> str:
    """``text`` as inert HTML: markup and Markdown are shown, never interpreted. Line breaks
    become <br>; blank lines collapse into one break, or into one blank line with ``paragraphs``."""
    lines = str(text if text is not None else "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    joined = "<br>".join(line.replace("\t", " ").translate(_ENTITIES) for line in lines)
    limit = "<br><br>" if paragraphs else "<br>"
    while limit + "<br>" in joined:
        joined = joined.replace(limit + "<br>", limit)
    return joined


def esc(text: Any) -> str:
    """Escape one piece of text for this module's markup (no line breaks expected)."""
    return str("" if text is None else text).replace("\r", " ").replace("\n", " ").translate(_ENTITIES)


def basename(source: str) -> str:
    """The file name of a document's source, or the source itself when it is not a path."""
    if not source or source.startswith("document:"):
        return source or "—"
    return Path(source).name or source


def _highlight(text: str, layers: Sequence[Layer], lo: int = 0, hi: int | None = None) -> str:
    """``text[lo:hi]`` escaped, with nested highlight layers, outermost first; each layer is
    clamped inside the one around it."""
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


def _answer_layers(answer: Answer, index: int) -> list[Layer]:
    """Sentence and span highlights for passage ``index``."""
    span = answer.span
    if span is None or span.passage != index:
        return []
    layers: list[Layer] = []
    if 0 <= span.sentence_start < span.sentence_end:
        layers.append((span.sentence_start, span.sentence_end, '<span class="rag-sentence">', "</span>"))
    layers.append((span.start, span.end, '<mark class="rag-span">', "</mark>"))
    return layers


def _context_html(passage: Passage, doc_text: str | None, layers: list[Layer]) -> str:
    """The article around ``passage`` with the passage (and answer, if any) highlighted."""
    if not doc_text or doc_text[passage.start:passage.end] != passage.text:
        return '<span class="rag-muted">（原文不可用）</span>'
    lo = max(0, passage.start - CONTEXT_CHARS)
    hi = min(len(doc_text), passage.end + CONTEXT_CHARS)
    shifted = [(s + passage.start, e + passage.start, o, c) for s, e, o, c in layers]
    body = _highlight(doc_text, [(passage.start, passage.end, '<span class="rag-passage">', "</span>"), *shifted], lo, hi)
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(doc_text) else "")


def similarity(p: Passage) -> str:
    """The score shown on a card: the cosine between question and passage embeddings, which
    means the same for every question (the fused ranking score is min-max normalized per
    question, so its best passage is always 1.000, even when nothing fits)."""
    if p.dense_score is None:
        return ""
    return (f'<span class="rag-score" title="问题与段落的语义相似度（余弦，0–1），不同问题之间可以比较">'
            f"相似度 {max(0.0, float(p.dense_score)):.2f}</span>")


def _source_card(answer: Answer, index: int, doc_text: str | None, closest: bool) -> str:
    p = answer.passages[index]
    layers = _answer_layers(answer, index)
    is_answer = answer.span is not None and answer.span.passage == index
    classes = "rag-source" + (" rag-source-answer" if is_answer else "") + (" rag-source-closest" if closest else "")
    badge = ('<span class="rag-badge">答案出处</span>' if is_answer
             else '<span class="rag-badge rag-badge-closest">最接近</span>' if closest else "")
    meta = " · ".join(part for part in [
        esc(p.published or "日期未知"),
        f'<span class="rag-file" title="{esc(p.source)}">{esc(basename(p.source))}</span>',
        similarity(p),
    ] if part)
    return (
        f'<details class="{classes}" data-rank="{index + 1}" data-doc="{esc(p.doc_id)}"><summary>'
        f'<span class="rag-card-head"><span class="rag-rank">{index + 1}</span>'
        f'<span class="rag-title">{esc(p.title or "（无标题）")}</span>{badge}</span>'
        f'<span class="rag-meta">{meta}</span>'
        f'<span class="rag-snippet">{_highlight(p.text, layers)}</span>'
        f'<span class="rag-expand">展开上下文</span>'
        f"</summary>"
        f'<div class="rag-context"><span class="rag-context-label">原文上下文</span>'
        f"{_context_html(p, doc_text, layers)}</div></details>"
    )


def render_answer(answer: Answer, doc_texts: dict[str, str] | None = None, asked: str | None = None,
                  scope: str | None = None) -> str:
    """The assistant's reply for ``answer``: short answer in bold, evidence with the span
    marked, then one expandable card per passage. ``scope`` describes an active filter."""
    doc_texts = doc_texts or {}
    parts = ['<div class="rag-reply-body">']
    if asked and asked != answer.question:
        parts.append(f'<div class="rag-rewrite">结合上文理解为：「{esc(answer.question)}」</div>')
    if scope:
        parts.append(f'<div class="rag-scope">仅在所选范围内查找：{esc(scope)}</div>')
    if answer.text is not None:
        parts.append(
            f'<div class="rag-answer"><span class="rag-answer-label">答案</span>'
            f'<strong class="rag-answer-text">{esc(answer.text)}</strong>'
            f'<span class="rag-confidence">置信度 {answer.confidence:.0%}</span></div>'
        )
        if answer.evidence and answer.span is not None:
            s = answer.span
            sentence = answer.passages[s.passage].text[s.sentence_start:s.sentence_end]
            layers: list[Layer] = [(s.start - s.sentence_start, s.end - s.sentence_start,
                                    '<mark class="rag-span">', "</mark>")]
            if sentence != answer.evidence:  # offsets do not line up: show the evidence plainly
                layers, sentence = [], answer.evidence
            parts.append(f'<div class="rag-evidence"><span class="rag-evidence-label">依据</span>'
                         f"{_highlight(sentence, layers)}</div>")
        heading = "来源"
    elif answer.passages:
        where = "所选范围" if scope else "知识库"
        parts.append(f'<div class="rag-notfound">未在{where}中找到这个问题的答案。'
                     "下面是最接近的段落，仅供参考，不是答案。</div>")
        heading = "最接近的段落"
    elif scope:
        parts.append('<div class="rag-notfound">所选范围内没有相关内容。请放宽文档或日期筛选后再问。</div>')
        heading = ""
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
    return f'<div class="rag-reply-body"><div class="rag-error" role="alert">⚠ {esc(message)}</div></div>'


def render_document(doc: Document) -> str:
    """The full-text preview of one document."""
    return (f'<div class="rag-doc-preview" id="rag-doc-preview"><h3>{esc(doc.title or "（无标题）")}</h3>'
            f'<div class="rag-meta rag-preview-meta">{esc(doc.published or "日期未知")} · '
            f'<span title="{esc(doc.source)}">{esc(basename(doc.source))}</span> · {len(doc.text)} 字</div>'
            f'<div class="rag-preview-text">{escape_text(doc.text, paragraphs=True)}</div></div>')


def render_notice(kind: str, lines: Sequence[str], head: str = "") -> str:
    """A status message (kind: ok, warn, info) with optional list items; all text escaped."""
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return (f'<div class="rag-notice rag-notice-{kind}" role="status">'
            + (f'<div class="rag-notice-head">{esc(head)}</div>' if head else "")
            + (f"<ul>{items}</ul>" if items else "") + "</div>")


def render_progress(head: str, done: int, total: int, detail: str) -> str:
    """An upload's progress: a bar of chunks embedded out of ``total``, and a line of detail."""
    value = f' value="{done}" max="{max(total, 1)}"' if total else ""
    return (f'<div class="rag-progress" role="status" aria-live="polite">'
            f'<div class="rag-notice-head">{esc(head)}</div>'
            f'<progress{value} aria-label="索引进度"></progress>'
            f'<div class="rag-progress-detail">{esc(detail)}</div></div>')


def render_written(written: WrittenAnswer) -> str:
    """A written answer (from the LLM endpoint) once it is done: its text, escaped like any
    document text (a model can write markup too), with each unverified sentence marked,
    then what the checks found; or only the one-line notice when there is no text."""
    parts = ['<div class="rag-written-body">']
    if written.text:
        text, pieces, at = written.text, [], 0
        for u in written.unverified:
            start = text.find(u.sentence, at)
            if start < 0:
                continue
            end = start + len(u.sentence)
            pieces.append(escape_text(text[at:start]))
            pieces.append(f'<span class="rag-unverified" title="{esc(u.describe())}">{escape_text(text[start:end])}'
                          '</span><span class="rag-unverified-tag">未核实</span>')
            at = end
        pieces.append(escape_text(text[at:]))
        parts.append(f'<div class="rag-written-text">{"".join(pieces)}</div>')
        checks = []
        for line in written.check_lines():
            if line.startswith("注意："):
                continue
            kind = " rag-check-warn" if line.startswith(("未核实", "不一致")) else ""
            checks.append(f'<li class="rag-check{kind}">{esc(line)}</li>')
        parts.append(f'<ul class="rag-written-checks">{"".join(checks)}</ul>')
    if written.notice:
        parts.append(f'<div class="rag-written-notice" role="status">{esc(written.notice)}</div>')
    parts.append("</div>")
    return "".join(parts)
