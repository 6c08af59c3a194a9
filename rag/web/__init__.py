"""The web app: chat with cited, highlighted sources and a knowledge base managed in the browser.

``serve(index_dir, host, port)`` opens the index and serves it (``rag serve`` and
``python app.py`` both end up here); ``build_app(kb)`` returns the Gradio Blocks and
``launch(app, ...)`` serves them. One KnowledgeBase is shared by every browser session.

    layout.py    the page and its events        handlers.py  answering, documents (no Gradio)
    render.py    HTML, all text escaped          uploads.py   upload jobs: progress, cancel
    theme.py     light and dark look             messages.py  Chinese for errors and Gradio
    server.py    launch, serve, admin access     static/      CSS and the widgets' JavaScript
    written.py   written answers (optional LLM endpoint), streamed to the chat by polling

Importing this package does not import Gradio; the names below load it on first use.
"""

from __future__ import annotations

__all__ = ["Access", "build_app", "launch", "serve"]


def __getattr__(name: str):
    if name == "build_app":
        from .layout import build_app

        return build_app
    if name in ("Access", "launch", "serve"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'rag.web' has no attribute {name!r}")
