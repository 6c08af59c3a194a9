"""Stateless app replicas: with ``--data-dir`` (or ``$RAG_DATA_DIR``) the web app's uploads and
feedback land in that folder, never under the index folder; with a Milvus store the app then
writes nothing locally but there. Driven through the page's own handlers (no browser)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag import KnowledgeBase, cli, feedback
from rag.web.layout import _reading, _writing
from rag.web.server import Access
from rag.web.uploads import UPLOADS

ARTICLE = "太原公园建设\n\n太原市今年新建了12座公园，绿地增加了300公顷。\n"
ANSWER = {"question": "太原市今年新建了几座公园", "answer": "12座", "confidence": 0.9,
          "passages": [{"title": "太原公园建设", "text": "太原市今年新建了12座公园", "score": 0.8}]}


def _milvus(tmp_path: Path) -> str:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    return str(tmp_path / "store" / "kb.db")


@pytest.mark.parametrize("store", ["local", pytest.param("milvus", marks=pytest.mark.slow)])
def test_uploads_and_feedback_go_to_the_data_dir_not_the_index_folder(tmp_path, fake_model, store):
    index, data = tmp_path / "index", tmp_path / "shared"
    kb = KnowledgeBase(index, model=fake_model, store=_milvus(tmp_path) if store == "milvus" else None)
    app_data = feedback.data_folder(kb.folder, data)
    read, write = _reading(kb, app_data), _writing(kb, Access(), app_data)

    src = tmp_path / "picked" / "太原公园.txt"
    src.parent.mkdir()
    src.write_text(ARTICLE, encoding="utf-8")
    steps = list(write["upload"]([str(src)], "", False, SimpleNamespace(session_hash="s1")))
    assert "已添加" in steps[-1][0]
    kept = data / UPLOADS / "太原公园.txt"
    assert kept.read_text(encoding="utf-8") == ARTICLE
    [doc] = kb.documents()
    assert Path(doc["source"]).resolve() == kept.resolve()
    assert kb.answer("太原市今年新建了几座公园").passages[0].doc_id == doc["doc_id"]

    assert read["feedback"]({"turn": "t1", "vote": "up", "answer": ANSWER}) == {"ok": True}
    [line] = (data / feedback.FEEDBACK_FILE).read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["answer"] == "12座"

    if store == "milvus":
        assert not index.exists()  # the replica keeps nothing of its own
    else:  # the index folder holds the index and nothing the app was given
        names = {p.name for p in index.rglob("*")}
        assert "manifest.json" in names
        assert not names & {UPLOADS, "太原公园.txt", feedback.FEEDBACK_FILE}

    # a delete in the page removes the kept original from the data dir too
    value = json.dumps({"v": 1, "selected": [doc["doc_id"]]})
    write["remove_selected"](value, False)
    assert kb.documents() == [] and not kept.exists()


def test_the_data_dir_comes_from_the_option_then_the_environment_then_the_index(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(feedback.DATA_DIR_ENV, raising=False)
    assert feedback.data_folder("index") == Path("index")
    assert feedback.data_folder("index", tmp_path / "opt") == tmp_path / "opt"
    monkeypatch.setenv(feedback.DATA_DIR_ENV, str(tmp_path / "env"))
    assert feedback.data_folder("index") == tmp_path / "env"
    assert feedback.data_folder("index", tmp_path / "opt") == tmp_path / "opt"

    feedback.append(tmp_path / "env", feedback.record("t1", "down", ANSWER))  # creates the folder
    assert cli.main(["feedback", "export", "--index-dir", str(tmp_path / "index")]) == 0
    assert json.loads(capsys.readouterr().out)["vote"] == "down"
    monkeypatch.delenv(feedback.DATA_DIR_ENV)
    assert cli.main(["feedback", "export", "--data-dir", str(tmp_path / "env")]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "12座"
    args = cli.build_parser().parse_args(["serve", "--store", "kb.db", "--data-dir", "/srv/rag", "--read-only"])
    assert args.data_dir == "/srv/rag" and args.store == "kb.db"
