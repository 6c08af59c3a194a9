"""A write that fails — disk full, file-size limit, permission denied, read-only disk, an I/O
error mid-commit — is one ``error:`` line and exit code 2; the previous index stays whole and
keeps answering, and no temporary files are left.

Two ways to fail a write, at each of its points (SQLite rows, FAISS vectors, BM25 arrays,
the manifest):

* **a real file-size limit** in a subprocess: the command runs ``rag.cli.main`` with the
  write function of one point wrapped so that it lowers ``RLIMIT_FSIZE`` to 100 bytes just
  before it writes; the kernel then refuses the write (EFBIG; the CLI ignores SIGXFSZ, as it
  must for a plain ``ulimit -f``), whichever library does it (SQLite, faiss's C++, numpy);
* **a failing filesystem layer** in this process: ``os.fsync``, ``os.replace``, the file
  under faiss's writer or the point's write function raises ``OSError`` with the errno of a
  full disk, a read-only disk, a permission problem or an I/O error; SQLite fails for real
  (a page limit: "database or disk is full"; a read-only open).
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from rag import KnowledgeBase, cli
from rag.errors import IndexWriteError
from rag.lexical import BM25Index
from rag.store import generations as store

from .conftest import REPO
from .helpers import CITIES, ENV, article, assert_clean_error, assert_consistent, rag, write_city_articles

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

QUESTION, ANSWER = f"{CITIES[0]}市今年新建了几座公园", "10座"  # in base_index (tests/conftest.py)


def snapshot_files(index: Path) -> dict[str, bytes]:
    """Every file of the index but the lock, by relative path."""
    return {str(p.relative_to(index)): p.read_bytes() for p in sorted(index.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def assert_unchanged_and_answering(index: Path, before: dict[str, bytes]) -> None:
    """Byte for byte the index it was (so no temporary folder or file is left either), and
    it opens, is consistent and answers."""
    assert snapshot_files(index) == before
    assert not [p.name for p in index.iterdir() if ".tmp" in p.name]
    kb = KnowledgeBase(index)
    assert_consistent(kb)
    assert kb.stats()["documents"] == 3
    assert kb.answer(QUESTION).text == ANSWER


# -- a real file-size limit, set at one write point, in a subprocess ------------------------

# Lowers the file-size limit right before the write of one point, then runs the CLI.
DRIVER = """
import resource, sys
import faiss
from rag import cli, lexical
from rag.store import generations as store

point, argv = sys.argv[1], sys.argv[2:]

def limited(write):
    def wrapper(*args, **kwargs):
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))
        return write(*args, **kwargs)
    return wrapper

if point == "rows.sqlite":  # the new generation's rows, in its temporary folder
    import sqlite3
    connect = sqlite3.connect
    sqlite3.connect = lambda path, *a, **k: (limited(connect) if ".tmp-" in str(path) else connect)(path, *a, **k)
elif point == "dense.faiss":
    faiss.write_index = limited(faiss.write_index)
elif point == "bm25":
    lexical.BM25Index.save = limited(lexical.BM25Index.save)
elif point == "manifest.json":
    store.write_json_atomic = limited(store.write_json_atomic)
sys.exit(cli.main(argv))
"""

POINTS = ["rows.sqlite", "dense.faiss", "bm25", "manifest.json"]


@pytest.mark.parametrize("point", POINTS)
def test_file_size_limit_at_each_write_point(index_copy, point):
    """``rag remove`` writes a whole generation (no model needed, so every point is cheap)."""
    before = snapshot_files(index_copy)
    victim = KnowledgeBase(index_copy).documents()[0]["doc_id"]
    result = subprocess.run([sys.executable, "-c", DRIVER, point, "remove", victim, "--index-dir", str(index_copy)],
                            check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    line = assert_clean_error(result, f"could not write the index in {index_copy}", "file-size limit",
                              "100 bytes", point, "unchanged", "ulimit -f unlimited")
    assert "Traceback" not in line
    assert_unchanged_and_answering(index_copy, before)
    again = rag("remove", victim, "--index-dir", index_copy)  # no limit: it works
    assert again.returncode == 0, again.stderr
    assert KnowledgeBase(index_copy).stats()["documents"] == 2


def test_rag_add_under_a_file_size_limit(index_copy, tmp_path):
    """The issue's case: ``rag add`` under ``ulimit -f`` (set before the process starts, as a
    shell does) used to die with faiss's RuntimeError traceback and leave a temporary folder."""
    before = snapshot_files(index_copy)
    limit = max(p.stat().st_size for p in index_copy.rglob("*") if p.is_file()) // 2  # the biggest file cannot be rewritten
    more = write_city_articles(tmp_path / "more", CITIES[10:12], start=60)

    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    result = subprocess.run([sys.executable, "-m", "rag.cli", "add", str(more), "--index-dir", str(index_copy), "-q"],
                            check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600,
                            preexec_fn=set_limit)
    assert_clean_error(result, "could not write the index", "file-size limit", f"{limit:,} bytes", "unchanged")
    assert_unchanged_and_answering(index_copy, before)


# -- a failing filesystem layer, in this process ------------------------------------------

WORDS = {  # errno: (what the error line says happened, what it says to do)
    errno.ENOSPC: ("the disk is full", "Free space on that disk"),
    errno.EROFS: ("the disk is read-only", "writable disk"),
    errno.EACCES: ("permission denied", "writable for this user"),
    errno.EIO: ("an input/output error", "Check the disk"),
}


def fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def break_write(monkeypatch, point: str, code: int) -> None:
    """Make the write at ``point`` fail with ``code``, as the library that does it reports it."""
    if point == "rows.sqlite":  # SQLite's own errors, for real: a page limit, a read-only open
        import sqlite3

        real = sqlite3.connect

        def connect(path, *args, **kwargs):
            if not str(path).endswith("rows.sqlite") or ".tmp-" not in str(path):
                return real(path, *args, **kwargs)
            if code == errno.EACCES:
                return real(f"file:{path}?mode=ro", uri=True)  # "unable to open database file"
            con = real(path, *args, **kwargs)
            con.execute("PRAGMA max_page_count = 2")  # "database or disk is full"
            return con

        monkeypatch.setattr(sqlite3, "connect", connect)
    elif point == "dense.faiss":  # the file under faiss's writer fails halfway through a write
        real_writer = faiss.PyCallbackIOWriter

        def writer(write, *args):
            def failing_write(data):
                write(data[: len(data) // 2])
                fail_with(code)()
            return real_writer(failing_write, *args)

        monkeypatch.setattr(faiss, "PyCallbackIOWriter", writer)
    elif point == "bm25":
        monkeypatch.setattr(np, "save", fail_with(code))
    elif point == "manifest.json":
        monkeypatch.setattr(store, "write_json_atomic", fail_with(code))
    elif point == "fsync":
        monkeypatch.setattr(os, "fsync", fail_with(code))
    elif point == "rename":  # the new generation into place
        real_replace = os.replace
        monkeypatch.setattr(os, "replace", lambda a, b: (fail_with(code)() if Path(a).name.startswith(".gen-")
                                                         else real_replace(a, b)))
    else:
        raise AssertionError(point)


CASES = [("rows.sqlite", errno.ENOSPC), ("rows.sqlite", errno.EACCES),
         ("dense.faiss", errno.ENOSPC), ("dense.faiss", errno.EIO),
         ("bm25", errno.ENOSPC), ("bm25", errno.EIO),
         ("fsync", errno.ENOSPC), ("fsync", errno.EROFS), ("fsync", errno.EACCES), ("fsync", errno.EIO),
         ("rename", errno.EROFS), ("rename", errno.EIO),
         ("manifest.json", errno.ENOSPC), ("manifest.json", errno.EROFS)]


@pytest.mark.parametrize(("point", "code"), CASES, ids=[f"{p}-{errno.errorcode[c]}" for p, c in CASES])
def test_failing_filesystem_at_each_write_point(index_copy, monkeypatch, capsys, point, code):
    """``rag remove`` through ``cli.main`` in this process, its write failing at ``point``."""
    before = snapshot_files(index_copy)
    victim = KnowledgeBase(index_copy).documents()[0]["doc_id"]
    break_write(monkeypatch, point, code)
    assert cli.main(["remove", victim, "--index-dir", str(index_copy)]) == 2
    monkeypatch.undo()
    out, err = capsys.readouterr()
    what, advice = WORDS[code]
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: could not write the index in {index_copy}: {what}"), err
    assert "The index is unchanged since its last complete write and still answers." in err and advice in err
    assert_unchanged_and_answering(index_copy, before)


def test_io_error_mid_add_keeps_the_process_answering(index_copy, tmp_path, monkeypatch):
    """An I/O error while ``KnowledgeBase.add`` commits: IndexWriteError, the same object
    still answers from the previous generation, and once the disk is back the add works."""
    kb = KnowledgeBase(index_copy)
    before = snapshot_files(index_copy)
    more = write_city_articles(tmp_path / "more", CITIES[10:11], start=60)
    real_fsync, calls = os.fsync, []

    def flaky_fsync(fd):
        calls.append(fd)
        if len(calls) == 3:  # mid-commit: some files of the new generation are synced already
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky_fsync)
    with pytest.raises(IndexWriteError, match="input/output error.*unchanged"):
        kb.add([more])
    monkeypatch.undo()
    assert snapshot_files(index_copy) == before
    assert kb.answer(QUESTION).text == ANSWER and kb.stats()["documents"] == 3
    assert len(kb.add([more]).added) == 1
    assert kb.stats()["documents"] == 4
    assert_consistent(kb)
    assert "公园60座" in kb.search(f"{CITIES[10]}新建公园", top_k=1, mode="bm25")[0].text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_index_folder(index_copy, tmp_path):
    """A folder the user may not write: ``rag add`` says so; the index still answers."""
    before = snapshot_files(index_copy)
    (tmp_path / "new.txt").write_text(article(CITIES[12], 5), encoding="utf-8")
    index_copy.chmod(0o555)
    try:
        result = rag("add", tmp_path / "new.txt", "--index-dir", index_copy, "-q")
        assert_clean_error(result, "could not write the index", "permission denied", "writable for this user")
    finally:
        index_copy.chmod(0o755)
    assert_unchanged_and_answering(index_copy, before)


def test_bm25_save_failure_is_not_swallowed_by_the_wrapping(index_copy, monkeypatch):
    """Only write failures become IndexWriteError: a bug (here a TypeError) stays itself."""
    monkeypatch.setattr(BM25Index, "save", lambda self, folder: (_ for _ in ()).throw(TypeError("a bug")))
    kb = KnowledgeBase(index_copy)
    with pytest.raises(TypeError, match="a bug"):
        kb.remove([kb.documents()[0]["doc_id"]])
    assert not [p.name for p in index_copy.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES], ids=["EROFS", "EACCES"])
def test_lock_file_that_cannot_be_opened(index_copy, monkeypatch, capsys, code):
    """The first write of a command is the lock file: a read-only or forbidden folder is
    said at once, not reported as "another process is writing" after the lock timeout."""
    before = snapshot_files(index_copy)
    victim = KnowledgeBase(index_copy).documents()[0]["doc_id"]
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: (fail_with(code)() if str(path).endswith(".lock")
                                                           else real_open(path, *a, **k)))
    assert cli.main(["remove", victim, "--index-dir", str(index_copy), "--lock-timeout", "600"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith(f"error: could not write the index in {index_copy}: {WORDS[code][0]} (writing "
                          f"{index_copy / '.lock'})"), err
    assert_unchanged_and_answering(index_copy, before)
