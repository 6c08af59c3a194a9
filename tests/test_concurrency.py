"""Many users at once: questions while documents are added, readers in other processes,
two writers, and the web app under 20 concurrent requests.

The invariant everywhere: a request sees one whole generation of the index. Facts that
were in the index before the writer started are always answered correctly; a fact being
added is either not seen yet or answered correctly, and once a reader has seen it, it
keeps seeing it. Nothing fails and memory stays bounded.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from rag import KnowledgeBase
from rag.errors import IndexLockedError
from rag.store import read_manifest

from .conftest import REPO
from .helpers import CITIES, ENV, assert_clean_error, assert_consistent, rag, write_city_articles

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

OLD = CITIES[:10]  # in the index before the writer starts: 公园 10..19 座
NEW = CITIES[10:]  # added while questions run: 体育馆 40..49 座
MB = 1 << 20


def old_question(i: int) -> tuple[str, str]:
    return f"{OLD[i]}市今年新建了几座公园", f"{10 + i}座"


def new_question(i: int) -> tuple[str, str]:
    return f"{NEW[i]}市今年新建了几座体育馆", f"{40 + i}座"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, minilm_path):
    """(old docs folder, new docs folder, index built from the old docs)."""
    root = tmp_path_factory.mktemp("concurrency")
    old = write_city_articles(root / "old", OLD, start=10)
    new = write_city_articles(root / "new", NEW, start=40, thing="体育馆")
    KnowledgeBase(root / "index", model=minilm_path).add([old])
    return old, new, root / "index"


@pytest.fixture
def index_copy(corpus, tmp_path):
    import shutil

    _, _, index = corpus
    shutil.copytree(index, tmp_path / "index")
    return tmp_path / "index"


class Recorder:
    """Checks every answer against the facts, per reader thread; collects failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.answers = 0
        self.new_seen = 0

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def check(self, kind: str, i: int, answer: str | None, passages: list[dict], seen: set[int]) -> None:
        with self.lock:
            self.answers += 1
        expected = old_question(i)[1] if kind == "old" else new_question(i)[1]
        city = OLD[i] if kind == "old" else NEW[i]
        if kind == "old":
            if answer != expected:
                self.fail(f"{city}: {answer!r} != {expected!r}")
            return
        has_doc = any(city in p["text"] and "体育馆" in p["text"] for p in passages)
        if has_doc:  # the generation it saw holds the new article: the answer must be right
            seen.add(i)
            with self.lock:
                self.new_seen += 1
            if answer != expected:
                self.fail(f"{city} (new, in passages): {answer!r} != {expected!r}")
        elif i in seen:
            self.fail(f"{city} (new) was seen before and is gone now")


def _reader_loop(ask, recorder: Recorder, k: int, stop: threading.Event, min_rounds: int) -> None:
    """Alternate old and new questions until ``stop``, then ``extra`` more (the writer is
    done by then: every new fact must be found)."""
    seen: set[int] = set()
    j = 0
    extra = 2
    while not stop.is_set() or j < min_rounds or extra:
        if stop.is_set() and j >= min_rounds:
            extra -= 1
        kind = "old" if j % 2 == 0 else "new"
        i = (k + j // 2) % 10
        question = old_question(i)[0] if kind == "old" else new_question(i)[0]
        try:
            answer, passages = ask(question)
            recorder.check(kind, i, answer, passages, seen)
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            recorder.fail(f"{question}: {type(exc).__name__}: {exc}")
        j += 1


def _rss() -> int:
    return psutil.Process().memory_info().rss


def test_twenty_threads_answer_correctly_while_documents_are_added(corpus, index_copy):
    """20 threads call ``kb.answer`` (hybrid: embedding, FAISS, BM25, SQLite, extraction)
    while another thread adds 10 articles, one commit per article, to the same object."""
    _, new, _ = corpus
    kb = KnowledgeBase(index_copy, commit_every=1)
    for i in range(10):  # warm up: model loaded, caches filled
        assert kb.answer(old_question(i)[0]).text == old_question(i)[1]
    rss_before = _rss()

    def ask(question):
        result = kb.answer(question)
        return result.text, [p.to_dict() for p in result.passages]

    recorder = Recorder()
    stop = threading.Event()
    readers = [threading.Thread(target=_reader_loop, args=(ask, recorder, k, stop, 4)) for k in range(20)]
    for t in readers:
        t.start()
    try:
        report = kb.add([new])
    finally:
        stop.set()
        for t in readers:
            t.join(300)
    assert len(report.added) == 10
    grown = (_rss() - rss_before) / MB
    print(f"\n{recorder.answers} answers ({recorder.new_seen} with a new article) by 20 threads during "
          f"{len(report.added)} commits; RSS +{grown:.0f} MB")
    assert not recorder.failures, recorder.failures[:10]
    assert recorder.answers >= 80 and recorder.new_seen >= 20
    # afterwards every new fact is there
    for i in range(10):
        assert kb.answer(new_question(i)[0]).text == new_question(i)[1]
    assert_consistent(kb)
    assert grown < 400, f"RSS grew by {grown:.0f} MB"


def test_a_request_in_flight_across_two_commits_still_succeeds(corpus, index_copy, monkeypatch):
    """A slow request holds generation N while a writer commits N+1 and N+2 (which deletes
    the folder of N): its rows stay readable through the snapshot's open connection."""
    _, new, _ = corpus
    kb = KnowledgeBase(index_copy, commit_every=1)
    question, expected = old_question(3)
    assert kb.answer(question).text == expected
    entered, release = threading.Event(), threading.Event()
    real = kb.embedder.embed_query

    def slow_embed(text):
        entered.set()
        assert release.wait(300)
        return real(text)

    monkeypatch.setattr(kb.embedder, "embed_query", slow_embed)
    kb._query_cache.clear()
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(result=kb.answer(question)))
    thread.start()
    assert entered.wait(60)
    held = kb.store.current().generation
    kb.add([new / f"{NEW[0]}.txt", new / f"{NEW[1]}.txt"])  # two commits
    assert not (index_copy / held).exists()  # the generation the request holds is gone from disk
    release.set()
    thread.join(120)
    assert out["result"].text == expected


READER = r"""
import json, sys, time
from pathlib import Path
from rag import KnowledgeBase
index, stop_file, questions = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
kb = KnowledgeBase(index)
checks, errors, generations = 0, [], []
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    done = stop_file.exists()
    try:
        snap = kb.store.current()
        with snap.connect() as con:
            docs = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            rows = {r[0] for r in con.execute("SELECT id FROM chunks")}
            per_doc = dict(con.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())
            counts = dict(con.execute("SELECT id, chunk_count FROM documents").fetchall())
        live = set(snap.bm25.live_ids().tolist())
        problems = []
        if snap.stats != {"documents": docs, "chunks": len(rows)}:
            problems.append(f"stats {snap.stats} vs rows {docs}/{len(rows)}")
        if snap.manifest.get("documents") != docs or snap.manifest.get("chunks") != len(rows):
            problems.append(f"manifest {snap.manifest.get('documents')}/{snap.manifest.get('chunks')} vs {docs}")
        if snap.vectors.ntotal != len(rows) or live != rows:
            problems.append(f"{snap.vectors.ntotal} vectors, {len(live)} bm25 rows, {len(rows)} chunk rows")
        if {d: n for d, n in counts.items() if n} != per_doc:
            problems.append("chunk counts per document differ")
        for question, expected in questions:
            hits = kb.search(question, top_k=1, mode="bm25")
            if not hits or expected not in hits[0].text:
                problems.append(f"{question}: {hits[0].text if hits else None!r}")
            else:
                doc = kb.document(hits[0].doc_id)
                if doc.text[hits[0].start:hits[0].end] != hits[0].text:
                    problems.append("passage offsets do not slice the document")
        if problems:
            errors.append([snap.generation] + problems)
        if not generations or generations[-1] != snap.generation:
            generations.append(snap.generation)
        checks += 1
    except Exception as exc:
        errors.append([type(exc).__name__, str(exc)])
    if done:
        break
print(json.dumps({"checks": checks, "errors": errors[:20], "generations": generations}))
"""


def test_reader_process_sees_only_whole_generations(corpus, index_copy, tmp_path):
    """A reader process polls while a writer process adds 10 articles, one commit each:
    every snapshot it reads is whole (stats = rows = vectors = BM25 rows = manifest) and
    answers the old questions right."""
    _, new, _ = corpus
    stop = tmp_path / "writer-done"
    questions = [[f"{OLD[i]}新建公园", f"公园{10 + i}座"] for i in (0, 4, 9)]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(index_copy), str(stop), json.dumps(questions)],
                              cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        writer = rag("add", new, "--index-dir", index_copy, "--commit-every", "1", "-q")
        assert writer.returncode == 0, writer.stderr
    finally:
        stop.touch()
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert not result["errors"], result["errors"]
    assert len(result["generations"]) >= 3, result  # it did read while the writer wrote
    assert result["generations"] == sorted(result["generations"])  # never went back
    assert result["generations"][-1] == read_manifest(index_copy)["generation"]


def _hold_lock(index: Path) -> subprocess.Popen:
    """Another process that holds the index's write lock until killed."""
    code = ("import sys, time\nfrom filelock import FileLock\nlock = FileLock(sys.argv[1])\nlock.acquire()\n"
            "print('locked', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(index / ".lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_writer_fails_clearly_when_the_lock_is_held(corpus, index_copy):
    _, new, _ = corpus
    before = read_manifest(index_copy)
    holder = _hold_lock(index_copy)
    try:
        t0 = time.monotonic()
        add = rag("add", new, "--index-dir", index_copy, "--lock-timeout", "1", "-q")
        line = assert_clean_error(add, "another process is writing", str(index_copy), "Try again")
        assert "waited 1 s" in line
        remove = rag("remove", KnowledgeBase(index_copy).documents()[0]["doc_id"], "--index-dir", index_copy,
                     "--lock-timeout", "0.5")
        assert_clean_error(remove, "another process is writing")
        with pytest.raises(IndexLockedError, match="another process is writing"):
            KnowledgeBase(index_copy, lock_timeout=0.2).add([new])
        assert time.monotonic() - t0 < 120
    finally:
        holder.kill()
        holder.wait()
    assert read_manifest(index_copy) == before
    assert_consistent(KnowledgeBase(index_copy))


def test_two_writers_at_once_both_finish(corpus, index_copy, tmp_path):
    """Two ``rag add`` processes started together: the second waits for the lock, then
    adds its files on top of the first one's; nothing is lost."""
    _, new, _ = corpus
    more = write_city_articles(tmp_path / "more", ["石家庄", "保定", "邯郸"], start=80, thing="图书馆")
    cmd = [sys.executable, "-m", "rag.cli", "add", "--index-dir", str(index_copy), "--commit-every", "2", "-q"]
    procs = [subprocess.Popen([*cmd, str(folder)], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for folder in (new, more)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    kb = KnowledgeBase(index_copy)
    assert_consistent(kb)
    assert kb.stats()["documents"] == 10 + 10 + 3
    assert "图书馆81座" in kb.search("保定新建图书馆", top_k=1, mode="bm25")[0].text
    assert "体育馆45座" in kb.search(f"{NEW[5]}新建体育馆", top_k=1, mode="bm25")[0].text


# -- the web app ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_ask(url: str, question: str, timeout: float = 300) -> dict:
    """The app's ``ask`` endpoint over plain HTTP (Gradio's two-step call API)."""
    body = json.dumps({"data": [question, 5, ""]}).encode()
    request = urllib.request.Request(f"{url}/gradio_api/call/ask", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/ask/{event_id}", timeout=timeout) as response:
        stream = response.read().decode("utf-8")
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", stream, re.MULTILINE)
    if not events or events[-1][0] != "complete":
        raise RuntimeError(f"no complete event: {stream[:300]!r}")
    return json.loads(events[-1][1])[0]


def test_web_app_serves_twenty_concurrent_questions_while_a_document_is_added(corpus, index_copy):
    pytest.importorskip("gradio")
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    from rag.web import build_app, launch

    _, new, _ = corpus
    kb = KnowledgeBase(index_copy, commit_every=1)
    app = build_app(kb)
    url = launch(app, "127.0.0.1", _free_port(), block=False, quiet=True).rstrip("/")
    try:
        for i in range(3):  # warm up
            assert _http_ask(url, old_question(i)[0])["answer"] == old_question(i)[1]
        rss_before = _rss()

        def ask(question):
            payload = _http_ask(url, question)
            return payload["answer"], payload["passages"]

        recorder = Recorder()
        stop = threading.Event()
        clients = [threading.Thread(target=_reader_loop, args=(ask, recorder, k, stop, 2)) for k in range(20)]
        for t in clients:
            t.start()
        try:
            time.sleep(0.5)  # the questions are in flight when the add starts
            report = kb.add([new / f"{NEW[i]}.txt" for i in range(5)])
        finally:
            stop.set()
            for t in clients:
                t.join(600)
        assert len(report.added) == 5
        grown = (_rss() - rss_before) / MB
        print(f"\n{recorder.answers} HTTP answers ({recorder.new_seen} with a new article) by 20 clients during "
              f"{len(report.added)} commits; RSS +{grown:.0f} MB")
        assert not recorder.failures, recorder.failures[:10]
        assert recorder.answers >= 40 and recorder.new_seen >= 1
        assert _http_ask(url, new_question(2)[0])["answer"] == new_question(2)[1]
        assert grown < 400, f"RSS grew by {grown:.0f} MB"
    finally:
        app.close()
