"""The web app, driven in a real browser (Playwright + Debian's chromium) and through its API.

One in-process server on a free port serves a temporary copy of the seed index for the
whole session. Browser tests are skipped when /usr/bin/chromium is missing; the API tests
need no browser.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_SERVER_NAME", "127.0.0.1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import rag  # noqa: F401  (sets the offline environment before gradio is imported)

from .conftest import SEED_QUESTION

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 60_000

UPLOAD_NAME = "taigu_digital_farming.txt"
UPLOAD_TEXT = (
    "太谷区数字农业建设情况通报\n2024-05-01\n\n"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def webapp(seed_index, tmp_path_factory):
    """(url, kb): the app serving a private copy of the seed index, started once."""
    from rag import KnowledgeBase
    from rag.webapp import build_app, launch

    folder = tmp_path_factory.mktemp("webapp") / "index"
    shutil.copytree(seed_index, folder)
    kb = KnowledgeBase(folder)
    app = build_app(kb)
    url = launch(app, "127.0.0.1", _free_port(), block=False, quiet=True)
    yield url.rstrip("/"), kb
    app.close()


@pytest.fixture(scope="session")
def browser_context():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium fonts-wqy-microhei)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
        context.requests = []  # every URL any page of this context asked for
        context.on("request", lambda request: context.requests.append(request.url))
        yield context
        context.close()
        browser.close()


@pytest.fixture
def page(webapp, browser_context):
    url, _ = webapp
    page = browser_context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url + "/")
    page.wait_for_selector("#rag-question textarea")
    page.wait_for_selector("#rag-stat-docs")
    yield page
    page.close()
    outside = sorted({u for u in browser_context.requests if urlsplit(u).hostname not in LOCAL_HOSTS
                      and not u.startswith(("data:", "blob:", "about:"))})
    assert not outside, f"requests left the machine: {outside}"


def ask(page, question: str) -> None:
    """Type ``question``, send it, and wait for its reply to be rendered."""
    before = page.locator(".rag-reply:not(.rag-muted)").count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('.rag-reply:not(.rag-muted)').length > n", arg=before, timeout=TIMEOUT_MS)


def last_reply(page):
    return page.locator(".rag-reply:not(.rag-muted)").last


def open_kb_tab(page) -> None:
    page.get_by_role("tab", name="知识库").click()
    page.wait_for_selector("#rag-upload")


def open_chat_tab(page) -> None:
    page.get_by_role("tab", name="问答").click()
    page.wait_for_selector("#rag-question textarea")


def upload(page, paths: list[Path]) -> str:
    """Upload files through the knowledge-base panel; returns the status message."""
    open_kb_tab(page)
    page.locator("#rag-upload input[type=file]").set_input_files([str(p) for p in paths])
    for p in paths:  # the files are on the server once the component lists them
        page.locator("#rag-upload").get_by_text(p.stem).first.wait_for()
    page.locator("#rag-add").click()
    page.wait_for_function(
        "() => /已处理|未添加/.test(document.querySelector('#rag-upload-msg')?.innerText || '')", timeout=TIMEOUT_MS)
    return page.locator("#rag-upload-msg").inner_text()


def table_cell(page, text: str):
    """The visible table cell holding ``text`` (the table also keeps hidden copies of cells)."""
    return page.locator("#rag-docs").get_by_text(text, exact=False).filter(visible=True).first


def delete_document(page, title: str) -> str:
    open_kb_tab(page)
    table_cell(page, title).click()  # a click on the row picks it
    page.wait_for_function(
        "t => (document.querySelector('#rag-doc-pick input')?.value || '').includes(t)", arg=title)
    page.locator("#rag-delete").click()
    page.wait_for_function(
        "() => /已删除|删除失败/.test(document.querySelector('#rag-upload-msg')?.innerText || '')")
    return page.locator("#rag-upload-msg").inner_text()


# -- browser tests -----------------------------------------------------------------------
def test_first_load_offers_examples_and_stats(page):
    chat = page.locator("#rag-chat")
    assert chat.get_by_text(SEED_QUESTION).first.is_visible()
    assert page.locator("#rag-stat-docs").inner_text().startswith("1")
    assert page.title() == "政策文件问答"


def test_seed_question_answer_and_highlighted_source(page):
    ask(page, SEED_QUESTION)
    reply = last_reply(page)
    answer = reply.locator("strong.rag-answer-text")
    assert answer.inner_text() == "7家"
    assert "7家" in reply.locator(".rag-evidence mark.rag-span").inner_text()
    card = reply.locator("details.rag-source-answer")
    assert card.count() == 1
    assert card.locator(".rag-snippet mark.rag-span").inner_text() == "7家"
    assert "7家省级博士创新站" in card.locator(".rag-snippet .rag-sentence").inner_text()
    assert "山西晋中:统筹推进教育科技人才一体改革" in card.locator(".rag-title").inner_text()
    meta = card.locator(".rag-meta").inner_text()
    assert "2024-10-07" in meta and "jinzhong_education_science_talent.txt" in meta and "相关度" in meta
    # a click on the source opens the surrounding text of the article
    context = card.locator(".rag-context")
    assert not context.is_visible()
    card.locator("summary").click()
    context.wait_for(state="visible")
    text = context.inner_text()
    assert "人才队伍不断壮大" in text or "国家博士后科研站" in text
    assert context.locator(".rag-passage").count() == 1


def test_example_click_asks_it(page):
    page.locator("#rag-chat").get_by_text("市科技局局长是谁").first.click()
    page.wait_for_selector(".rag-reply:not(.rag-muted)")
    assert last_reply(page).locator(".rag-answer-text").inner_text() == "郭海成"


def test_followup_keeps_the_subject_and_clear_resets(page):
    ask(page, SEED_QUESTION)
    ask(page, "那国家博士后科研站呢？")
    reply = last_reply(page)
    assert reply.locator(".rag-answer-text").inner_text() == "1家"
    assert "晋中有几家国家博士后科研站" in reply.locator(".rag-rewrite").inner_text()
    page.locator("#rag-clear").click()
    page.wait_for_function("() => document.querySelectorAll('.rag-reply').length === 0")
    # after clearing, the follow-up has nothing to lean on and is asked as typed
    ask(page, "那国家博士后科研站呢？")
    assert last_reply(page).locator(".rag-rewrite").count() == 0


def test_nothing_relevant_says_so_and_shows_closest_passages(page):
    ask(page, "火星探测器的着陆时间是哪一年")
    reply = last_reply(page)
    assert "未在知识库中找到" in reply.locator(".rag-notfound").inner_text()
    assert reply.locator("strong.rag-answer-text").count() == 0
    assert reply.locator(".rag-sources-head").inner_text().startswith("最接近的段落")
    assert reply.locator("details.rag-source-closest").count() >= 1


def test_upload_answer_then_delete(page, tmp_path):
    good = tmp_path / UPLOAD_NAME
    good.write_text(UPLOAD_TEXT, encoding="utf-8")
    bad = tmp_path / "broken_scan.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    message = upload(page, [good, bad])
    assert f"{UPLOAD_NAME}：已添加" in message
    assert "broken_scan.pdf" in message and "无法读取" in message
    table_cell(page, "太谷区数字农业建设情况通报").wait_for()
    assert table_cell(page, "读取失败").is_visible()  # the unreadable file is listed with its status
    assert page.locator("#rag-stat-docs").inner_text().startswith("2")

    open_chat_tab(page)
    ask(page, UPLOAD_QUESTION)
    reply = last_reply(page)
    assert reply.locator(".rag-answer-text").inner_text() == "12个"
    assert UPLOAD_NAME in reply.locator("details.rag-source-answer .rag-meta").inner_text()

    message = delete_document(page, "太谷区数字农业建设情况通报")
    assert "已删除" in message
    page.wait_for_function("() => !document.querySelector('#rag-docs').innerText.includes('太谷区数字农业')")
    assert page.locator("#rag-stat-docs").inner_text().startswith("1")

    open_chat_tab(page)
    ask(page, UPLOAD_QUESTION)
    reply = last_reply(page)
    assert "12个" not in (reply.locator(".rag-answer-text").all_inner_texts() or [""])[0]
    assert UPLOAD_NAME not in reply.inner_text()


def test_document_markup_is_shown_as_text_never_run(page, tmp_path, webapp):
    _, kb = webapp
    hostile = tmp_path / HOSTILE_NAME
    hostile.write_text(HOSTILE_TEXT, encoding="utf-8")
    try:
        assert f"{HOSTILE_NAME}：已添加" in upload(page, [hostile])
        # the title with its <script> is a plain table cell
        table_cell(page, "榆次区安全公告<script>").wait_for()
        open_chat_tab(page)
        ask(page, HOSTILE_QUESTION)
        reply = last_reply(page)
        card = reply.locator("details.rag-source", has_text="榆次区安全公告").first
        assert "<script>" in card.locator(".rag-title").inner_text()
        snippet = card.locator(".rag-snippet").inner_text()
        assert '<img src=x onerror="window.__pwned=2">' in snippet
        assert "[点我](http://evil.example/a)" in snippet and "![图](http://evil.example/x.png)" in snippet
        chat = page.locator("#rag-chat")
        assert chat.locator("script").count() == 0
        assert chat.locator("img[src='x'], img[src*='evil'], a[href*='evil']").count() == 0
        # the full-text preview escapes it too
        open_kb_tab(page)
        table_cell(page, "榆次区安全公告").click()
        preview = page.locator("#rag-doc-preview")
        preview.wait_for()
        assert "<script>" in preview.inner_text()
        assert preview.locator("script, img").count() == 0
        time.sleep(0.5)
        assert page.evaluate("() => window.__pwned") is None
        assert page.title() == "政策文件问答"
    finally:
        for doc in kb.documents():
            if doc["source"].endswith(HOSTILE_NAME):
                kb.remove([doc["doc_id"]])


# -- API tests (no browser) --------------------------------------------------------------
def _check_seed_payload(result: dict) -> None:
    assert result["answer"] == "7家"
    assert "7家省级博士创新站" in result["evidence"]
    assert result["confidence"] > 0
    top = result["passages"][result["answer_span"]["passage"]]
    assert top["title"] == "山西晋中:统筹推进教育科技人才一体改革"
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
    follow = client.predict(question="那国家博士后科研站呢？", previous=SEED_QUESTION, api_name="/ask")
    assert follow["answer"] == "1家"
    assert follow["question"] == "晋中有几家国家博士后科研站" and follow["asked"] == "那国家博士后科研站呢？"
    with pytest.raises(Exception, match="empty"):
        client.predict(question="   ", api_name="/ask")


def test_ask_endpoint_over_plain_http(webapp):
    url, _ = webapp
    body = json.dumps({"data": [SEED_QUESTION, 5, ""]}).encode()
    request = urllib.request.Request(url + "/gradio_api/call/ask", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/ask/{event_id}", timeout=60) as response:
        stream = response.read().decode("utf-8")
    assert "event: complete" in stream
    data = next(line[len("data:"):] for line in stream.splitlines() if line.startswith("data:"))
    _check_seed_payload(json.loads(data)[0])


# -- rendering (no server, no browser) ---------------------------------------------------
def _hostile_answer(found: bool = True):
    from rag.types import Answer, Passage, Span

    text = HOSTILE_TEXT.split("\n", 3)[3]
    start = text.index("15处")
    passage = Passage(text, '标题<script>alert(1)</script>', "/tmp/<b>x</b>.txt", "2024-06-01", 0.5, "d1", 0,
                      len(text))
    if not found:
        return Answer("问", None, (passage,))
    span = Span("15处", 0, start, start + 3, 0, text.index("。") + 1, 0.9, "count")
    return Answer("问", "15处", (passage,), 0.9, span, text[: text.index("。") + 1])


@pytest.mark.parametrize("found", [True, False])
def test_rendered_answer_holds_no_markup_from_the_document(found):
    from rag.webapp import render_answer

    html_out = render_answer(_hostile_answer(found), {"d1": HOSTILE_TEXT.split("\n", 3)[3]})
    for bad in ("<script", "<img", "<b>", "](", "![", "$", "{{", "\n"):
        assert bad not in html_out
    assert "&#60;script&#62;" in html_out  # shown as text
    if found:
        assert '<strong class="rag-answer-text">15处</strong>' in html_out
        assert '<mark class="rag-span">15处</mark>' in html_out
        assert html_out.count('class="rag-sentence"') == 2  # in the card and in the expanded context
    else:
        assert "未在知识库中找到" in html_out and "rag-source-closest" in html_out


def test_empty_knowledge_base_reply_says_what_to_do():
    from rag.types import Answer
    from rag.webapp import render_answer

    out = render_answer(Answer("问", None, ()))
    assert "没有找到相关内容" in out and "上传" in out


@pytest.mark.parametrize(
    ("name", "expected"),
    [("通知.txt", "通知.txt"), ("../../etc/passwd.txt", "passwd.txt"), ("a<b>:c.md", "abc.md"),
     (".hidden.txt", "hidden.txt"), ("~$draft.docx", "draft.docx"), ("", "upload.txt")],
)
def test_upload_names_keep_the_original_name_safely(name, expected):
    from rag.webapp import _safe_name

    assert _safe_name(name) == expected
