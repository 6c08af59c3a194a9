"""Screenshots of the web app answering the seed question, for the README:

    python scripts/screenshot.py [--index-dir DIR] [--out-dir docs]

writes ``screenshot.png`` (light, 1280x800), ``screenshot-dark.png`` (dark, 1280x800) and
``screenshot-phone.png`` (light, 390x844) into ``--out-dir``. Without --index-dir, a
temporary index is built from data/articles. The app runs in this process on a free local
port; Debian's chromium (/usr/bin/chromium) takes the pictures, with the same flags as the
browser tests. Nothing is fetched from the network.
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
QUESTIONS = ("晋中有几家省级博士创新站", "那国家博士后科研站呢？")
SHOTS = (  # file, viewport, color scheme
    ("screenshot.png", (1280, 800), "light"),
    ("screenshot-dark.png", (1280, 800), "dark"),
    ("screenshot-phone.png", (390, 844), "light"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shoot(browser, url: str, out: Path, size: tuple[int, int], scheme: str, requests: list[str]) -> None:
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="zh-CN",
                                  color_scheme=scheme, device_scale_factor=1)
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(url)
    page.wait_for_selector("#rag-stat-docs")
    box = page.locator("#rag-question")
    for question in QUESTIONS:
        n = page.locator(".rag-turn").count()
        box.fill(question)
        box.press("Enter")
        page.wait_for_function("n => document.querySelectorAll('.rag-reply-done').length > n", arg=n)
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    if size[0] < 600:  # the phone: the first answer, as it arrived
        page.evaluate("() => document.querySelector('.rag-turn').scrollIntoView({block: 'start'})")
    else:
        page.evaluate("() => { const t = document.querySelector('.rag-transcript'); t.scrollTop = 0; window.scrollTo(0, 0); }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(out))
    context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", default=None, help="index to serve (default: a temporary one of data/articles)")
    parser.add_argument("--out-dir", default=str(REPO / "docs"))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from rag import KnowledgeBase
    from rag.web import build_app, launch

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
                for name, size, scheme in SHOTS:
                    _shoot(browser, url, out_dir / name, size, scheme, requests)
                    print(f"wrote {out_dir / name}")
                browser.close()
        finally:
            app.close()
    outside = sorted({u for u in requests if urlsplit(u).hostname not in ("127.0.0.1", "localhost")
                      and not u.startswith(("data:", "blob:"))})
    if outside:
        print(f"warning: the page asked for non-local URLs: {outside}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
