"""Bad input: each gets a clear message and changes nothing else.

Questions (odd characters, sizes, languages, ``top_k``) through the Python API and the
command line; files (empty, binary, other encodings, scanned, corrupt, navigation only,
symlink loops, missing, duplicates) added to an existing index, whose generation must not
move when nothing was added. Reader-level cases (each format's error message) live in
tests/test_documents.py; here they go through ``KnowledgeBase.add`` and ``rag add``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag import KnowledgeBase
from rag.errors import QuestionError
from rag.knowledge_base import MAX_QUESTION_CHARS
from rag.store import read_manifest

from .conftest import REPO
from .helpers import (
    CITIES,
    ENV,
    assert_clean_error,
    assert_consistent,
    image_only_pdf,
    rag,
    stderr_lines,
    write_city_articles,
)

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

QUESTION, ANSWER = "太原市今年新建了几座公园", "10座"


@pytest.fixture(scope="module")
def kb(base_index) -> KnowledgeBase:
    kb = KnowledgeBase(base_index)
    assert kb.answer(QUESTION).text == ANSWER
    return kb


# -- questions: Python API ------------------------------------------------------------------


@pytest.mark.parametrize("question", [
    "\u200b太\u200d原市今年\ufeff新建了几座公园\u2060",  # zero-width characters
    "\x00太原市\x07今年新建了\x1b几座公园\x7f",  # control characters
    "\u202e太原市今年新建了几座公园\u202c",  # bidi override
    "\ud800太原市今年新建了几座公园\udcff",  # lone surrogates (a bad byte in argv, a JSON "\ud800")
    "太原市今年新建了几座公园？😀🎉",  # emoji
    "  \n\t太原市今年新建了几座公园\u3000\n",  # surrounding white space, ideographic space
])
def test_odd_characters_around_a_real_question_are_ignored(kb, question):
    result = kb.answer(question)
    assert result.text == ANSWER
    assert "\u200b" not in result.question and "\x00" not in result.question


@pytest.mark.parametrize("question", ["😀😀😀", "🇨🇳👍", "???", "¯\\_(ツ)_/¯", "How many parks did Taiyuan build?",
                                      "What is the capital of France?", "ok"])
def test_questions_with_nothing_to_find_return_an_answer_without_text(kb, question):
    result = kb.answer(question)
    assert result.text is None or isinstance(result.text, str)
    assert len(result.passages) <= 5
    for p in result.passages:
        assert kb.document(p.doc_id).text[p.start:p.end] == p.text


@pytest.mark.parametrize("question", ["", " ", "\n\t\u3000", "\u200b\u200c\u200d\ufeff", "\x00\x01\x02", "\ud800"])
def test_empty_questions_are_a_question_error(kb, question):
    with pytest.raises(QuestionError, match="empty"):
        kb.answer(question)


def test_question_length_limit_is_exact(kb):
    kb.search("公" * MAX_QUESTION_CHARS, mode="bm25")  # at the limit: accepted
    with pytest.raises(QuestionError, match=f"{MAX_QUESTION_CHARS + 1:,} characters"):
        kb.answer("公" * (MAX_QUESTION_CHARS + 1))
    # invisible characters do not count
    kb.search("公" * MAX_QUESTION_CHARS + "\u200b" * 50, mode="bm25")


@pytest.mark.parametrize("top_k", [1, 100])
def test_top_k_bounds_are_inclusive(kb, top_k):
    assert 1 <= len(kb.search(QUESTION, top_k=top_k, mode="bm25")) <= top_k


@pytest.mark.parametrize("top_k", [True, 2.5, "5", None])
def test_top_k_of_the_wrong_type_is_a_question_error(kb, top_k):
    with pytest.raises(QuestionError, match="top_k"):
        kb.search(QUESTION, top_k=top_k)


@pytest.mark.parametrize("question", [None, 42, b"bytes", ["list"]])
def test_a_question_that_is_not_text_is_a_question_error(kb, question):
    with pytest.raises(QuestionError, match="text"):
        kb.answer(question)


# -- questions: command line ----------------------------------------------------------------


@pytest.mark.parametrize(("args", "needles"), [
    ([""], ["empty"]),
    (["   "], ["empty"]),
    (["\u200b\u200b"], ["empty"]),
    # 100,000 characters (argv holds at most 128 KiB per argument, so mostly ASCII)
    (["问" * 10_000 + "q" * 90_000], ["100,000 characters", "limit is 1,000"]),
    ([QUESTION, "--top-k", "0"], ["top_k", "from 1 to 100", "0"]),
    ([QUESTION, "--top-k", "10000"], ["top_k", "10000"]),
    ([QUESTION, "--top-k", "-1"], ["top_k"]),
])
def test_cli_ask_rejects_bad_questions_with_one_error_line(base_index, args, needles):
    before = read_manifest(base_index)
    result = rag("ask", *args, "--index-dir", base_index)
    assert_clean_error(result, *needles)
    assert result.stdout == ""
    assert read_manifest(base_index) == before


def test_cli_argument_errors_name_the_argument(base_index):
    result = rag("ask", QUESTION, "--top-k", "many", "--index-dir", base_index)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: argument --top-k: invalid int value: 'many'" in result.stderr
    result = rag("add", base_index, "--commit-every", "0", "--index-dir", base_index)
    assert result.returncode == 2 and "--commit-every: must be at least 1" in result.stderr


def test_cli_ask_without_an_index_says_so(tmp_path):
    result = rag("ask", QUESTION, "--index-dir", tmp_path / "nothing-here")
    assert_clean_error(result, "no index in", "rag index")
    assert not (tmp_path / "nothing-here").exists()


def test_cli_ask_with_undecodable_bytes_in_argv(base_index):
    """A stray byte that is not UTF-8 reaches Python as a lone surrogate: it is dropped,
    the question is answered."""
    raw = b"\xff" + QUESTION.encode("utf-8") + b"\xfe"
    result = subprocess.run([sys.executable.encode(), b"-m", b"rag.cli", b"ask", raw, b"--index-dir",
                             os.fsencode(base_index)], check=False, cwd=REPO, env=ENV, capture_output=True,
                            timeout=600)
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, err
    assert f"答案: {ANSWER}" in result.stdout.decode("utf-8")


# -- files ----------------------------------------------------------------------------------


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path)


BAD_FILES = {
    "zero-byte": ("empty.txt", lambda p: p.write_bytes(b""), "empty file"),
    "binary-named-txt": ("photo.txt", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8),
                         "binary"),
    "corrupt-docx": ("report.docx", lambda p: p.write_bytes(b"PK\x03\x04\x14\x00 truncated zip"), "corrupt"),
    "scanned-pdf": ("scan.pdf", image_only_pdf, "scanned PDF"),
    "navigation-only-html": ("nav.html", lambda p: p.write_text(
        "<html><head><title>某某网</title></head><body><nav><a href=/>首页</a><a href=/n>新闻</a></nav>"
        "<div><a href=/a>通知公告</a><br><a href=/b>政策解读</a></div><footer>© 2024 某某网 版权所有</footer>"
        "</body></html>", encoding="utf-8"), "navigation"),
    "self-symlink": ("self.txt", _symlink_loop, "does not exist"),
    "missing": ("missing.txt", lambda p: None, "does not exist"),
    "unsupported-suffix": ("program.exe", lambda p: p.write_bytes(b"MZ\x90\x00"), "unsupported"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_reported_and_changes_nothing(index_copy, tmp_path, case):
    name, make, reason = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    before = read_manifest(index_copy)
    report = KnowledgeBase(index_copy).add([path])
    assert not report.added and not report.updated
    [(failed, message)] = report.failed
    assert name in failed and reason in message and name in message
    assert read_manifest(index_copy) == before  # no new generation
    assert_consistent(KnowledgeBase(index_copy))


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_cli_add_bad_file_says_skipped_and_why(index_copy, tmp_path, case):
    name, make, reason = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    before = read_manifest(index_copy)
    result = rag("add", path, "--index-dir", index_copy, "-q")
    assert result.returncode == 1, result.stderr  # nothing was added
    assert "Traceback" not in result.stderr
    [line] = stderr_lines(result)
    assert line.startswith("skipped ") and name in line and reason in line
    assert "0 added" in result.stdout and "3 documents" in result.stdout
    assert read_manifest(index_copy) == before


def test_bad_files_next_to_good_ones(index_copy, tmp_path):
    """One run over a folder with every bad file and two good ones: the good ones are
    indexed, each bad one reported once, and the index stays consistent."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, make, _ in BAD_FILES.values():
        if name not in ("missing.txt", "program.exe"):
            make(folder / name)
    write_city_articles(folder, CITIES[5:7], start=30)
    report = KnowledgeBase(index_copy).add([folder])
    assert sorted(Path(p).name for p in report.added) == sorted(f"{c}.txt" for c in CITIES[5:7])
    # the self-link is not a file, so a folder walk skips it silently
    assert sorted(Path(p).name for p, _ in report.failed) == ["empty.txt", "nav.html", "photo.txt", "report.docx",
                                                            "scan.pdf"]
    kb = KnowledgeBase(index_copy)
    assert kb.stats()["documents"] == 5
    assert_consistent(kb)


@pytest.mark.parametrize("encoding", ["gbk", "utf-16", "gb18030", "utf-8-sig"])
def test_other_encodings_are_decoded_and_searchable(index_copy, tmp_path, encoding):
    text = "榆次区2024年民生工作通报\n\n榆次区今年新建社区食堂27个，惠及老年人1.2万人次。\n"
    path = tmp_path / f"yuci_{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    kb = KnowledgeBase(index_copy)
    report = kb.add([path])
    assert len(report.added) == 1, report.failed
    hit = kb.search("榆次区新建社区食堂", top_k=1, mode="bm25")[0]
    assert "社区食堂27个" in hit.text
    assert kb.document(hit.doc_id).title == "榆次区2024年民生工作通报"
    assert_consistent(kb)


def test_symlink_loop_in_a_folder(index_copy, tmp_path):
    folder = tmp_path / "linked"
    (folder / "sub").mkdir(parents=True)
    write_city_articles(folder / "sub", CITIES[8:9], start=20)
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "again").symlink_to(folder / "sub", target_is_directory=True)
    report = KnowledgeBase(index_copy).add([folder])
    assert [Path(p).name for p in report.added] == [f"{CITIES[8]}.txt"] and not report.failed
    assert KnowledgeBase(index_copy).stats()["documents"] == 4


def test_cli_missing_path_and_missing_model(index_copy, tmp_path):
    before = read_manifest(index_copy)
    result = rag("add", tmp_path / "no" / "such" / "folder", "--index-dir", index_copy, "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = stderr_lines(result)
    assert line.startswith("skipped ") and "does not exist" in line
    result = rag("index", tmp_path, "--index-dir", tmp_path / "new-index", "--model", tmp_path / "no-model")
    assert_clean_error(result, "model path not found")
    assert read_manifest(index_copy) == before


def test_cli_duplicate_content_under_two_names(index_copy, tmp_path):
    folder = write_city_articles(tmp_path / "dups", CITIES[9:10], start=90)
    shutil.copy(folder / f"{CITIES[9]}.txt", folder / "copy.txt")
    result = rag("add", folder, "--index-dir", index_copy, "-q")
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout and "1 duplicates skipped" in result.stdout
    [line] = stderr_lines(result)
    assert line.startswith("skipped ") and line.count("copy.txt") + line.count(f"{CITIES[9]}.txt") == 2
    assert "same text as" in line
    kb = KnowledgeBase(index_copy)
    assert kb.stats()["documents"] == 4
    assert_consistent(kb)


def test_index_folder_with_odd_characters_in_its_path(tmp_path, minilm_path):
    """SQLite is opened through a file: URI; '#', '?', '%' and spaces in the path must not cut it."""
    index = tmp_path / "索引 #1 ?x=%20&y" / "index"
    docs = write_city_articles(tmp_path / "docs", CITIES[:2])
    KnowledgeBase(index, model=minilm_path).add([docs])
    kb = KnowledgeBase(index)
    hit = kb.search("大同新建公园", top_k=1, mode="bm25")[0]
    assert "公园11座" in hit.text
    assert kb.stats()["documents"] == 2 and len(kb.documents()) == 2
