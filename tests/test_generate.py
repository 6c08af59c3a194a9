"""Written answers through an OpenAI-compatible endpoint: the protocol and our handling of it.

A scripted chat-completions server runs in the test process (http.server on 127.0.0.1, a
free port); it returns the replies each test scripts and records every request. No real
model is involved: what is tested is what we own -- the request we send, the parsing of
whole and streamed replies, the grounding checks and the failure notices.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import pytest

from rag import KnowledgeBase
from rag.answering import (
    Generator,
    StopSignal,
    WrittenAnswer,
    check_answer,
    should_generate,
    stream_answer,
    write_answer,
)
from rag.answering.generate import default_prompt
from rag.cli import main as cli_main
from rag.errors import RagError
from rag.types import Answer, Passage

from .conftest import (
    REPO,
    SEED_QUESTION,
    SEED_SENTENCE,
    ChatServer,
    chunk,
    raw,
    say,
    send_reply,
    sse_event,
    sse_head,
    stall_after,
    status,
    trickle,
)


@pytest.fixture
def server(chat_server):
    return chat_server


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("RAG_LLM_API_KEY", raising=False)


# -- answers to write about --------------------------------------------------------------

PASSAGES = (
    Passage("建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站;举办博士大讲堂331场;",
            "山西晋中:统筹推进教育科技人才一体改革", "/a/jinzhong.txt", "2024-10-07 13:21", 1.0, "d1", 100, 150),
    Passage("太原市今年新建公园12座，城市绿化覆盖率达到43%。", "太原市城市建设", "/a/taiyuan.txt", None, 0.4,
            "d2", 0, 25),
)
QUESTION = "晋中有几家省级博士创新站"
ANSWER = Answer(QUESTION, "7家", PASSAGES, confidence=0.9)


def generator(server: ChatServer, **kw) -> Generator:
    return Generator(server.url, "scripted-model", **kw)


def streamed(answer: Answer, gen: Generator, history=()) -> tuple[list[str], WrittenAnswer | None]:
    pieces, final = [], None
    for item in stream_answer(answer, gen, history):
        if isinstance(item, WrittenAnswer):
            assert final is None, "exactly one result, last"
            final = item
        else:
            assert final is None and isinstance(item, str)
            pieces.append(item)
    return pieces, final


def ask(answer: Answer, gen: Generator, stream: bool, history=()) -> WrittenAnswer | None:
    return streamed(answer, gen, history)[1] if stream else write_answer(answer, gen, history)


# -- the request ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_request_carries_prompt_history_passages_and_question(server, monkeypatch, stream):
    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-test-123")
    history = [("太原新建了几座公园", "太原新建公园12座[2]。")]
    result = ask(ANSWER, generator(server, max_tokens=321, temperature=0.1), stream, history)
    assert result is not None and result.text == "晋中有7家省级博士创新站[1]。"
    [req] = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test-123"
    body = req["body"]
    assert body["model"] == "scripted-model" and body["stream"] is stream
    assert body["max_tokens"] == 321 and body["temperature"] == 0.1
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == default_prompt()
    assert messages[1]["content"] == "太原新建了几座公园"
    assert messages[2]["content"] == "太原新建公园12座。"  # old [n] named other passages
    last = messages[-1]["content"]
    assert last.endswith(f"问题：{QUESTION}")
    assert "[1] 《山西晋中:统筹推进教育科技人才一体改革》（2024-10-07 13:21）" in last
    assert PASSAGES[0].text in last and PASSAGES[1].text in last
    assert last.index("[1] ") < last.index("[2] 《太原市城市建设》")


def test_no_api_key_no_authorization_header(server):
    write_answer(ANSWER, generator(server))
    assert "Authorization" not in server.requests[0]["headers"]


def test_prompt_file_states_the_citation_rule():
    prompt = default_prompt()
    assert "[1]" in prompt and "编号" in prompt and "资料中没有" in prompt
    assert Generator("http://127.0.0.1:1/v1", "m").prompt == prompt
    assert Generator("http://127.0.0.1:1/v1", "m", prompt="自定义").prompt == "自定义"


@pytest.mark.parametrize("url, endpoint", [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:11434/v1/", "http://127.0.0.1:11434/v1/chat/completions"),
    ("http://gateway.local:8080", "http://gateway.local:8080/v1/chat/completions"),
    ("https://llm.example/api/v1/chat/completions", "https://llm.example/api/v1/chat/completions"),
])
def test_endpoint_from_base_url(url, endpoint):
    assert Generator(url, "m").endpoint == endpoint


@pytest.mark.parametrize("kwargs, words", [
    ({"base_url": "127.0.0.1:8000/v1", "model": "m"}, "http://"),
    ({"base_url": "ftp://host/v1", "model": "m"}, "http://"),
    ({"base_url": "http://127.0.0.1:8000/v1", "model": " "}, "model"),
    ({"base_url": "http://127.0.0.1:8000/v1", "model": "m", "timeout": 0}, "timeout"),
])
def test_bad_settings_are_clear_errors(kwargs, words):
    with pytest.raises(RagError, match=words):
        Generator(**kwargs)


def test_api_key_is_not_stored_on_the_generator(monkeypatch):
    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-secret-999")
    gen = Generator("http://127.0.0.1:8000/v1", "m")
    assert "sk-secret-999" not in repr(gen) and "sk-secret-999" not in repr(vars(gen))


# -- replies, whole and streamed -----------------------------------------------------------


def test_stream_yields_pieces_then_the_checked_result(server):
    server.script = [say("晋中有7家省级博士创新站[1]，还建立了3家院士(专家)工作站[1]。", piece=2)]
    pieces, final = streamed(ANSWER, generator(server))
    assert len(pieces) > 5 and "".join(pieces) == final.text
    assert final.citations == (1,) and final.bad_citations == () and final.unverified == ()
    assert final.disagreement is None and final.notice is None
    assert final.check_lines() == ["引用：[1]"]


def test_a_server_that_ignores_stream_true_still_works(server):
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "晋中有7家[1]。"},
                          "finish_reason": "stop"}]}
    server.script = [lambda h, body: send_reply(h, 200, "application/json", json.dumps(reply).encode())]
    pieces, final = streamed(ANSWER, generator(server))
    assert pieces == ["晋中有7家[1]。"] and final.text == "晋中有7家[1]。" and final.notice is None


@pytest.mark.parametrize("stream", [False, True])
def test_a_leading_think_block_is_not_shown(server, stream):
    server.script = [say("<think>用户问的是数量，也许是8家。</think>\n晋中有7家省级博士创新站[1]。")]
    if stream:
        pieces, final = streamed(ANSWER, generator(server))
        assert "think" not in "".join(pieces) and "8家" not in "".join(pieces)
    else:
        final = write_answer(ANSWER, generator(server))
    assert final.text == "晋中有7家省级博士创新站[1]。" and final.disagreement is None


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_cut_at_max_tokens_says_so(server, stream):
    server.script = [say("晋中有7家省级博士创新站[1]，", finish="length")]
    final = ask(ANSWER, generator(server, max_tokens=12), stream)
    assert final.text == "晋中有7家省级博士创新站[1]，"
    assert "长度上限" in final.notice and "12" in final.notice


# -- grounding -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_an_ungrounded_number_is_flagged(server, stream):
    server.script = [say("晋中有7家省级博士创新站[1]。晋中还有12家国家级博士创新站[1]。")]
    final = ask(ANSWER, generator(server), stream)
    [flag] = final.unverified
    assert flag.sentence == "晋中还有12家国家级博士创新站[1]。" and flag.missing == ("12家",) and flag.cited == (1,)
    assert final.text.startswith("晋中有7家")  # kept, flagged, not removed
    assert "未核实：「晋中还有12家国家级博士创新站[1]。」（出处中没有：12家）" in final.check_lines()


def test_a_number_is_checked_against_the_passage_it_cites_only():
    # 12 is in passage 2, but the sentence cites passage 1
    final = check_answer("晋中新建公园12座[1]。太原新建公园12座[2]。", PASSAGES, None)
    assert [u.sentence for u in final.unverified] == ["晋中新建公园12座[1]。"]


def test_numbers_match_across_writing_styles():
    text = ("晋中有七家省级博士创新站[1]，举办博士大讲堂三百三十一场[1]。"
            "该文发布于2024年10月7日[1]。太原绿化覆盖率43%[2]。")
    assert check_answer(text, PASSAGES, "7家").unverified == ()


def test_uncited_facts_and_names_are_flagged_but_plain_sentences_are_not():
    text = "晋中有7家省级博士创新站[1]。北京市也有类似做法[1]。全市共建成5家。以上就是资料的内容。"
    final = check_answer(text, PASSAGES, None)
    described = {u.sentence: u for u in final.unverified}
    assert set(described) == {"北京市也有类似做法[1]。", "全市共建成5家。"}
    assert described["北京市也有类似做法[1]。"].missing == ("北京市",)
    assert described["全市共建成5家。"].cited == () and "未注明出处" in described["全市共建成5家。"].describe()


def test_quoted_terms_must_be_in_the_cited_passage():
    final = check_answer("晋中设立了「省级博士创新站」[1]和「人才强市」[1]。", PASSAGES, None)
    [flag] = final.unverified
    assert flag.missing == ("人才强市",)


def test_citation_forms():
    text = "晋中有7家[1,2]。太原有12座【2】。见[1-2]与［1］。国发[2024]5号文件另有规定[1]。"
    final = check_answer(text, PASSAGES, None)
    assert final.citations == (1, 2) and final.bad_citations == ()  # [2024] is a document number
    assert [u.missing for u in final.unverified] == [("5号",)]


@pytest.mark.parametrize("stream", [False, True])
def test_a_citation_of_a_passage_not_given_gives_the_notice(server, stream):
    server.script = [say("晋中有7家省级博士创新站[1]。另见[7]。")]
    final = ask(ANSWER, generator(server), stream)
    assert final.citations == (1,) and final.bad_citations == (7,)
    assert final.notice == "生成的回答引用了不存在的资料 [7]，请以下方出处为准"
    assert final.text == "晋中有7家省级博士创新站[1]。另见[7]。"


def test_a_sentence_citing_only_a_missing_passage_is_unverified():
    final = check_answer("晋中有7家省级博士创新站[9]。", PASSAGES, None)
    assert final.bad_citations == (9,) and final.unverified[0].cited == ()


@pytest.mark.parametrize("stream", [False, True])
def test_disagreement_with_the_extracted_answer_is_stated_and_both_kept(server, stream):
    server.script = [say("晋中有8家省级博士创新站，另有3家院士(专家)工作站[1]。")]
    final = ask(ANSWER, generator(server), stream)
    assert final.text == "晋中有8家省级博士创新站，另有3家院士(专家)工作站[1]。"
    assert final.disagreement == "抽取的答案是「7家」，生成的回答写的是「8家」，两者不一致，请核对出处原文"
    assert final.unverified[0].missing == ("8家",)  # 3家 is in the source: another quantity


def test_no_disagreement_when_the_written_answer_states_the_same_number():
    text = "晋中建立院士工作站3家，设立1家国家博士后科研站，7家省级博士创新站[1]。"
    assert check_answer(text, PASSAGES, "7家").disagreement is None
    assert check_answer("晋中有七家省级博士创新站[1]。", PASSAGES, "7家").disagreement is None
    assert check_answer("资料中没有找到相关内容。", PASSAGES, "7家").disagreement is None


# -- failures: a plain notice, the extracted answer stays --------------------------------


def _down_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


FAILURES = {
    "down": (None, "无法连接 {netloc}"),
    "timeout": ("stall", "连接超时（1 秒）"),
    "401": (status(401, "invalid api key"), "API 密钥无效或缺失（HTTP 401），请检查环境变量 RAG_LLM_API_KEY"),
    "429": (status(429, "rate limited"), "请求过多或额度已用完（HTTP 429），请稍后再试"),
    "500": (status(500), "服务端出错（HTTP 500）"),
    "malformed JSON": (raw(b'{"choices": [{"message": '), "回复格式无法解析"),
    "wrong shape": (raw(b'{"result": "7"}'), "回复格式无法解析"),
    "empty reply": (say(""), "模型返回了空回复"),
    "only whitespace": (say("  \n "), "模型返回了空回复"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", list(FAILURES))
def test_each_failure_gives_a_one_line_notice_and_no_exception(server, case, stream):
    action, reason = FAILURES[case]
    if case == "down":
        gen = Generator(_down_url(), "m", timeout=5)
        reason = reason.format(netloc=urlsplit(gen.base_url).netloc)
    else:
        server.script = [stall_after(server) if action == "stall" else action]
        gen = generator(server, timeout=1 if action == "stall" else 30)  # the others answer at once
    if stream:
        pieces, final = streamed(ANSWER, gen)
        assert pieces == []
    else:
        final = write_answer(ANSWER, gen)
    assert final.text == "" and final.citations == () and final.unverified == ()
    assert final.notice == f"生成式回答不可用：{reason}，以下为抽取的答案与出处"
    assert "\n" not in final.notice
    assert final.check_lines() == [f"注意：{final.notice}"]
    assert len(server.requests) == (0 if case == "down" else 1)


def test_the_notice_does_not_promise_an_extracted_answer_that_is_absent(server):
    server.script = [status(503)]
    weak = Answer(QUESTION, None, PASSAGES, confidence=0.3)  # relevant, not confident
    assert write_answer(weak, generator(server)).notice == "生成式回答不可用：服务端出错（HTTP 503），以下为检索到的出处"


def test_a_stream_that_stalls_midway_keeps_what_came_and_says_it_stopped(server):
    server.script = [stall_after(server, "晋中有7家省级博士创新站[1]")]
    pieces, final = streamed(ANSWER, generator(server, timeout=3))  # the first piece comes at once
    assert "".join(pieces) == final.text == "晋中有7家省级博士创新站[1]"
    assert final.notice == "生成中断：连接超时（3 秒），以上回答不完整"
    assert final.citations == (1,)


def test_an_error_event_midway_is_reported(server):
    def act(h, body):
        sse_head(h)
        sse_event(h, chunk("晋中有7家"))
        sse_event(h, {"error": {"message": "model crashed"}})

    server.script = [act]
    _, final = streamed(ANSWER, generator(server))
    assert final.text == "晋中有7家" and final.notice.startswith("生成中断：服务端在生成中途报错")


def test_closing_the_stream_hangs_up(server):
    server.script = [trickle(server)]
    stream = stream_answer(ANSWER, generator(server, timeout=5))
    assert next(stream) == "晋中"
    stream.close()  # what a stop button does
    assert server.client_gone.wait(20), "the server kept streaming to a closed connection"



def test_a_stop_signal_from_another_thread_ends_a_reply_that_waits(server):
    """A stop button runs in another thread than the one reading the reply, which may be
    waiting for a piece that does not come: the signal shuts the connection under it."""
    server.script = [stall_after(server, "晋中有7家省级博士创新站[1]")]  # then silence for 30 s
    stop = StopSignal()
    stream = stream_answer(ANSWER, generator(server, timeout=60), stop=stop)
    assert next(stream) == "晋中有7家省级博士创新站[1]"
    threading.Thread(target=stop.set).start()
    final = next(stream)  # returns once the socket is shut, not after the 30 s stall
    assert not server.release.is_set(), "the reply ended by itself, not by the stop"
    assert final.text == "晋中有7家省级博士创新站[1]" and final.citations == (1,)
    assert final.notice == "已停止生成，以上回答不完整"


def test_a_stop_signal_hangs_up_on_the_endpoint(server):
    server.script = [trickle(server)]
    stop = StopSignal()
    stream = stream_answer(ANSWER, generator(server, timeout=5), stop=stop)
    assert next(stream) == "晋中"
    stop.set()
    assert server.client_gone.wait(20), "the server kept streaming to a closed connection"
    final = list(stream)[-1]
    assert final.text.startswith("晋中") and final.notice == "已停止生成，以上回答不完整"


def test_a_stop_before_the_request_sends_nothing(server):
    stop = StopSignal()
    stop.set()
    [final] = stream_answer(ANSWER, generator(server), stop=stop)
    assert final.text == "" and final.notice == "已停止生成，以下为抽取的答案与出处"
    assert server.requests == []

# -- abstention: no request at all -------------------------------------------------------


def test_no_generator_or_no_passages_means_no_call(server):
    assert write_answer(ANSWER, None) is None and list(stream_answer(ANSWER, None)) == []
    empty = Answer(QUESTION, None, (), 0.0)
    assert write_answer(empty, generator(server)) is None and list(stream_answer(empty, generator(server))) == []
    assert server.requests == []


def test_should_generate():
    assert should_generate(ANSWER)
    assert should_generate(Answer(QUESTION, None, PASSAGES, confidence=0.3))  # found, not confident
    assert not should_generate(Answer(QUESTION, None, PASSAGES, confidence=0.0))  # key terms absent
    assert not should_generate(ANSWER, relevant=False) and should_generate(
        Answer(QUESTION, None, PASSAGES, 0.0), relevant=True)


def test_abstention_on_a_real_index_skips_the_call(server, seed_index):
    kb = KnowledgeBase(seed_index, generator=generator(server))
    result = kb.answer("北京有几所大学")
    assert result.text is None and result.passages  # closest passages, not an answer
    assert write_answer(result, kb.generator) is None
    assert list(stream_answer(result, kb.generator)) == []
    assert server.requests == []


# -- end to end on the seed article ------------------------------------------------------


def test_end_to_end_on_the_seed_index(server, seed_index):
    kb = KnowledgeBase(seed_index, generator=generator(server))
    result = kb.answer(SEED_QUESTION)
    assert result.text == "7家"
    n = result.span.passage + 1
    server.script = [say(f"晋中有7家省级博士创新站[{n}]，另有3家院士(专家)工作站[{n}]。")]
    _, final = streamed(result, kb.generator, history=[("晋中在推进什么改革", "教育科技人才一体改革。")])
    last = server.requests[0]["body"]["messages"][-1]["content"]
    assert SEED_SENTENCE in last and last.endswith(f"问题：{SEED_QUESTION}")
    assert final.citations == (n,) and final.unverified == () and final.disagreement is None
    assert final.notice is None


def test_cli_ask_prints_the_written_answer_and_its_checks(server, seed_index, capsys):
    server.script = [say("晋中有8家省级博士创新站[1]。")]
    code = cli_main(["ask", SEED_QUESTION, "--index-dir", str(seed_index),
                     "--llm-url", server.url, "--llm-model", "scripted-model", "--llm-timeout", "5"])
    out = capsys.readouterr().out
    assert code == 0 and server.requests[0]["body"]["stream"] is True
    assert out.index("答案: 7家") < out.index("生成的回答 (scripted-model") < out.index("晋中有8家省级博士创新站[1]。")
    assert out.index("晋中有8家省级博士创新站[1]。") < out.index("\n[1] ")  # before the passages it cites
    assert "引用：[1]" in out and "不一致：抽取的答案是「7家」" in out and "未核实：" in out


def test_cli_ask_json_carries_the_written_answer(server, seed_index, capsys):
    server.script = [say("晋中有7家省级博士创新站[1]。")]
    code = cli_main(["ask", SEED_QUESTION, "--index-dir", str(seed_index), "--json",
                     "--llm-url", server.url, "--llm-model", "scripted-model"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and server.requests[0]["body"]["stream"] is False
    assert out["answer"] == "7家" and out["written"]["text"] == "晋中有7家省级博士创新站[1]。"
    assert out["written"]["citations"] == [1] and out["written"]["notice"] is None


def test_cli_ask_with_the_endpoint_down_still_answers(seed_index, capsys):
    code = cli_main(["ask", SEED_QUESTION, "--index-dir", str(seed_index),
                     "--llm-url", _down_url(), "--llm-model", "m"])
    out = capsys.readouterr().out
    assert code == 0 and "答案: 7家" in out and "\n[1] " in out
    assert "注意：生成式回答不可用：无法连接 127.0.0.1" in out


def test_cli_llm_url_needs_a_model(seed_index, capsys):
    assert cli_main(["ask", SEED_QUESTION, "--index-dir", str(seed_index), "--llm-url", "http://127.0.0.1:1/v1"]) == 2
    assert "--llm-model" in capsys.readouterr().err


def test_the_web_app_refuses_an_llm_url_without_a_model(tmp_path):
    """app.py takes the same options, checked the same way, as ``rag serve``."""
    result = subprocess.run([sys.executable, "app.py", "--index-dir", str(tmp_path / "index"),
                             "--llm-url", "http://127.0.0.1:1/v1"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2 and "--llm-model" in result.stderr
    assert not (tmp_path / "index").exists()


def test_cli_serve_builds_the_generator_from_its_flags():
    from rag.cli import build_parser, generator_from_args

    args = build_parser().parse_args(["serve", "--llm-url", "http://127.0.0.1:11434/v1", "--llm-model", "qwen2.5",
                                      "--llm-timeout", "7"])
    gen = generator_from_args(args)
    assert (gen.endpoint, gen.model, gen.timeout) == ("http://127.0.0.1:11434/v1/chat/completions", "qwen2.5", 7.0)
    assert generator_from_args(build_parser().parse_args(["serve"])) is None
