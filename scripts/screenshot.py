"""Screenshot of the web app answering the seed question -> docs/screenshot.png.

    python scripts/screenshot.py [--index-dir DIR] [--out docs/screenshot.png]

Without --index-dir, a temporary index is built from data/articles. The app runs in this
process on a free local port; Debian's chromium (/usr/bin/chromium) takes the picture,
with the same flags as the browser tests. Nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

import rag  # noqa: F401  (sets the offline environment before gradio is imported)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
QUESTION = "晋中有几家省级博士创新站"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", default=None, help="index to serve (default: a temporary one of data/articles)")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=960)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from rag import KnowledgeBase
    from rag.web import build_app, launch

    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(args.index_dir or Path(tmp) / "index")
        if not kb.documents():
            kb.add([REPO / "data" / "articles"])
        app = build_app(kb)
        url = launch(app, "127.0.0.1", _free_port(), block=False, quiet=True)
        requests: list[str] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": args.width, "height": args.height}, locale="zh-CN")
                page.on("request", lambda r: requests.append(r.url))
                page.set_default_timeout(120_000)
                page.goto(url)
                page.wait_for_selector("#rag-stat-docs")
                box = page.locator("#rag-question textarea")
                box.fill(QUESTION)
                box.press("Enter")
                page.wait_for_selector(".rag-reply:not(.rag-muted) .rag-source-answer")
                page.evaluate("""() => {
                    const reply = document.querySelector('.rag-reply:not(.rag-muted)');
                    const user = document.querySelector('#rag-chat .user-row') || reply;
                    user.scrollIntoView({block: 'start'});
                    window.scrollTo(0, 0);
                    document.activeElement && document.activeElement.blur();
                }""")
                page.wait_for_timeout(400)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out)
                browser.close()
        finally:
            app.close()
    outside = sorted({u for u in requests if urlsplit(u).hostname not in ("127.0.0.1", "localhost")
                      and not u.startswith(("data:", "blob:"))})
    if outside:
        print(f"warning: the page asked for non-local URLs: {outside}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
