"""The web app, driven in a real browser (Playwright + Debian's chromium) and through its API.

One in-process server per module serves a private copy of the seed index. The browser tests
(marked ``browser``) are skipped when /usr/bin/chromium is missing; the API tests need no
browser. Each browser test opens its own context (fresh storage = a new user) and checks
several things per page load, at the phone (390x844) and laptop (1280x720) sizes and in the
light and dark color schemes where the issue asks for it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import rag  # noqa: F401  (sets the offline environment before gradio is imported)

from .conftest import SEED_QUESTION, SEED_SENTENCE, ChatServer, hold, status, trickle

pytestmark = pytest.mark.browser  # a real Gradio server, most tests in Debian's chromium

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 180_000  # generous: the test machine may be busy
LAPTOP, PHONE = (1280, 720), (390, 844)
# Every defect test of issue 10 runs at both sizes in both color schemes.
MATRIX = pytest.mark.parametrize(("size", "scheme"), [(z, c) for z in (LAPTOP, PHONE) for c in ("light", "dark")],
                                 ids=[f"{z[0]}x{z[1]}-{c}" for z in (LAPTOP, PHONE) for c in ("light", "dark")])
SEED_TITLE = "山西晋中:统筹推进教育科技人才一体改革"
FOLLOW_UP = "那国家博士后科研站呢？"
NOT_FOUND_QUESTION = "火星探测器的着陆时间是哪一年"

UPLOAD_NAME = "taigu_digital_farming.txt"
UPLOAD_TITLE = "太谷区数字农业建设情况通报"
UPLOAD_TEXT = (
    f"{UPLOAD_TITLE}\n2024-05-01\n\n"
    "今年以来，太谷区加快推进数字农业建设。截至目前，太谷区已建成数字农业示范园12个，带动农户3600户增收。\n"
    "下一步，太谷区将继续完善农业物联网平台，推动数字技术与农业生产深度融合。\n"
)
UPLOAD_QUESTION = "太谷区建成了几个数字农业示范园"
HOSTILE_NAME = "yuci_notice.txt"
HOSTILE_TEXT = (
    '榆次区安全公告<script>window.__pwned=1;document.title="pwned"</script>\n2024-06-01\n\n'
    '榆次区共建成应急避难场所<img src=x onerror="window.__pwned=2">15处，覆盖全部街道。'
    "[点我](http://evil.example/a) ![图](http://evil.example/x.png) "
    '<script>window.__pwned=3;document.title="pwned"</script>\n'
    "榆次区安全公告由区应急管理局发布。\n"
)
HOSTILE_QUESTION = "榆次区共建成应急避难场所多少处"

# Contrast of an element's text against what is behind it (WCAG 2 relative luminance),
# with translucent backgrounds blended down to the first opaque one.
CONTRAST_JS = """sel => {
  const nodes = Array.from(document.querySelectorAll(sel)).filter(n => n.getClientRects().length);
  if (!nodes.length) return null;
  const parse = c => { const p = c.match(/[\\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const blend = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const behind = node => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let color = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) color = blend(layers[i], color);
    return color;
  };
  const lum = c => { const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  return Math.min(...nodes.map(n => {
    const back = behind(n), fore = blend(parse(getComputedStyle(n).color), back);
    const a = lum(fore), b = lum(back);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }));
}"""
# The most lines of text any visible element matching ``sel`` wraps to (a column one character
# wide shows as many lines as characters).
LINES_JS = """sel => Math.max(0, ...Array.from(document.querySelectorAll(sel)).filter(n => n.getClientRects().length).map(n => {
  const range = document.createRange();
  range.selectNodeContents(n);
  return new Set(Array.from(range.getClientRects()).filter(r => r.width).map(r => Math.round(r.bottom))).size;
}))"""
# Whether an element is on screen and not hidden behind anything (the sticky question box).
IN_VIEW_JS = """sel => {
  const n = document.querySelector(sel);
  if (!n) return 'missing';
  const r = n.getBoundingClientRect();
  if (r.top < 0 || r.bottom > window.innerHeight || r.left < 0 || r.right > window.innerWidth) {
    return 'outside the viewport: top ' + Math.round(r.top) + ', bottom ' + Math.round(r.bottom);
  }
  const box = n.closest('.rag-transcript');
  if (box) {
    const b = box.getBoundingClientRect();
    if (r.top < b.top - 1 || r.bottom > b.bottom + 1) return 'scrolled out of the chat box';
  }
  const hit = document.elementFromPoint(r.left + Math.min(r.width / 2, 20), r.top + r.height / 2);
  return hit && (hit === n || n.contains(hit)) ? 'ok' : 'covered by ' + (hit ? hit.className || hit.tagName : 'nothing');
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(seed_index: Path, folder: Path, access=None, generator=None):
    from rag import KnowledgeBase
    from rag.web import build_app, launch

    shutil.copytree(seed_index, folder)
    kb = KnowledgeBase(folder, generator=generator)
    app = build_app(kb, access)
    url = launch(app, "127.0.0.1", _free_port(), block=False, quiet=True)
    try:
        yield url.rstrip("/"), kb, app
    finally:
        app.close()


@pytest.fixture(scope="module")
def webapp(seed_index, tmp_path_factory):
    """(url, kb): the app serving a private copy of the seed index, started once per module,
    with its models loaded first as ``rag serve`` does (the first test does not wait for them)."""
    with _serving(seed_index, tmp_path_factory.mktemp("webapp") / "index") as (url, kb, _):
        kb.warm_up()
        yield url, kb


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium fonts-wqy-microhei)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def opened(browser, url: str, size=LAPTOP, scheme: str = "light", locale: str = "zh-CN"):
    """A page of the app in a fresh context (its own storage: a new user); asserts at the end
    that nothing was requested from outside the machine."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale=locale,
                                  color_scheme=scheme, accept_downloads=True)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url + "/")
    page.wait_for_selector("#rag-stat-docs")
    page.wait_for_selector(".rag-chat #rag-question")
    try:
        yield page
    finally:
        context.close()
    outside = sorted({u for u in requests if urlsplit(u).hostname not in LOCAL_HOSTS
                      and not u.startswith(("data:", "blob:", "about:"))})
    assert not outside, f"requests left the machine: {outside}"


def send(page, question: str) -> None:
    box = page.locator("#rag-question")
    box.fill(question)
    box.press("Enter")


def ask(page, question: str):
    """Send ``question`` and wait for its reply; returns the reply's locator."""
    before = page.locator(".rag-turn").count()
    send(page, question)
    page.wait_for_function(
        "n => document.querySelectorAll('.rag-turn').length > n && !document.querySelector('.rag-turn:last-child .rag-pending')",
        arg=before)
    return page.locator(".rag-turn").last.locator(".rag-reply")


def contrast(page, selector: str) -> float:
    value = page.evaluate(CONTRAST_JS, selector)
    assert value is not None, f"nothing visible matches {selector}"
    return value


def assert_readable(page, *selectors: str) -> None:
    """Every visible element of each selector has text at 4.5:1 contrast or more (WCAG AA)."""
    low = {s: round(v, 2) for s in selectors if (v := contrast(page, s)) < 4.5}
    assert not low, f"text below 4.5:1 contrast: {low}"


def rendered(page) -> None:
    """Wait until the browser has drawn two frames: whatever the page does on load (focus,
    scroll) has happened by then."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def open_kb_tab(page) -> None:
    page.get_by_role("tab", name="知识库").click()
    page.wait_for_selector(".rag-doc-title")


def open_chat_tab(page) -> None:
    page.get_by_role("tab", name="问答").click()
    page.wait_for_selector("#rag-question")


def doc_row(page, title: str):
    return page.locator(".rag-doc", has=page.locator(".rag-doc-title", has_text=title))


def upload(page, paths: list[Path]) -> str:
    """Upload files through the knowledge-base panel; returns the report."""
    open_kb_tab(page)
    page.locator("#rag-upload input[type=file]").set_input_files([str(p) for p in paths])
    for p in paths:  # the files are on the server once the component lists them
        page.locator("#rag-upload").get_by_text(p.stem).first.wait_for()
    page.locator("#rag-add").click()
    page.wait_for_function(
        "() => /已处理|未添加|已取消|没有可添加/.test(document.querySelector('#rag-upload-msg')?.innerText || '')")
    return page.locator("#rag-upload-msg").inner_text()


def delete_documents(page, titles: list[str]) -> str:
    open_kb_tab(page)
    for title in titles:
        doc_row(page, title).locator("input[type=checkbox]").check()
    page.locator("#rag-doc-delete").click()
    page.locator(".rag-confirm-yes").click()
    page.wait_for_function("() => /已删除|删除失败/.test(document.querySelector('.rag-docs-msg')?.innerText || '')")
    return page.locator(".rag-docs-msg").inner_text()


# -- browser tests -----------------------------------------------------------------------
@pytest.mark.browser
@MATRIX
def test_answers_arrive_in_view_readable_and_in_order(webapp, browser, size, scheme):
    url, _ = webapp
    with opened(browser, url, size, scheme) as page:
        # the page loads at its top: title, description, stats and tabs in view and readable
        rendered(page)
        assert page.evaluate("window.scrollY") == 0
        assert page.evaluate("document.body.classList.contains('dark')") == (scheme == "dark")
        for selector in ("#rag-header h1", "#rag-stat-docs", "#rag-tabs button[role=tab]"):
            assert page.evaluate(IN_VIEW_JS, selector) == "ok", selector
        assert_readable(page, "#rag-header h1", "#rag-header p", ".rag-stat", "#rag-tabs button[role=tab]",
                        ".rag-empty", ".rag-example", "#rag-question", "#rag-ask")
        # the question box is named for screen readers
        assert page.get_by_role("textbox", name="问题").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]

        # the answer is in view when it arrives, and readable
        reply = ask(page, SEED_QUESTION)
        assert reply.locator("strong.rag-answer-text").inner_text() == "7家"
        assert page.evaluate(IN_VIEW_JS, ".rag-turn:last-child .rag-user-text") == "ok"
        assert page.evaluate(IN_VIEW_JS, ".rag-turn:last-child .rag-answer-text") == "ok"
        assert_readable(page, ".rag-answer-text", ".rag-answer-label", ".rag-confidence", ".rag-evidence",
                        ".rag-evidence mark.rag-span", ".rag-evidence-label", ".rag-user-label", ".rag-user-text",
                        ".rag-sources-head", ".rag-title", ".rag-meta", ".rag-snippet", ".rag-snippet mark.rag-span",
                        ".rag-badge", ".rag-expand", ".rag-actions .rag-btn")

        # five questions sent fast, then a half-typed one: five answers in order, the box untouched
        questions = [FOLLOW_UP, NOT_FOUND_QUESTION, SEED_QUESTION, "晋中与多少所高校开展合作", "市科技局局长是谁"]
        box = page.locator("#rag-question")
        for q in questions:  # typed and sent back to back, each while the ones before still wait
            box.press_sequentially(q)
            box.press("Enter")
        box.press_sequentially("晋中举办博士大讲")
        page.wait_for_function("() => document.querySelectorAll('.rag-turn').length === 6 "
                               "&& !document.querySelector('.rag-pending')")
        turns = page.locator(".rag-turn")
        assert turns.locator(".rag-user-text").all_inner_texts() == [SEED_QUESTION, *questions]
        assert box.input_value() == "晋中举办博士大讲"
        # in order: the follow-up was read against the question before it
        assert "晋中有几家国家博士后科研站" in turns.nth(1).locator(".rag-rewrite").inner_text()
        assert "未在知识库中找到" in turns.nth(2).locator(".rag-notfound").inner_text()
        assert turns.nth(3).locator(".rag-answer-text").inner_text() == "7家"
        assert page.evaluate(IN_VIEW_JS, ".rag-turn:last-child .rag-user-text") == "ok"
        # the not-found reply and the follow-up's reading are readable too
        assert_readable(page, ".rag-notfound", ".rag-rewrite")


@pytest.mark.browser
@MATRIX
def test_scores_mean_the_same_across_questions_and_weak_passages_say_closest(webapp, browser, size, scheme):
    url, kb = webapp
    with opened(browser, url, size, scheme) as page:
        reply = ask(page, NOT_FOUND_QUESTION)
        assert reply.locator("strong.rag-answer-text").count() == 0
        assert reply.locator(".rag-sources-head").inner_text().startswith("最接近的段落")
        cards = reply.locator("details.rag-source")
        assert cards.count() >= 1
        assert cards.count() == cards.locator(".rag-badge-closest", has_text="最接近").count()
        shown = float(cards.first.locator(".rag-score").inner_text().split()[-1])
        top = kb.search(NOT_FOUND_QUESTION, top_k=1)[0]
        assert shown == pytest.approx(top.dense_score, abs=0.006) and shown < 0.99  # not rescaled to 1
        assert_readable(page, ".rag-notfound", ".rag-sources-head", ".rag-badge-closest", ".rag-score", ".rag-title",
                        ".rag-snippet")
        # a click on a source opens the surrounding text of the article
        reply = ask(page, SEED_QUESTION)
        card = reply.locator("details.rag-source-answer")
        assert card.locator(".rag-snippet mark.rag-span").inner_text() == "7家"
        assert SEED_TITLE in card.locator(".rag-title").inner_text()
        meta = card.locator(".rag-meta").inner_text()
        assert "jinzhong_education_science_talent.txt" in meta and "相似度" in meta
        context = card.locator(".rag-context")
        assert not context.is_visible()
        card.locator("summary").click()
        context.wait_for(state="visible")
        assert context.locator(".rag-passage").count() == 1
        assert_readable(page, ".rag-score", ".rag-badge", ".rag-context", ".rag-context-label", ".rag-passage",
                        ".rag-context mark.rag-span")


@pytest.mark.browser
@MATRIX
def test_chat_copy_regenerate_feedback_reload_clear_and_scope(webapp, browser, size, scheme):
    from rag.cli import main

    url, kb = webapp
    with opened(browser, url, size, scheme) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page.locator(".rag-example", has_text="市科技局局长是谁").click()  # an example asks itself
        page.wait_for_selector(".rag-turn .rag-reply-done")
        reply = ask(page, SEED_QUESTION)
        turn = page.locator(".rag-turn").last
        # copy
        turn.locator(".rag-copy").click()
        page.wait_for_function("() => document.querySelector('.rag-turn:last-child .rag-copy').textContent === '已复制'")
        assert_readable(page, ".rag-copy")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert "答：7家" in copied and "7家省级博士创新站" in copied and SEED_TITLE in copied
        # regenerate: the same turn is answered again, in place
        turn.locator(".rag-regenerate").click()
        page.wait_for_function("() => !document.querySelector('.rag-pending')")
        assert page.locator(".rag-turn").count() == 2 and reply.locator(".rag-answer-text").inner_text() == "7家"
        # feedback lands in the index folder and the CLI exports it
        turn.locator(".rag-vote-up").click()
        page.wait_for_function(
            "() => document.querySelector('.rag-turn:last-child .rag-vote-up').getAttribute('aria-pressed') === 'true'")
        lines = (Path(kb.folder) / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
        saved = json.loads(lines[-1])
        assert saved["vote"] == "up" and saved["question"] == SEED_QUESTION and saved["answer"] == "7家"
        assert saved["passages"] and saved["passages"][0]["title"] == SEED_TITLE
        assert_readable(page, ".rag-vote-up[aria-pressed=true]", ".rag-vote-down", ".rag-regenerate")
        assert main(["feedback", "export", "--index-dir", str(kb.folder)]) == 0
        # the conversation is still there after a reload
        page.reload()
        page.wait_for_selector(".rag-turn .rag-reply-done")
        assert page.locator(".rag-user-text").all_inner_texts() == ["市科技局局长是谁", SEED_QUESTION]
        assert page.locator(".rag-vote-up").last.get_attribute("aria-pressed") == "true"
        assert page.evaluate("window.scrollY") == 0
        # 清空对话 can be undone
        page.locator("#rag-clear").click()
        assert page.locator(".rag-turn").count() == 0
        assert_readable(page, ".rag-undo", ".rag-undo button", "#rag-clear")
        page.locator(".rag-undo button").click()
        assert page.locator(".rag-turn").count() == 2
        # answers limited to a date range, then to one document
        page.locator(".rag-filter summary").click()
        page.locator("#rag-date-from").fill("2025-01-01")
        page.locator("#rag-date-to").fill("2026-12-31")
        reply = ask(page, SEED_QUESTION)
        assert reply.locator(".rag-answer-text").count() == 0
        assert "2025-01-01 至 2026-12-31" in reply.locator(".rag-scope").inner_text()
        assert_readable(page, ".rag-scope", ".rag-filter summary", ".rag-filter-body label", ".rag-field",
                        ".rag-filter-docs label span", "#rag-filter-clear")
        page.locator("#rag-filter-clear").click()
        page.locator(".rag-filter-docs label", has_text=SEED_TITLE).locator("input").check()
        assert "1 篇文档" in page.locator(".rag-filter-summary").inner_text()
        reply = ask(page, SEED_QUESTION)
        assert reply.locator(".rag-answer-text").inner_text() == "7家"
        assert "1 篇所选文档" in reply.locator(".rag-scope").inner_text()


@pytest.mark.browser
@MATRIX
def test_uploads_in_chinese_bad_files_named_failures_dismissible_delete_confirmed(webapp, browser, tmp_path, size, scheme):
    url, kb = webapp
    good = tmp_path / UPLOAD_NAME
    good.write_text(UPLOAD_TEXT, encoding="utf-8")
    second = tmp_path / "taigu_water_saving.txt"
    second.write_text("太谷区节水灌溉情况通报\n2024-06-03\n\n太谷区今年新增高效节水灌溉面积1.2万亩。\n", encoding="utf-8")
    csv = tmp_path / "data.exe"  # (.csv is read now: a table's rows become text)
    csv.write_bytes(b"MZ\x90\x00")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    broken = tmp_path / "broken_scan.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    # an English browser: Gradio's own strings are Chinese too
    with opened(browser, url, size, scheme, locale="en-US") as page:
        assert "超过了 1,000 字的上限" in ask(page, "晋" * 1200).inner_text()
        assert_readable(page, ".rag-error")
        open_kb_tab(page)
        upload_box = page.locator("#rag-upload").inner_text()
        assert "将文件拖放到此处" in upload_box and "Drop File Here" not in upload_box
        assert_readable(page, "#rag-upload .wrap", ".rag-upload-note", "#rag-add")
        assert "Use via API" not in page.locator("footer").inner_text()
        # one refused file does not spoil the selection; each one is named with its reason
        report = upload(page, [good, csv, second, empty, broken])
        assert f"{UPLOAD_NAME}：已添加" in report and "taigu_water_saving.txt：已添加" in report
        assert "data.exe：不支持的文件类型 .exe" in report
        assert "empty.txt：文件是空的（0 字节）" in report
        assert "broken_scan.pdf：PDF 已损坏或无法读取" in report
        for english in ("empty file", "corrupt", "Invalid file", "unsupported", "Error"):
            assert english not in report
        assert_readable(page, "#rag-upload-msg .rag-notice-head", "#rag-upload-msg li")
        doc_row(page, UPLOAD_TITLE).wait_for()
        assert page.locator("#rag-stat-docs").inner_text().startswith("3")
        failed = page.locator(".rag-doc-failed")
        assert failed.count() == 3
        assert_readable(page, ".rag-doc-failed .rag-doc-title", ".rag-doc-failed .rag-doc-status", ".rag-doc-dismiss")
        failed.filter(has_text="data.exe").locator(".rag-doc-dismiss").click()
        assert failed.count() == 2
        # search and status filter
        page.locator("#rag-doc-search").fill("数字农业")
        assert page.locator(".rag-doc-title").all_inner_texts() == [UPLOAD_TITLE]
        page.locator("#rag-doc-search").fill("")
        page.locator("#rag-doc-status").select_option("failed")
        assert page.locator(".rag-doc-title").count() == 2
        page.locator("#rag-doc-status").select_option("")
        # the uploaded document answers questions
        open_chat_tab(page)
        reply = ask(page, UPLOAD_QUESTION)
        assert UPLOAD_NAME in reply.inner_text()
        # delete: a warning without a selection, gone once one is picked; confirmation first
        open_kb_tab(page)
        page.locator("#rag-doc-delete").click()
        assert "请先勾选" in page.locator(".rag-docs-msg").inner_text()
        assert_readable(page, ".rag-docs-msg .rag-notice", "#rag-doc-delete")
        doc_row(page, UPLOAD_TITLE).locator("input[type=checkbox]").check()
        assert page.locator(".rag-docs-msg").inner_text() == ""
        page.locator("#rag-doc-delete").click()
        assert_readable(page, ".rag-confirm-text", ".rag-confirm-yes", ".rag-confirm-no", ".rag-doc-selected .rag-doc-title")
        page.locator(".rag-confirm-no").click()
        assert doc_row(page, UPLOAD_TITLE).count() == 1 and len(kb.documents()) == 3
        message = delete_documents(page, ["太谷区节水灌溉情况通报"])  # two at once, the first still selected
        assert "已删除 2 篇" in message and UPLOAD_TITLE in message and "太谷区节水灌溉情况通报" in message
        assert_readable(page, ".rag-docs-msg .rag-notice-head", ".rag-docs-msg li")
        page.wait_for_function("() => !document.querySelector('.rag-docs-list').innerText.includes('太谷区')")
        assert page.locator("#rag-stat-docs").inner_text().startswith("1")
        assert not (Path(kb.folder) / "uploads" / UPLOAD_NAME).exists()
    # the failures were this session's: another visitor does not see them
    with opened(browser, url, size, scheme) as page:
        open_kb_tab(page)
        assert page.locator(".rag-doc-failed").count() == 0


@pytest.mark.browser
@MATRIX
def test_upload_shows_chunks_embedded_with_an_estimate_and_can_be_cancelled(webapp, browser, tmp_path, size, scheme,
                                                                           monkeypatch):
    from rag.web.uploads import ProgressEmbedder

    # progress and cancel every 8 passages rather than 64: the same code, and the run embeds
    # two slices of 8 (the first, then the one under way when cancel is pressed), not of 64
    monkeypatch.setattr(ProgressEmbedder, "SLICE", 8)
    url, kb = webapp
    big = tmp_path / "yuci_long_report.txt"
    sentences = [f"第{i}项：榆次区第{i}个社区今年新增就业岗位{i * 7}个，培训人员{i * 3}人次，发放补贴{i * 11}万元。"
                 for i in range(1, 1500)]
    big.write_text("榆次区就业工作长篇报告\n2025-03-18\n\n" + "\n".join(sentences), encoding="utf-8")
    documents_before = len(kb.documents())
    with opened(browser, url, size, scheme) as page:
        open_kb_tab(page)
        page.locator("#rag-upload input[type=file]").set_input_files([str(big)])
        page.locator("#rag-upload").get_by_text(big.stem).first.wait_for()
        page.locator("#rag-add").click()
        page.wait_for_function(
            "() => /已嵌入 \\d+\\/\\d+ 段.*预计还需约/.test(document.querySelector('#rag-upload-msg')?.innerText || '')")
        progress = page.locator("#rag-upload-msg").inner_text()
        done, total = (int(x) for x in progress.split("已嵌入 ")[1].split(" 段")[0].split("/"))
        assert 0 < done < total
        assert_readable(page, "#rag-upload-msg .rag-notice-head", ".rag-progress-detail", "#rag-cancel")
        page.locator("#rag-upload-msg .rag-progress").scroll_into_view_if_needed()
        assert page.evaluate(IN_VIEW_JS, "#rag-upload-msg .rag-progress-detail") == "ok"  # nothing drawn over it
        page.locator("#rag-cancel").click()
        page.wait_for_function("() => /已取消/.test(document.querySelector('#rag-upload-msg')?.innerText || '')")
        assert "yuci_long_report.txt：已取消" in page.locator("#rag-upload-msg").inner_text()
        assert_readable(page, "#rag-upload-msg .rag-notice-head", "#rag-upload-msg li")
        assert not page.locator("#rag-cancel").is_visible()
    assert len(kb.documents()) == documents_before
    assert not (Path(kb.folder) / "uploads" / big.name).exists()


@pytest.mark.browser
@MATRIX
def test_document_list_fits_the_screen_previews_and_downloads_originals(webapp, browser, size, scheme):
    url, kb = webapp
    with opened(browser, url, size, scheme) as page:
        open_kb_tab(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
        assert page.evaluate("(() => { const l = document.querySelector('.rag-docs-list'); "
                             "return l.scrollWidth <= l.clientWidth; })()")  # no column cut off at the side
        title = page.locator(".rag-doc-title").first
        assert title.inner_text() == SEED_TITLE
        box = title.bounding_box()
        assert box["width"] >= 200, box  # a line of title, not one character per line
        assert page.evaluate(LINES_JS, ".rag-doc-title") <= 2
        assert page.evaluate(LINES_JS, ".rag-doc:not(.rag-doc-head) > .rag-doc-cell:not(:has(.rag-doc-status))") == 1
        # a table with its column names on a laptop; a list of cards without them on a phone
        assert page.locator(".rag-doc-head").is_visible() == (size == LAPTOP)
        readable = [".rag-doc-title", ".rag-doc-cell", ".rag-doc-status", ".rag-docs-count", ".rag-doc-download",
                    "#rag-doc-search", "#rag-doc-status", "#rag-doc-delete", ".rag-docs-preview .rag-muted"]
        assert_readable(page, *readable, *([".rag-doc-head span"] if size == LAPTOP else []))
        title.click()
        page.locator("#rag-doc-preview").wait_for()
        assert "7家省级博士创新站" in page.locator("#rag-doc-preview").inner_text()
        assert page.evaluate(IN_VIEW_JS, "#rag-doc-preview h3") == "ok"  # the preview is brought into view
        assert_readable(page, "#rag-doc-preview h3", ".rag-preview-meta", ".rag-preview-text")
        with page.expect_download() as info:
            doc_row(page, SEED_TITLE).locator(".rag-doc-download").click()
        download = info.value
        assert download.suggested_filename == "jinzhong_education_science_talent.txt"
        source = next(d["source"] for d in kb.documents() if d["title"] == SEED_TITLE)
        assert Path(download.path()).read_bytes() == Path(source).read_bytes()


@pytest.mark.browser
def test_document_markup_is_shown_as_text_never_run(webapp, browser, tmp_path):
    url, kb = webapp
    hostile = tmp_path / HOSTILE_NAME
    hostile.write_text(HOSTILE_TEXT, encoding="utf-8")
    with opened(browser, url) as page:
        assert f"{HOSTILE_NAME}：已添加" in upload(page, [hostile])
        # markup in a text file is stripped when it is read (it is never an answer either)
        doc_row(page, "榆次区安全公告").wait_for()
        open_chat_tab(page)
        reply = ask(page, HOSTILE_QUESTION)
        card = reply.locator("details.rag-source", has_text="榆次区安全公告").first
        assert "<script>" not in card.locator(".rag-title").inner_text()
        snippet = card.locator(".rag-snippet").inner_text()
        assert "onerror" not in snippet  # the tag was stripped when the file was read
        assert "[点我](http://evil.example/a)" in snippet and "![图](http://evil.example/x.png)" in snippet
        chat = page.locator("#rag-chat")
        assert chat.locator("script").count() == 0
        assert chat.locator("img[src='x'], img[src*='evil'], a[href*='evil']").count() == 0
        # the full-text preview escapes it too
        open_kb_tab(page)
        doc_row(page, "榆次区安全公告").locator(".rag-doc-title").click()
        preview = page.locator("#rag-doc-preview")
        preview.wait_for()
        assert "<script>" not in preview.inner_text()
        assert preview.locator("script, img").count() == 0
        # and the stored conversation, read back after a reload
        page.reload()
        page.wait_for_selector(".rag-turn .rag-reply-done")
        assert page.locator("#rag-chat script, #rag-chat img").count() == 0
        assert page.evaluate("() => window.__pwned") is None
        assert page.title() == "政策文件问答"
        delete_documents(page, ["榆次区安全公告"])
    assert not any(d["source"].endswith(HOSTILE_NAME) for d in kb.documents())


# -- API tests (no browser) --------------------------------------------------------------
def _check_seed_payload(result: dict) -> None:
    assert result["answer"] == "7家"
    assert "7家省级博士创新站" in result["evidence"]
    assert result["confidence"] > 0
    top = result["passages"][result["answer_span"]["passage"]]
    assert top["title"] == SEED_TITLE
    assert top["published"].startswith("2024-10-07")
    assert top["source"].endswith("jinzhong_education_science_talent.txt")
    assert isinstance(top["score"], float) and top["end"] > top["start"] >= 0
    span = result["answer_span"]
    assert top["text"][span["start"]:span["end"]] == "7家"


def test_ask_endpoint_with_gradio_client(webapp):
    from gradio_client import Client

    url, _ = webapp
    client = Client(url + "/", verbose=False)
    result = client.predict(question=SEED_QUESTION, top_k=3, api_name="/ask")
    _check_seed_payload(result)
    assert len(result["passages"]) <= 3
    follow = client.predict(question=FOLLOW_UP, previous=SEED_QUESTION, api_name="/ask")
    assert follow["question"] == "晋中有几家国家博士后科研站" and follow["asked"] == FOLLOW_UP
    with pytest.raises(Exception, match="empty"):
        client.predict(question="   ", api_name="/ask")


def test_ask_endpoint_over_plain_http(webapp):
    url, _ = webapp
    body = json.dumps({"data": [SEED_QUESTION, 5, ""]}).encode()
    request = urllib.request.Request(url + "/gradio_api/call/ask", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/ask/{event_id}", timeout=120) as response:
        stream = response.read().decode("utf-8")
    assert "event: complete" in stream
    data = next(line[len("data:"):] for line in stream.splitlines() if line.startswith("data:"))
    _check_seed_payload(json.loads(data)[0])


# -- who may write: --read-only and the admin login (issue 15) ------------------------------
# The upload and delete functions are Gradio events; anyone who reaches the port can call
# them by number through the queue API, as the page does. These tests call them that way,
# without the page, and check that the server refuses them unless the session logged in.
TOKEN = "s3cret-admin-token"


@pytest.fixture(scope="module")
def guarded(seed_index, tmp_path_factory):
    """(url, kb, app) with an admin token, and (url, kb, app) read-only."""
    from rag.web import Access

    root = tmp_path_factory.mktemp("access")
    with _serving(seed_index, root / "admin", Access(token=TOKEN)) as admin, \
            _serving(seed_index, root / "ro", Access(read_only=True)) as read_only:
        yield admin, read_only


def _fn_index(app, name: str) -> int:
    return next(i for i, fn in app.fns.items() if fn.name == name)


def _component_id(app, elem_id: str) -> int:
    return next(b._id for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def queue_call(url: str, app, fn: str, data: list, session: str | None = None, trigger: str | None = None) -> dict:
    """Call the app's function ``fn`` through the queue API, as a script would; returns the
    final message (``success`` and ``output``)."""
    session = session or uuid.uuid4().hex
    body = {"data": data, "fn_index": _fn_index(app, fn), "session_hash": session, "event_data": None,
            "trigger_id": _component_id(app, trigger) if trigger else None}
    request = urllib.request.Request(f"{url}/gradio_api/queue/join", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        json.load(response)
    with urllib.request.urlopen(f"{url}/gradio_api/queue/data?session_hash={session}", timeout=300) as stream:
        for raw in stream:
            line = raw.decode("utf-8").strip()
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue stream ended without a result")


def _seed_id(kb) -> str:
    return next(d["doc_id"] for d in kb.documents() if d["title"] == SEED_TITLE)


def test_a_delete_through_the_queue_api_needs_the_admin_login(guarded):
    (url, kb, app), _ = guarded
    doc_id = _seed_id(kb)
    value = json.dumps({"v": 1, "selected": [doc_id]})
    refused = queue_call(url, app, "remove_selected", [value, None], trigger="rag-docs")
    assert refused["success"]
    assert "需要管理员登录" in refused["output"]["data"][0]
    assert [d["doc_id"] for d in kb.documents()] == [doc_id]
    # a wrong token does not log in; the right one does, for that session only
    session = uuid.uuid4().hex
    queue_call(url, app, "login", ["", "wrong"], session=session)
    assert "需要管理员登录" in queue_call(url, app, "remove_selected", [value, None], session=session,
                                          trigger="rag-docs")["output"]["data"][0]
    queue_call(url, app, "login", ["", TOKEN], session=session)
    done = queue_call(url, app, "remove_selected", [value, None], session=session, trigger="rag-docs")
    assert "已删除 1 篇" in done["output"]["data"][0]
    assert kb.documents() == []


@pytest.mark.browser
def test_read_only_refuses_writes_and_shows_no_upload(guarded, browser):
    _, (url, kb, app) = guarded
    assert "upload" not in {fn.name for fn in app.fns.values()}
    assert "remove_selected" not in {fn.name for fn in app.fns.values()}
    with opened(browser, url) as page:
        page.get_by_role("tab", name="知识库").click()
        page.wait_for_selector(".rag-doc-title")
        assert "只读模式" in page.locator("#rag-read-only").inner_text()
        assert page.locator("#rag-upload").count() == 0 and page.locator("#rag-doc-delete").count() == 0
        # reading still works
        page.locator(".rag-doc-title").first.click()
        page.locator("#rag-doc-preview").wait_for()
    assert len(kb.documents()) == 1


@pytest.mark.browser
def test_admin_login_in_the_page(guarded, browser, tmp_path):
    (url, kb, _), _ = guarded
    note = tmp_path / "note.txt"
    note.write_text("寿阳县公告\n2025-01-02\n\n寿阳县今年新建村级图书室24个。\n", encoding="utf-8")
    with opened(browser, url) as page:
        page.get_by_role("tab", name="知识库").click()
        page.locator("#rag-upload input[type=file]").set_input_files([str(note)])
        page.locator("#rag-upload").get_by_text("note").first.wait_for()
        page.locator("#rag-add").click()
        page.wait_for_function("() => /管理员登录/.test(document.querySelector('#rag-upload-msg')?.innerText || '')")
        page.locator("#rag-login-password input").fill(TOKEN)
        page.locator("#rag-login-btn").click()
        page.wait_for_function("() => /已以管理员身份登录/.test(document.querySelector('#rag-login-msg')?.innerText || '')")
        page.locator("#rag-add").click()
        page.wait_for_function("() => /已添加/.test(document.querySelector('#rag-upload-msg')?.innerText || '')")
    assert any(d["title"] == "寿阳县公告" for d in kb.documents())


# -- written answers through an LLM endpoint (issue 14) -------------------------------------
# The app's generator points at the scripted chat-completions server of conftest.py, which
# each test scripts; what is tested is the page's handling: the extracted answer first, the
# written one streamed after it, the stop button, the failure notice, no call on abstention.
ABSTAINED_QUESTION = "北京有几所大学"  # the seed index holds nothing on it: confidence 0


@pytest.fixture(scope="module")
def llm_webapp(seed_index, tmp_path_factory):
    """(url, kb, chat): the app with written answers from the scripted server ``chat``."""
    from rag.answering import Generator

    chat = ChatServer()
    generator = Generator(chat.url, "scripted-model", timeout=60)
    try:
        with _serving(seed_index, tmp_path_factory.mktemp("llm") / "index", generator=generator) as (url, kb, _):
            yield url, kb, chat
    finally:
        chat.close()


def _answer_number(kb, question: str) -> int:
    """The [n] of the passage that holds the extracted answer, as the page numbers them."""
    return kb.answer(question).span.passage + 1


@pytest.mark.browser
def test_written_answer_streams_after_the_extracted_answer_and_stops(llm_webapp, browser):
    url, kb, chat = llm_webapp
    chat.reset()
    n = _answer_number(kb, SEED_QUESTION)
    first, rest = f"晋中有7家省级博士创新站[{n}]", f"，还建立了3家院士(专家)工作站[{n}]。"
    chat.script = [hold(chat, first, rest), trickle(chat, pieces=6000)]
    with opened(browser, url, PHONE, "dark") as page:
        send(page, SEED_QUESTION)
        turn = page.locator(".rag-turn").nth(0)
        written = turn.locator(".rag-written")
        # the extracted answer and the sources are there at once; the written answer's first
        # piece follows while the endpoint still holds the rest
        written.locator(".rag-written-text", has_text=first).wait_for()
        assert written.locator(".rag-written-checks").count() == 0  # not the end: the server holds the rest
        assert turn.locator(".rag-answer-text").inner_text() == "7家"
        assert turn.locator("details.rag-source").count() >= 1
        assert page.evaluate(IN_VIEW_JS, ".rag-turn:last-child .rag-answer-text") == "ok"
        assert written.locator(".rag-written-stop").is_visible()
        assert "scripted-model" in written.locator(".rag-written-model").inner_text()
        for selector in (".rag-written-text", ".rag-written-label", ".rag-written-model"):
            assert contrast(page, selector) >= 4.5, selector
        body = chat.requests[0]["body"]
        assert body["stream"] is True and body["messages"][-1]["content"].endswith(f"问题：{SEED_QUESTION}")
        assert SEED_SENTENCE in body["messages"][-1]["content"]

        # nothing waits for it: a follow-up is answered, and its written answer streams too
        send(page, FOLLOW_UP)
        second = page.locator(".rag-turn").nth(1)
        second.locator(".rag-written-text", has_text="晋中晋中").wait_for()
        assert "国家博士后科研站" in second.locator(".rag-rewrite").inner_text()
        history = chat.requests[1]["body"]["messages"]
        assert [m["content"] for m in history[1:3]] == [SEED_QUESTION, "7家"]  # the turn before

        # 停止生成 stops the stream and hangs up on the endpoint; what came stays, marked
        second.locator(".rag-written-stop").click()
        assert chat.client_gone.wait(60), "the endpoint kept streaming after 停止生成"
        notice = second.locator(".rag-written-notice")
        notice.wait_for()
        assert notice.inner_text() == "已停止生成，以上回答不完整"
        assert second.locator(".rag-written-text").inner_text().startswith("晋中晋中")
        assert second.locator(".rag-written-stop").count() == 0
        assert second.locator("details.rag-source").count() >= 1  # the sources stay

        # the first one ends when the endpoint sends the rest: checked, citations listed
        chat.release.set()
        checks = written.locator(".rag-written-checks")
        checks.wait_for()
        assert written.locator(".rag-written-text").inner_text() == first + rest
        assert checks.inner_text() == f"引用：[{n}]"
        assert written.locator(".rag-written-stop").count() == 0
        assert contrast(page, ".rag-written-checks") >= 4.5
        assert turn.locator(".rag-answer-text").inner_text() == "7家"
        # it is kept with the conversation
        page.reload()
        page.locator(".rag-turn .rag-written-checks").first.wait_for()
        assert page.locator(".rag-written-notice").first.inner_text() == "已停止生成，以上回答不完整"
    assert len(chat.requests) == 2


@pytest.mark.browser
def test_a_failing_endpoint_gives_a_notice_and_abstention_calls_nothing(llm_webapp, browser):
    url, _, chat = llm_webapp
    chat.reset()
    chat.script = [status(500)]
    with opened(browser, url) as page:
        reply = ask(page, SEED_QUESTION)
        notice = reply.locator(".rag-written-notice")
        notice.wait_for()
        assert notice.inner_text() == "生成式回答不可用：服务端出错（HTTP 500），以下为抽取的答案与出处"
        assert reply.locator(".rag-written-text").count() == 0 and reply.locator(".rag-written-stop").count() == 0
        assert reply.locator(".rag-answer-text").inner_text() == "7家"  # the extracted answer stays
        assert reply.locator("details.rag-source").count() >= 1
        assert contrast(page, ".rag-written-notice") >= 4.5
        assert len(chat.requests) == 1
        # retrieval abstains: the page says so and the endpoint is not called
        reply = ask(page, ABSTAINED_QUESTION)
        assert reply.locator(".rag-notfound").count() == 1
        assert reply.locator(".rag-written").count() == 0
        assert len(chat.requests) == 1
        # and the chat goes on
        assert ask(page, SEED_QUESTION).locator(".rag-written-notice").inner_text().startswith("生成式回答不可用")
    assert len(chat.requests) == 2


# -- dates and titles from what a document shows (issue 10, defect 5) -------------------------
DATED_PAGE = """<html><head><meta charset="utf-8"><title>关于进一步优化营商环境的若干措施_某某市人民政府</title></head>
<body><div><a href="/">首页</a> <a href="/zw">政务公开</a></div>
<div class="article"><h1>关于进一步优化营商环境的若干措施</h1>
<div class="info">2025年3月18日 来源：某某市发展和改革委员会</div>
<p>为进一步激发市场主体活力，结合我市实际，制定以下措施。</p>
<p>一、持续深化“放管服”改革。企业开办时间压缩至1个工作日以内。</p>
</div><div class="footer">版权所有 某某市人民政府 2025</div></body></html>"""
REPORT_TEXT = ("2026年山西省政府工作报告\n——2026年2月2日在山西省第十四届人民代表大会第五次会议上\n"
               "今年要新建70个博士创新站，引进高层次人才1000人。\n")
WQY_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


@pytest.fixture(scope="module")
def dated_files(tmp_path_factory) -> list[Path]:
    """An HTML page, a text report and a PDF printed from a browser (its metadata title is
    about:blank), each dated only in its visible header; made once for the four runs."""
    if not WQY_FONT.exists():
        pytest.skip("fonts-wqy-microhei is missing")
    from fpdf import FPDF

    folder = tmp_path_factory.mktemp("dated")
    page_file = folder / "yingshang.html"
    page_file.write_text(DATED_PAGE, encoding="utf-8")
    report = folder / "shanxi_report.txt"
    report.write_text(REPORT_TEXT, encoding="utf-8")
    printed = folder / "printed.pdf"
    pdf = FPDF()
    pdf.add_page()
    pdf.add_font("cjk", fname=str(WQY_FONT))
    pdf.set_font("cjk", size=12)
    pdf.set_title("about:blank")
    for line in ("晋中市人才工作情况通报", "2024年10月7日", "晋中市已建成7家省级博士创新站。"):
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(printed))
    return [page_file, report, printed]


@pytest.mark.browser
@MATRIX
def test_uploads_are_dated_and_titled_from_their_visible_header(webapp, browser, dated_files, size, scheme):
    url, kb = webapp
    before = len(kb.documents())
    expected = {"关于进一步优化营商环境的若干措施": "2025-03-18", "2026年山西省政府工作报告": "2026-02-02",
                "晋中市人才工作情况通报": "2024-10-07"}
    with opened(browser, url, size, scheme) as page:
        report_lines = upload(page, dated_files)
        assert report_lines.count("：已添加") == 3, report_lines
        for title, date in expected.items():
            row = doc_row(page, title)
            row.wait_for()
            assert row.locator(".rag-doc-cell").first.inner_text().startswith(date), title
        assert page.locator(".rag-doc-title", has_text="about:blank").count() == 0
        assert_readable(page, "#rag-upload-msg .rag-notice-head", "#rag-upload-msg li", ".rag-doc-title", ".rag-doc-cell")
        assert "已删除 3 篇" in delete_documents(page, list(expected))
    assert len(kb.documents()) == before
