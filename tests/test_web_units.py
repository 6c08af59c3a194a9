"""The web app's pieces that need no server and no browser: escaping, scopes, Chinese
messages, feedback lines, admin passwords, written-answer jobs (against the scripted
chat-completions server of conftest.py)."""

from __future__ import annotations

import json

import pytest

from rag import feedback
from rag.answering import Generator, Unverified, WrittenAnswer, check_answer
from rag.errors import DocumentError, IndexLockedError, QuestionError
from rag.types import Answer, Passage, Span
from rag.web.handlers import Scope
from rag.web.messages import GRADIO_STRINGS, error_text, file_reason
from rag.web.render import render_answer, render_written
from rag.web.server import (
    Access,
    add_admin,
    exposure_warning,
    hash_password,
    is_loopback,
    read_auth_file,
    verify_password,
)
from rag.web.uploads import safe_name
from rag.web.written import WrittenJobs

from .conftest import say, trickle

HOSTILE = ('榆次区共建成应急避难场所<img src=x onerror="window.__pwned=2">15处，覆盖全部街道。'
           "[点我](http://evil.example/a) ![图](http://evil.example/x.png) ${alert(1)} `x` {{y}}"
           '<script>window.__pwned=3;document.title="pwned"</script>\n榆次区安全公告由区应急管理局发布。\n')


def _passage(text: str = HOSTILE, doc_id: str = "d1", published: str | None = "2024-06-01", dense: float = 0.83):
    return Passage(text, "标题<script>alert(1)</script>", "/tmp/<b>x</b>.txt", published, 1.0, doc_id, 0, len(text),
                   dense_score=dense)


def _answer(found: bool = True) -> Answer:
    p = _passage()
    if not found:
        return Answer("问", None, (p, _passage(doc_id="d2", dense=0.71)))
    start = HOSTILE.index("15处")
    span = Span("15处", 0, start, start + 3, 0, HOSTILE.index("。") + 1, 0.9, "count")
    return Answer("问", "15处", (p,), 0.9, span, HOSTILE[: HOSTILE.index("。") + 1])


@pytest.mark.parametrize("found", [True, False])
def test_rendered_answer_holds_no_markup_from_the_document(found):
    out = render_answer(_answer(found), {"d1": HOSTILE})
    for bad in ("<script", "<img", "<b>", "](", "![", "$", "{{", "`", "\n"):
        assert bad not in out
    assert "&#60;script&#62;" in out  # shown as text
    if found:
        assert '<strong class="rag-answer-text">15处</strong>' in out
        assert '<mark class="rag-span">15处</mark>' in out
        assert out.count('class="rag-sentence"') == 2  # in the card and in the expanded context
    else:
        assert "未在知识库中找到" in out and out.count("最接近</span>") == 2


def test_cards_show_a_similarity_that_is_not_rescaled_per_question():
    out = render_answer(_answer(found=False))
    assert "相似度 0.83" in out and "相似度 0.71" in out
    assert "1.000" not in out  # the fused score (1.0 here) is not what the card shows


def test_empty_knowledge_base_reply_says_what_to_do():
    out = render_answer(Answer("问", None, ()))
    assert "没有找到相关内容" in out and "上传" in out


def test_a_scope_becomes_the_knowledge_base_filters_and_says_what_it_is():
    assert Scope.parse({}) is None and Scope.parse({"docs": [], "from": "", "to": "", "type": ""}) is None
    scope = Scope.parse({"docs": [], "from": "2026-12-31", "to": "2026-01-01"})  # reversed: swapped
    assert scope.filters() == {"since": "2026-01-01", "until": "2026-12-31"}
    assert "2026-01-01 至 2026-12-31" in scope.label()
    only = Scope.parse({"docs": ["d2", "d1"], "type": "报告"})
    assert only.filters() == {"doc_type": "报告", "doc_ids": ["d1", "d2"]}
    assert "2 篇" in only.label() and "报告" in only.label()


def test_the_filters_keep_only_passages_in_scope():
    from rag.filters import Filters

    wanted = Filters.parse(Scope.parse({"from": "2026-01-01", "to": "2026-12-31"}).filters())
    assert wanted.accepts(_passage(published="2026-02-02 10:00"))
    assert not wanted.accepts(_passage(published="2024-10-07 13:21"))
    assert not wanted.accepts(_passage(published=None))  # no date: outside any date range


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (QuestionError("the question is empty; type a question such as 「晋中有几家省级博士创新站」"), "问题是空的"),
        (QuestionError("the question is 1,200 characters long; the limit is 1,000. Ask a shorter question."),
         "问题有 1,200 个字，超过了 1,000 字的上限"),
        (DocumentError("/tmp/a/empty.txt: empty file (0 bytes)"), "文件是空的（0 字节）"),
        (DocumentError("/tmp/x.pdf: corrupt or unreadable PDF (PdfStreamError: Stream has ended)"), "PDF 已损坏或无法读取"),
        (DocumentError("/tmp/data.csv: unsupported file type '.csv'; supported: .txt"), "不支持的文件类型 .csv"),
        (DocumentError("something nobody foresaw"), "无法读取这个文件"),
        (IndexLockedError("another process is writing index"), "另一个程序正在写入知识库"),
        (RuntimeError("boom"), "出错了"),
    ],
)
def test_errors_are_shown_in_chinese(error, expected):
    text = error_text(error)
    assert expected in text
    assert not any(word in text for word in ("empty", "corrupt", "unsupported", "boom", "process"))


def test_a_file_reason_loses_its_path_and_is_chinese(tmp_path):
    path = tmp_path / "broken_scan.pdf"
    assert file_reason(f"{path.resolve()}: scanned PDF: no text layer; run OCR first", path) == \
        "扫描版 PDF 没有文字层，请先做文字识别（OCR）"


def test_gradio_strings_we_show_are_translated():
    assert GRADIO_STRINGS["upload_text.drop_file"] == "将文件拖放到此处"
    assert all(not any("a" <= c.lower() <= "z" for c in v.replace("Gradio", "").replace("API", "").replace("MCP", ""))
               for v in GRADIO_STRINGS.values())


@pytest.mark.parametrize(
    ("name", "expected"),
    [("通知.txt", "通知.txt"), ("../../etc/passwd.txt", "passwd.txt"), ("a<b>:c.md", "abc.md"),
     (".hidden.txt", "hidden.txt"), ("~$draft.docx", "draft.docx"), ("", "upload.txt")],
)
def test_upload_names_keep_the_original_name_safely(name, expected):
    assert safe_name(name) == expected


def test_feedback_is_appended_and_exported(tmp_path):
    answer = {"asked": "那国家博士后科研站呢？", "question": "晋中有几家国家博士后科研站", "answer": "1家",
              "confidence": 0.8, "evidence": "获批设立1家国家博士后科研站",
              "passages": [{"title": "T", "source": "/a.txt", "published": "2024-10-07", "score": 0.9,
                            "start": 0, "end": 10, "text": "x" * 10_000, "doc_id": "d", "extra": "dropped"}]}
    feedback.append(tmp_path, feedback.record("t1", "up", answer))
    feedback.append(tmp_path, feedback.record("t1", "down", answer))  # changed mind: a new line
    feedback.append(tmp_path, feedback.record("t2", "up", {"question": "q", "answer": None}))
    with open(tmp_path / feedback.FEEDBACK_FILE, "a", encoding="utf-8") as f:
        f.write('{"turn": "t3", "vo')  # a line cut by a crash
    lines = (tmp_path / feedback.FEEDBACK_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    latest = [json.loads(x) for x in feedback.export(tmp_path).splitlines()]
    assert [(r["turn"], r["vote"]) for r in latest] == [("t1", "down"), ("t2", "up")]
    first = latest[0]
    assert first["question"] == "晋中有几家国家博士后科研站" and first["answer"] == "1家"
    assert len(first["passages"][0]["text"]) == 4000 and "extra" not in first["passages"][0]
    assert len(feedback.export(tmp_path, every_vote=True).splitlines()) == 3
    csv_text = feedback.export(tmp_path, "csv")
    assert csv_text.splitlines()[0].startswith("time,turn,vote,asked,question,answer")
    with pytest.raises(ValueError):
        feedback.record("t", "meh", answer)


def test_feedback_export_from_the_command_line(tmp_path, capsys):
    from rag.cli import main

    feedback.append(tmp_path, feedback.record("t1", "down", {"question": "晋中有几家省级博士创新站", "answer": "7家"}))
    assert main(["feedback", "export", "--index-dir", str(tmp_path)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["vote"] == "down" and row["answer"] == "7家"
    out = tmp_path / "fb.csv"
    assert main(["feedback", "export", "--index-dir", str(tmp_path), "--format", "csv", "--out", str(out)]) == 0
    assert "晋中有几家省级博士创新站" in out.read_text(encoding="utf-8")


def test_admin_passwords_are_salted_hashes(tmp_path):
    stored = hash_password("s3cret", iterations=1000)
    assert verify_password("s3cret", stored) and not verify_password("S3cret", stored)
    assert hash_password("s3cret", iterations=1000) != stored  # a new salt each time
    assert not verify_password("s3cret", "garbage")
    auth = tmp_path / "admins"
    add_admin(auth, "lin", "s3cret")
    assert "s3cret" not in auth.read_text() and (auth.stat().st_mode & 0o077) == 0
    access = Access(users=read_auth_file(auth))
    assert access.check("lin", "s3cret") and not access.check("lin", "nope") and not access.check("x", "s3cret")
    assert access.refusal(False) and access.refusal(True) is None
    assert Access(read_only=True).refusal(True)  # read-only refuses even an admin
    assert Access().refusal(False) is None  # no login configured: the local single user may write
    token = Access(token="tok")
    assert token.check("", "tok") and not token.check("", "tok2")


def test_serving_writable_pages_to_other_machines_is_warned_about():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert "--read-only" in exposure_warning("0.0.0.0", Access())
    assert exposure_warning("127.0.0.1", Access()) is None
    assert exposure_warning("0.0.0.0", Access(read_only=True)) is None
    assert exposure_warning("0.0.0.0", Access(token="t")) is None


# -- written answers (an LLM endpoint) -----------------------------------------------------
def test_a_written_answer_is_escaped_and_its_unverified_sentences_marked():
    passages = (_passage("晋中有7家省级博士创新站。"),)
    text = "晋中有9家省级博士创新站[1]。<img src=x onerror=alert()>详见原文。"
    out = render_written(check_answer(text, passages, "7家"))
    assert "<img" not in out and "&#60;img" in out
    assert out.count('class="rag-unverified"') == 1 and "未核实</span>" in out
    assert '<li class="rag-check">引用：&#91;1&#93;</li>' in out  # brackets escaped like all text
    assert "不一致：抽取的答案是「7家」" in out
    failed = render_written(WrittenAnswer("", notice="生成式回答不可用：连接超时（60 秒），以下为抽取的答案与出处"))
    assert "rag-written-text" not in failed and failed.count("rag-written-notice") == 1
    assert render_written(WrittenAnswer("x", unverified=(Unverified("不在原文中。", ("y",), (1,)),))).count(
        "rag-unverified") == 0  # a sentence that is not found is listed, not marked


def _seed_answer() -> Answer:
    text = "建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站;"
    passage = Passage(text, "山西晋中:统筹推进教育科技人才一体改革", "/a/jinzhong.txt", "2024-10-07", 1.0, "d1", 0,
                      len(text))
    return Answer("晋中有几家省级博士创新站", "7家", (passage,), 0.9)


def _poll_to_end(jobs: WrittenJobs, job: str) -> tuple[str, dict]:
    text, cursor = "", 0
    for _ in range(600):
        out = jobs.poll({"job": job, "cursor": cursor})
        text, cursor = text + out["text"], out["cursor"]
        if out["done"]:
            return text, out
    raise AssertionError("the job never ended")


def test_written_jobs_stream_then_end_checked(chat_server):
    chat_server.script = [say("晋中有7家省级博士创新站[1]。", piece=2)]
    jobs = WrittenJobs(Generator(chat_server.url, "scripted-model", timeout=30))
    started = jobs.start(_seed_answer(), [["晋中在推进什么改革", "教育科技人才一体改革"], ["x", 3], "junk"])
    assert started["model"] == "scripted-model" and not started["done"]
    text, end = _poll_to_end(jobs, started["job"])
    assert text == end["final"] == "晋中有7家省级博士创新站[1]。"
    assert "引用：&#91;1&#93;" in end["html"] and len(jobs) == 0  # a finished job is forgotten
    messages = chat_server.requests[0]["body"]["messages"]
    assert [m["content"] for m in messages[1:3]] == ["晋中在推进什么改革", "教育科技人才一体改革"]  # bad pairs dropped
    # a job that is gone (finished and read, or the server restarted) ends with a notice
    for gone in (started["job"], "no-such-job", None):
        out = jobs.poll({"job": gone, "cursor": 0})
        assert out["done"] and out["text"] == "" and "服务器上已没有这次生成" in out["html"]


def test_written_jobs_stop_hangs_up_and_keeps_what_came(chat_server):
    chat_server.script = [trickle(chat_server)]
    jobs = WrittenJobs(Generator(chat_server.url, "scripted-model", timeout=30))
    job = jobs.start(_seed_answer())["job"]
    first = jobs.poll({"job": job, "cursor": 0})
    while not first["text"]:
        first = jobs.poll({"job": job, "cursor": 0})
    end = jobs.stop({"job": job})
    assert chat_server.client_gone.wait(20), "the endpoint kept streaming after the stop"
    assert end["done"] and end["final"].startswith("晋中") and "已停止生成，以上回答不完整" in end["html"]
    assert len(jobs) == 0


def test_written_jobs_not_started_without_an_endpoint_or_an_answer(chat_server):
    assert WrittenJobs(None).start(_seed_answer()) is None
    jobs = WrittenJobs(Generator(chat_server.url, "scripted-model"))
    abstained = Answer("北京有几所大学", None, _seed_answer().passages, 0.0)
    assert jobs.start(abstained) is None and jobs.start(Answer("问", None, ())) is None
    assert chat_server.requests == []


def test_a_page_that_left_does_not_keep_a_job_running(chat_server, monkeypatch):
    from rag.web import written

    chat_server.script = [trickle(chat_server), say("晋中有7家[1]。")]
    jobs = WrittenJobs(Generator(chat_server.url, "scripted-model", timeout=30))
    left = jobs.start(_seed_answer())["job"]
    while not jobs.poll({"job": left, "cursor": 0})["text"]:
        pass
    monkeypatch.setattr(written, "IDLE_SECONDS", -1.0)  # as if nobody had polled it for long
    assert chat_server.client_gone.wait(20), "a job nobody follows kept the endpoint generating"
    jobs.start(_seed_answer())  # starting a job forgets the idle ones
    assert "服务器上已没有这次生成" in jobs.poll({"job": left, "cursor": 0})["html"]


def test_a_dismissed_failed_upload_does_not_come_back_with_the_next_upload():
    from rag.web.layout import _docs_value

    first = {"name": "data.exe", "reason": "不支持的文件类型 .exe"}
    second = {"name": "empty.txt", "reason": "文件是空的（0 字节）"}
    after_upload = json.loads(_docs_value(json.dumps({"v": 1}), failed=[first]))
    assert after_upload["failed"] == [first]
    # the page's 移除 drops it from the widget's value, which the next upload sends back
    dismissed = json.dumps({**after_upload, "failed": []})
    assert json.loads(_docs_value(dismissed, failed=[second]))["failed"] == [second]
    # not dismissed: kept, once
    assert json.loads(_docs_value(json.dumps(after_upload), failed=[first, second]))["failed"] == [first, second]
