"""The knowledge base and the CLI on the Milvus store, through Milvus Lite (a local .db file
with the real pymilvus API): the seed question, --store on every command, bad store URIs.
Skipped without the ``scale`` extra (pymilvus, milvus-lite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag import KnowledgeBase, cli
from rag.errors import RagError

from .conftest import REPO, SEED_QUESTION, SEED_SENTENCE

pytestmark = pytest.mark.slow  # each test starts a Milvus Lite server

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")


@pytest.fixture(scope="module")
def milvus_kb(tmp_path_factory) -> KnowledgeBase:
    """data/articles indexed with the default model into a Milvus Lite file."""
    root = tmp_path_factory.mktemp("milvus")
    kb = KnowledgeBase(root / "index", store=str(root / "kb.db"))
    kb.add([REPO / "data" / "articles"])
    return kb


def test_seed_question_through_milvus_lite(milvus_kb):
    result = milvus_kb.answer(SEED_QUESTION)
    assert result.text == "7家"
    assert SEED_SENTENCE in result.evidence
    first = result.passages[0]
    assert SEED_SENTENCE in first.text and first.title == "山西晋中:统筹推进教育科技人才一体改革"
    assert first.published == "2024-10-07 13:21"
    assert milvus_kb.document(first.doc_id).text[first.start:first.end] == first.text
    assert not (milvus_kb.folder / "manifest.json").exists()  # nothing of the index is kept locally
    stats = milvus_kb.stats()
    assert stats["store"].endswith("kb.db") and stats["documents"] == 1 and stats["chunks"] >= 5


def test_warm_up_loads_the_sparse_index_before_the_first_question(milvus_kb, monkeypatch):
    """The web app's start-up warm-up searches the sparse field once (Milvus Lite loads its
    index on a process's first sparse search), then questions answer as before."""
    client = milvus_kb.store.client
    fields = []
    real = client.search
    monkeypatch.setattr(client, "search", lambda *a, **kw: fields.append(kw.get("anns_field")) or real(*a, **kw))
    milvus_kb.warm_up()
    assert "sparse" in fields
    assert milvus_kb.answer(SEED_QUESTION).text == "7家"


def test_the_cli_on_a_milvus_lite_store(tmp_path, minilm_path, rules_answering, capsys):
    db = str(tmp_path / "cli.db")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parks.txt").write_text("太原公园建设\n\n太原市今年新建了12座公园，绿地增加了300公顷。", encoding="utf-8")
    (docs / "mines.txt").write_text("大同煤矿改造\n\n大同市完成了15处煤矿的智能化改造。", encoding="utf-8")
    assert cli.main(["index", str(docs), "--store", db, "--model", minilm_path, "-q"]) == 0
    assert "2 added" in capsys.readouterr().out
    assert cli.main(["ask", "太原市今年新建了几座公园", "--store", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "12座" and "太原" in out["passages"][0]["title"]
    assert cli.main(["status", "--store", db, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["documents"] == 2 and status["store"] == db
    assert cli.main(["remove", str(docs / "mines.txt"), "--store", db]) == 0
    capsys.readouterr()
    assert cli.main(["status", "--store", db, "--json"]) == 0
    assert [d["title"] for d in json.loads(capsys.readouterr().out)["document_list"]] == ["太原公园建设"]
    assert not (tmp_path / "index").exists()  # --store: no local index folder


def test_ask_on_an_empty_milvus_store_says_build_one(tmp_path, capsys):
    assert cli.main(["ask", "太原市今年新建了几座公园", "--store", str(tmp_path / "none.db")]) == 2
    err = capsys.readouterr().err
    assert "no index in" in err and f"--store {tmp_path / 'none.db'}" in err


def test_an_unknown_store_uri_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="unknown store 'ftp://x'"):
        KnowledgeBase(tmp_path / "index", store="ftp://x")


WRITE = """
import sys
from rag.store.milvus import MilvusStore
from tests.test_store_conformance import ARTICLES, batch_of, commit, document
commit(MilvusStore(sys.argv[1]), batch_of([document(k) for k in ARTICLES]))
"""
READ = """
import sys
from rag.store.milvus import MilvusStore
s = MilvusStore(sys.argv[1], lock_timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 600)
top = s.view().lexical_top_k("晋中有几家省级博士创新站", 1)[0]
print(s.stats()["documents"], s.document("doc-parks").title, s.view().chunks(top).popitem()[1].doc_id)
"""


def test_a_milvus_lite_file_reopens_in_another_process(tmp_path):
    """Written by one process, read by the next (Milvus Lite releases the collections of a
    reopened file: the store loads them), and a second process at the same time waits, then
    is refused with a clear error."""
    db = str(tmp_path / "kb.db")
    for code in (WRITE, READ):
        result = subprocess.run([sys.executable, "-c", code, db], cwd=REPO, capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["3", "太原市园林建设", "doc-talent"]
    from rag.store.milvus import MilvusStore

    held = MilvusStore(db)  # this process holds the file now
    result = subprocess.run([sys.executable, "-c", READ, db, "1"], cwd=REPO, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode != 0 and "IndexLockedError" in result.stderr
    assert "is open in one process at a time" in result.stderr and "waited 1 s" in result.stderr
    held.close()


def _lock_is_held(lock_file: Path) -> bool:
    """Whether another process holds ``lock_file`` (a probe that never keeps it)."""
    import fcntl
    import os

    if not lock_file.exists():
        return False
    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_two_rag_add_processes_on_one_milvus_lite_file_take_turns(tmp_path, minilm_path):
    """The second `rag add` waits for the first (it is stopped while holding the file, so the
    two surely overlap) instead of failing, and the store ends with both commits whole."""
    import signal
    import time

    from .helpers import CITIES, ENV, write_city_articles

    db = tmp_path / "kb.db"
    first_docs = write_city_articles(tmp_path / "a", CITIES[:3])
    second_docs = write_city_articles(tmp_path / "b", CITIES[3:5], thing="学校")

    def rag_add(folder: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "rag.cli", "add", str(folder), "--store", str(db),
                                 "--model", minilm_path, "-q", "--commit-every", "1"],
                                cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = rag_add(first_docs)
    deadline = time.monotonic() + 600
    while not _lock_is_held(Path(f"{db}.lock")):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGSTOP)  # holds the file and cannot finish before the second arrives
    second = rag_add(second_docs)
    try:
        waited = []
        for line in second.stderr:
            waited.append(line)
            if "waiting up to" in line:
                break
        assert any("another process has" in line and "waiting up to" in line for line in waited), "".join(waited)
    finally:
        first.send_signal(signal.SIGCONT)
    out_first, err_first = first.communicate(timeout=600)
    out_second, err_second = second.communicate(timeout=600)
    assert first.returncode == 0, err_first[-3000:]
    assert second.returncode == 0, err_second[-3000:]
    assert "3 added" in out_first and "2 added" in out_second
    assert "5 documents" in out_second  # the second built on the first's commits

    from rag.store.milvus import MilvusStore

    store = MilvusStore(str(db))
    try:
        rows = store.documents()
        assert sorted(Path(r["source"]).stem for r in rows) == sorted(CITIES[:5])
        stats = store.stats()
        assert stats["documents"] == 5 and stats["chunks"] == sum(r["chunks"] for r in rows)
        view = store.view()
        ids, _ = view.lexical_top_k("朔州市今年新建学校", 20)
        assert len(set(ids.tolist())) == len(ids) and len(ids) == stats["chunks"]  # every chunk once, none twice
    finally:
        store.close()


def test_the_dense_index_turns_hnsw_above_flat_max(tmp_path):
    """Exact search while small, HNSW once the collection passes flat_max (set low here, in
    the settings the store records)."""
    from rag.config import VECTOR_INDEX_KEY, VectorIndexSettings
    from rag.retrieval import search
    from rag.store import milvus
    from tests.test_store_conformance import ARTICLES, SETTINGS, batch_of, commit, document, vector

    low = VectorIndexSettings(flat_max=3, ivf_shrink=0)
    store = milvus.MilvusStore(str(tmp_path / "kb.db"))
    try:
        with store.writing({**SETTINGS, VECTOR_INDEX_KEY: low.as_dict()}):
            ids = store.commit(batch_of([document("parks")]))
        assert store.settings()[VECTOR_INDEX_KEY] == low.as_dict()
        assert len(ids) <= 3 and store.stats()["dense_index"] == "FLAT"
        ids += commit(store, batch_of([document(k) for k in ARTICLES if k != "parks"]))
        assert len(ids) > 3 and store.stats()["dense_index"] == "HNSW"
        assert store.client.describe_index(store.chunks, "dense")["index_type"] == "HNSW"
        view = store.view()
        chunk = view.chunks([ids[-1]])[ids[-1]]
        from rag.chunking import retrieval_text

        query = vector(retrieval_text(chunk.title, chunk.text, chunk.heading))
        assert view.dense_top_k(query, 1)[0].tolist() == [ids[-1]]
        assert search(view, "煤矿智能化改造", query, 3, mode="dense")[0].chunk_id == ids[-1]
    finally:
        store.close()


def test_term_counts_stay_exact_across_writers(tmp_path):
    """A writer keeps the term counts it published, so that a commit need not look them up.
    After adds, a replacement, a removal and a commit by another writer in between (whose
    terms overlap the next commit's), every stored count is still the number of live chunks
    holding the term."""
    from collections import Counter

    import numpy as np

    from rag.store.milvus import MilvusStore
    from tests.test_store_conformance import ARTICLES, batch_of, commit, document

    db = str(tmp_path / "kb.db")
    a, b = MilvusStore(db), MilvusStore(db)
    try:
        commit(a, batch_of([document("parks"), document("talent")]))
        commit(b, batch_of([document("mines")]))  # a's counts miss this commit's terms
        mines = ARTICLES["mines"][1]
        commit(a, batch_of([document("parks", "太原市的公园。" + mines[:30])], remove=["doc-parks"]))
        commit(a, batch_of([], remove=["doc-talent"]))
        commit(b, batch_of([document("talent")]))
        for store in (a, b):
            state = store._read_state()
            chunks = store._all(store.chunks, store.visible(state), ["sparse"])
            want = Counter(int(k) for c in chunks for k in c["sparse"])
            terms = np.array([r["term"] for r in store._all(store.terms, "term >= 0", ["term"])], np.int64)
            assert {k: v for k, v in store.df(terms, state).items() if v} == dict(want)
            assert len(chunks) == state["chunks"] and len(want) > 20
    finally:
        a.close()
        b.close()
