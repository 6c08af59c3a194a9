"""Indexing with Ray (rag.ray_indexing): a local Ray with 2 workers builds the same index as
the single-process path; without --ray nothing imports Ray."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rag import KnowledgeBase

from .conftest import REPO

ARTICLES = {
    "parks": "太原公园建设\n\n太原市今年新建了12座公园，城市绿地面积增加了300公顷。明年还将改造20座老旧公园。",
    "mines": "大同煤矿改造\n\n大同市完成了15处煤矿的智能化改造，井下作业人员减少了三成。",
    "apples": "运城苹果产业\n\n运城市苹果种植面积达到160万亩，出口量增长了两成。",
    "talent": "晋中人才工作\n\n晋中市建立院士(专家)工作站3家，获批设立1家国家博士后科研站，7家省级博士创新站。",
}


def write_docs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ARTICLES.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    return folder


def test_without_ray_nothing_imports_it(tmp_path, minilm_path):
    docs = write_docs(tmp_path / "docs")
    code = ("import sys\nfrom rag import cli\n"
            f"code = cli.main(['index', {str(docs)!r}, '--index-dir', {str(tmp_path / 'ix')!r}, "
            f"'--model', {minilm_path!r}, '-q'])\n"
            "assert 'ray' not in sys.modules and 'pymilvus' not in sys.modules, 'imported'\nprint('code', code)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                            check=False)
    assert "code 0" in result.stdout, result.stderr[-2000:]


@pytest.mark.slow
def test_local_ray_with_two_workers_builds_the_same_index(tmp_path, minilm_path, rules_answering):
    ray = pytest.importorskip("ray")
    docs = write_docs(tmp_path / "docs")
    plain = KnowledgeBase(tmp_path / "plain", model=minilm_path)
    plain.add([docs])
    kb = KnowledgeBase(tmp_path / "ray", model=minilm_path)
    try:
        report = kb.add([docs], ray="local", ray_workers=2)
        assert ray.cluster_resources().get("CPU") == 2
        assert sorted(report.added) == sorted(str((docs / f"{n}.txt").resolve()) for n in ARTICLES)
        assert [path for path, _ in report.failed] == [str((docs / "broken.pdf").resolve())]
        assert report.chunks == plain.stats()["chunks"] == kb.stats()["chunks"]
        assert {(d["title"], d["chunks"]) for d in kb.documents()} == {(d["title"], d["chunks"])
                                                                       for d in plain.documents()}
        for question in ("太原市今年新建了几座公园", "晋中有几家省级博士创新站", "运城苹果种植面积"):
            ours, theirs = kb.search(question, top_k=3), plain.search(question, top_k=3)
            assert [p.text for p in ours] == [p.text for p in theirs]
            assert np.allclose([p.dense_score for p in ours], [p.dense_score for p in theirs], atol=1e-3)
        assert kb.answer("太原市今年新建了几座公园").text == "12座"
        again = kb.add([docs], ray="local", ray_workers=2)  # nothing changed: no worker gets a file
        assert len(again.unchanged) == len(ARTICLES) and not again.added and again.chunks == 0
    finally:
        ray.shutdown()
