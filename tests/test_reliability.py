"""Updates, crashes and damaged files, through the real command line (``python -m rag.cli``).

Every test runs the CLI in subprocesses against a private copy of a small index built with
the fast MiniLM model. Crashes are real: the writer is killed with SIGKILL, either at a
named point of ``store.write_generation`` (the ``RAG_TEST_CRASH_AT`` hook) or after a random
delay once it has started committing. Damaged index files are opened in a subprocess, so a
segfault would show as a negative return code instead of taking pytest down.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import KnowledgeBase
from rag.store import read_manifest

from .conftest import REPO
from .helpers import CITIES, ENV, article, assert_clean_error, assert_consistent, rag, write_city_articles

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

def generation_dirs(index: Path) -> list[str]:
    return sorted(p.name for p in index.iterdir() if p.is_dir())


def doc_count(index: Path) -> int:
    kb = KnowledgeBase(index)
    assert_consistent(kb)
    return kb.stats()["documents"]


def bm25_top(kb: KnowledgeBase, question: str) -> str:
    hits = kb.search(question, top_k=1, mode="bm25")
    return hits[0].text if hits else ""


# -- updates through the CLI --------------------------------------------------------------


def test_cli_index_add_update_prune_remove_and_status(tmp_path, minilm_path):
    docs = write_city_articles(tmp_path / "docs", CITIES[:4])
    index = tmp_path / "index"
    first = rag("index", docs, "--index-dir", index, "--model", minilm_path, "-q")
    assert first.returncode == 0, first.stderr
    assert "4 added, 0 updated, 0 unchanged" in first.stdout

    status = rag("status", "--index-dir", index, "--json")
    assert status.returncode == 0, status.stderr
    stats = json.loads(status.stdout)
    assert stats["documents"] == 4 and stats["chunks"] >= 4
    assert stats["model"] == f"st:{Path(minilm_path).resolve()}" and stats["dim"] == 384
    assert stats["bytes_on_disk"] > 0 and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", stats["updated_at"])
    assert sorted(Path(d["source"]).name for d in stats["document_list"]) == sorted(f"{c}.txt" for c in CITIES[:4])
    info = rag("info", "--index-dir", index)  # the alias, as text
    assert info.returncode == 0 and re.search(r"documents: 4\b", info.stdout) and "model:" in info.stdout

    # a changed file (new content), a file with only its bytes changed (CRLF, same text),
    # a deleted file, a new file, and one left alone
    (docs / f"{CITIES[0]}.txt").write_text(article(CITIES[0], 99, "学校", "所"), encoding="utf-8")
    crlf = docs / f"{CITIES[1]}.txt"
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))
    (docs / f"{CITIES[2]}.txt").unlink()
    write_city_articles(docs, CITIES[4:5], start=50)
    second = rag("index", docs, "--index-dir", index, "--prune", "-q")  # the model comes from the manifest
    assert second.returncode == 0, second.stderr
    assert "1 added, 1 updated, 2 unchanged" in second.stdout and "1 removed" in second.stdout
    kb = KnowledgeBase(index)
    assert_consistent(kb)
    assert kb.stats()["documents"] == 4
    assert "学校99所" in bm25_top(kb, f"{CITIES[0]}新建学校")
    assert not any("公园10座" in p.text for p in kb.search(f"{CITIES[0]}公园", top_k=10, mode="bm25"))
    assert not any(CITIES[2] in p.text for p in kb.search(f"{CITIES[2]}公园", top_k=10, mode="bm25"))
    assert "公园50座" in bm25_top(kb, f"{CITIES[4]}新建公园")

    # nothing changed: every file skipped, no new generation written, no model loaded
    manifest = read_manifest(index)
    third = rag("index", docs, "--index-dir", index, "--prune", "-q")
    assert third.returncode == 0 and "0 added, 0 updated, 4 unchanged" in third.stdout
    assert read_manifest(index) == manifest
    one = rag("add", docs / f"{CITIES[3]}.txt", "--index-dir", index, "-q")
    assert one.returncode == 0 and "0 added, 0 updated, 1 unchanged" in one.stdout

    # remove by id and by source path; an unknown one is a clean error that changes nothing
    doc_id = next(d["doc_id"] for d in kb.documents() if d["source"].endswith(f"{CITIES[3]}.txt"))
    removed = rag("remove", doc_id, docs / f"{CITIES[1]}.txt", "--index-dir", index)
    assert removed.returncode == 0 and "removed 2 document(s)" in removed.stdout, removed.stderr
    unknown = rag("remove", "no-such-document", "--index-dir", index)
    assert_clean_error(unknown, "no document 'no-such-document'")
    after = json.loads(rag("status", "--index-dir", index, "--json").stdout)
    assert after["documents"] == 2
    assert {Path(d["source"]).name for d in after["document_list"]} == {f"{CITIES[0]}.txt", f"{CITIES[4]}.txt"}
    assert_consistent(KnowledgeBase(index))


# -- crashes ------------------------------------------------------------------------------

MORE = CITIES[10:14]  # four more articles, one chunk each: with --commit-every 1, one commit each


@pytest.mark.parametrize(("point", "committed"), [
    ("before-rename", 1),  # the new generation complete in its temporary folder
    ("after-rename", 1),  # renamed into place, manifest still names the previous one
    ("after-manifest", 2),  # the switch done, old generations not yet removed
])
def test_sigkill_during_add_at_named_points(index_copy, tmp_path, point, committed):
    """``rag add`` killed at ``point`` of its second commit: the index opens at the last
    committed generation, consistent, and rerunning the command finishes the job."""
    more = write_city_articles(tmp_path / "more", MORE, start=60)
    killed = rag("add", more, "--index-dir", index_copy, "--commit-every", "1", "-q",
                 env={"RAG_TEST_CRASH_AT": f"{point}:2"})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    assert doc_count(index_copy) == 3 + committed

    # the rerun in this process (the CLI rerun is in the random-kill test): same code, no torch start-up
    rerun = KnowledgeBase(index_copy, commit_every=1).add([more])
    assert (len(rerun.added), len(rerun.unchanged), rerun.failed) == (4 - committed, committed, [])
    kb = KnowledgeBase(index_copy)
    assert_consistent(kb)
    assert kb.stats()["documents"] == 7
    for i, city in enumerate(MORE):
        assert f"公园{60 + i}座" in bm25_top(kb, f"{city}新建公园")
    # crash leftovers (temporary folders, orphaned generations) are gone after the next write
    assert all(re.fullmatch(r"gen-\d{8}", name) for name in generation_dirs(index_copy))
    assert len(generation_dirs(index_copy)) <= 2


@pytest.mark.parametrize("point", ["rows-written", "before-rename", "after-rename", "after-manifest"])
def test_sigkill_during_remove_at_named_points(index_copy, point):
    """``rag remove`` writes a generation too (no model needed, so every point is cheap)."""
    victim = KnowledgeBase(index_copy).documents()[0]["doc_id"]
    killed = rag("remove", victim, "--index-dir", index_copy, env={"RAG_TEST_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL
    done = point == "after-manifest"
    assert doc_count(index_copy) == (2 if done else 3)
    rerun = rag("remove", victim, "--index-dir", index_copy)
    if done:
        assert_clean_error(rerun, "no document")
    else:
        assert rerun.returncode == 0, rerun.stderr
    assert doc_count(index_copy) == 2


def test_sigkill_during_the_very_first_write(tmp_path, minilm_path):
    """Killed after renaming the first generation but before any manifest existed: the
    folder reads as an empty index (nothing was committed) and a rerun builds it."""
    docs = write_city_articles(tmp_path / "docs", CITIES[:2])
    index = tmp_path / "index"
    model = minilm_path
    killed = rag("index", docs, "--index-dir", index, "--model", model, "-q",
                 env={"RAG_TEST_CRASH_AT": "after-rename:1"})
    assert killed.returncode == -signal.SIGKILL
    assert (index / "gen-00000001").is_dir() and not (index / "manifest.json").exists()
    status = rag("status", "--index-dir", index, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["documents"] == 0
    assert len(KnowledgeBase(index, model=model).add([docs]).added) == 2  # the rerun
    assert doc_count(index) == 2
    assert generation_dirs(index) == ["gen-00000001"]


def test_sigkill_after_random_delays_then_rerun_finishes(index_copy, tmp_path):
    """Kill ``rag add`` at random moments once it has started committing (20 one-chunk
    commits), twice; after each kill the index opens consistent with a whole number of
    committed documents; a final run adds the rest."""
    more = write_city_articles(tmp_path / "more", CITIES[3:], start=70)
    seed = int(os.environ.get("RAG_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    counts = [3]
    for _ in range(2):
        start_gen = read_manifest(index_copy)["generation"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "add", str(more), "--index-dir", str(index_copy),
             "--commit-every", "1", "-q"], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while read_manifest(index_copy)["generation"] == start_gen and proc.poll() is None:
            assert time.monotonic() < deadline, "the writer never committed"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)  # a no-op if a fast machine finished already
        proc.wait(60)
        counts.append(doc_count(index_copy))
        if counts[-1] == len(CITIES):
            break
        assert counts[-1] > counts[-2], f"seed {seed}: no progress {counts}"
    final = rag("add", more, "--index-dir", index_copy, "-q")
    assert final.returncode == 0, final.stderr
    assert doc_count(index_copy) == len(CITIES), f"seed {seed}: {counts}"
    kb = KnowledgeBase(index_copy)
    for i, city in enumerate(CITIES[3:]):
        assert f"公园{70 + i}座" in bm25_top(kb, f"{city}新建公园"), (seed, city)


# -- damaged index files --------------------------------------------------------------------


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _current_gen(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text(encoding="utf-8"))["generation"]


DAMAGE = {
    "manifest-garbage": (lambda ix: (ix / "manifest.json").write_bytes(b"\x89\x00garbage\xff" * 20), "manifest.json"),
    "manifest-truncated": (lambda ix: _truncate(ix / "manifest.json"), "manifest.json"),
    "manifest-not-an-object": (lambda ix: (ix / "manifest.json").write_text("[1, 2]"), "manifest.json"),
    "manifest-missing-keys": (lambda ix: (ix / "manifest.json").write_text('{"format": 1}'), "manifest.json"),
    "rows-truncated": (lambda ix: _truncate(_current_gen(ix) / "rows.sqlite"), "rows.sqlite"),
    "rows-truncated-last-page": (lambda ix: _truncate(_current_gen(ix) / "rows.sqlite", 0.99), "rows.sqlite"),
    "rows-zero-bytes": (lambda ix: _truncate(_current_gen(ix) / "rows.sqlite", 0), "rows.sqlite"),
    "bm25-npy-truncated": (lambda ix: _truncate(_current_gen(ix) / "bm25" / "tf_data.npy"), "bm25"),
    "bm25-vocab-truncated": (lambda ix: _truncate(_current_gen(ix) / "bm25" / "vocab.npy", 0.9), "bm25"),
    "dense-truncated": (lambda ix: _truncate(_current_gen(ix) / "dense.faiss"), "dense.faiss"),
    "generation-deleted": (lambda ix: shutil.rmtree(_current_gen(ix)), "rows.sqlite"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_is_a_clear_error_naming_the_file(index_copy, damage):
    make, filename = DAMAGE[damage]
    gen = _current_gen(index_copy)
    make(index_copy)
    for command in (["status"], ["ask", "太原新建了几座公园"]):
        result = rag(*command, "--index-dir", index_copy)
        assert result.returncode > 0, f"{command}: return code {result.returncode} (negative: a signal)"
        line = assert_clean_error(result, filename, "rag index")
        assert str(index_copy) in line
        if damage.startswith(("rows", "bm25", "dense")):
            assert str(gen) in line  # the full path of the damaged file


def test_damaged_rows_met_by_a_query_are_a_clear_error(index_copy):
    """Garbage in the middle of rows.sqlite may pass the open-time checks; the query that
    meets it raises IndexCorruptError naming the file, never a raw sqlite3 error."""
    rows = _current_gen(index_copy) / "rows.sqlite"
    data = bytearray(rows.read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)  # every page after the first
    rows.write_bytes(bytes(data))
    code = ("import sys\nfrom rag import KnowledgeBase\nfrom rag.errors import IndexCorruptError\n"
            "try:\n    kb = KnowledgeBase(sys.argv[1]); kb.search('太原 公园', mode='bm25'); kb.documents()\n"
            "except IndexCorruptError as exc:\n    print('CLEAR', exc)\n")
    result = subprocess.run([sys.executable, "-c", code, str(index_copy)], check=False, cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CLEAR") and "rows.sqlite" in result.stdout and "rag index" in result.stdout


# -- progress that survives a kill: commits by time ----------------------------------------


def test_commit_by_time_survives_a_kill_and_the_rerun_skips_it(tmp_path, minilm_path):
    """``rag index --commit-seconds 0`` commits after every document (``--commit-every`` alone
    would commit once, at the end). Killed right after its third commit, the index holds the
    three committed documents, ``rag status`` lists them, and the rerun skips exactly them."""
    docs = write_city_articles(tmp_path / "docs", CITIES[:6])
    index = tmp_path / "index"
    killed = rag("index", docs, "--index-dir", index, "--model", minilm_path, "-q", "--commit-seconds", "0",
                 env={"RAG_TEST_CRASH_AT": "after-manifest:3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    status = rag("status", "--index-dir", index, "--json")
    assert status.returncode == 0, status.stderr
    committed = {Path(d["source"]).name for d in json.loads(status.stdout)["document_list"]}
    assert len(committed) == 3 and committed < {f"{c}.txt" for c in CITIES[:6]}
    assert doc_count(index) == 3
    rerun = KnowledgeBase(index).add([docs])  # in this process: same code, no torch start-up
    assert sorted(Path(s).name for s in rerun.unchanged) == sorted(committed)
    assert len(rerun.added) == 3 and not rerun.updated and not rerun.failed
    kb = KnowledgeBase(index)
    assert_consistent(kb)
    for i, city in enumerate(CITIES[:6]):
        assert f"公园{10 + i}座" in bm25_top(kb, f"{city}新建公园")


def test_a_quick_run_commits_once(tmp_path, minilm_path):
    """With the defaults (every 2,000 chunks or 60 s) a run of seconds writes one generation."""
    docs = write_city_articles(tmp_path / "docs", CITIES[:6])
    kb = KnowledgeBase(tmp_path / "index", model=minilm_path)
    assert len(kb.add([docs]).added) == 6
    assert generation_dirs(tmp_path / "index") == ["gen-00000001"]


# -- markup in plain text, names in the listing, a noisy library -----------------------------


def test_markup_in_plain_text_never_becomes_an_answer(tmp_path, minilm_path):
    """「<img src=x onerror=alert(4)>」 inside a .txt answered 「几口古井」 with 4. Tags and
    script blocks are stripped when the file is read, so the stored text (which the offsets
    refer to) and every passage and answer are free of them."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "village.txt").write_text(
        "银杏村概况\n\n银杏村共有<img src=x onerror=alert(4)>五口古井。<script>var wells = 9; alert(wells)</script>"
        "村里还有<b>三座</b>石桥。<!-- 共有8口 -->\n", encoding="utf-8")
    write_city_articles(folder, CITIES[:2])
    kb = KnowledgeBase(tmp_path / "index", model=minilm_path)
    kb.add([folder])
    result = kb.answer("银杏村共有几口古井")
    assert result.text == "五口", result
    for p in result.passages:
        assert not any(s in p.text for s in ("<", "alert", "onerror", "wells", "8口")), p.text
    doc = next(d for d in kb.documents() if d["source"].endswith("village.txt"))
    assert kb.document(doc["doc_id"]).text.endswith("银杏村共有五口古井。村里还有三座石桥。")
    assert kb.answer("银杏村有几座石桥").text == "三座"


def test_status_prints_control_characters_in_names_escaped(tmp_path, minilm_path):
    """A newline (or an escape sequence, or bytes that are not UTF-8) in a file name is
    printed escaped: one line per document, nothing raw reaches the terminal."""
    folder = tmp_path / "docs"
    folder.mkdir()
    names = {b"new\nline.txt": "new\\nline", b"esc\x1b[31mred.txt": "esc\\x1b[31mred", b"bad\xffbyte.txt": "bad\\xffbyte"}
    for i, name in enumerate(names):
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(article(CITIES[i], 30 + i).encode("utf-8"))
    kb = KnowledgeBase(tmp_path / "index", model=minilm_path)
    assert len(kb.add([folder]).added) == 3
    status = rag("status", "--index-dir", tmp_path / "index")
    assert status.returncode == 0, status.stderr
    assert "\x1b" not in status.stdout
    lines = [line for line in status.stdout.splitlines() if " chunks " in line]
    assert len(lines) == 3
    for shown in names.values():
        assert sum(shown in line for line in lines) == 1, (shown, lines)
    listing = json.loads(rag("status", "--index-dir", tmp_path / "index", "--json").stdout)["document_list"]
    assert {Path(d["source"]).name for d in listing} == {"new\nline.txt", "esc\x1b[31mred.txt", "bad\\xffbyte.txt"}
    again = KnowledgeBase(tmp_path / "index").add([folder])  # the same names: recognised, unchanged
    assert len(again.unchanged) == 3 and not again.added


def test_deeply_nested_html_reads_without_a_stray_warning(tmp_path):
    """trafilatura gives up on a 10,000-level nested page and logs ``WARNING discarding data:
    None``; the fallback extractor reads it, so the CLI prints nothing but its summary."""
    page = tmp_path / "nested.html"
    page.write_text("<html><body>" + "<div>" * 10_000 + "晋中市今年新建公园12座。" * 3 + "</div>" * 10_000
                    + "</body></html>", encoding="utf-8")
    code = ("import logging, sys\nlogging.basicConfig(level=logging.WARNING)\n"
            "from rag.documents import read_file\nprint(read_file(sys.argv[1]).text)\n")
    result = subprocess.run([sys.executable, "-c", code, str(page)], check=False, cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "晋中市今年新建公园12座。" in result.stdout
    assert result.stderr == ""
