"""The facade end to end on real components: FAISS, SQLite, BM25 and real models (the
plumbing tests on made-up text embed with conftest's deterministic fake embedder)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rag import Document, KnowledgeBase
from rag.errors import DocumentError, IndexCorruptError, IndexMismatchError, QuestionError, RagError
from rag.store import read_manifest

from .conftest import REPO, SEED, SEED_QUESTION
from .helpers import assert_consistent

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

PARAGRAPHS = [
    "太原市今年新建公园12座，城市绿化覆盖率达到43%。",
    "大同市推进煤矿智能化改造，建成智能化工作面85个。",
    "长治市新增高新技术企业56家，研发投入增长18%。",
]


def write_articles(folder, texts):
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f"article_{i}.txt").write_text(f"标题{i}\n\n{text}", encoding="utf-8")
    return folder


def test_seed_question_ranks_the_answer_passage_first(seed_index):
    kb = KnowledgeBase(seed_index)
    passages = kb.search(SEED_QUESTION, top_k=5)
    assert "7家省级博士创新站" in passages[0].text
    for p in passages:
        assert kb.document(p.doc_id).text[p.start:p.end] == p.text
        assert p.title == "山西晋中:统筹推进教育科技人才一体改革"
        assert p.published and p.published.startswith("2024-10-07")


def test_cli_ask_json(seed_index):
    out = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", SEED_QUESTION, "--index-dir", str(seed_index), "--json"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    result = json.loads(out.stdout)
    assert set(result) >= {"question", "answer", "passages"}
    first = result["passages"][0]
    assert set(first) >= {"text", "title", "source", "published", "score", "doc_id", "start", "end"}
    assert "7家省级博士创新站" in first["text"]
    assert first["source"].endswith(SEED.name)


def test_add_documents_and_title_context(tmp_path, fake_model):
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    kb.add_documents([Document(title="长治市2024年科技工作总结", text="新增高新技术企业56家。", source="a"),
                      Document(title="大同市2024年能源工作", text="建成智能化工作面85个。", source="b")])
    # 长治 is only in the title: the chunk is still found by it
    hits = kb.search("长治新增了多少高新技术企业", top_k=1, mode="bm25")
    assert hits[0].source == "a" and hits[0].text == "新增高新技术企业56家。"


def test_model_mismatch_is_a_clear_error(tmp_path, fake_model):
    write_articles(tmp_path / "docs", PARAGRAPHS)
    KnowledgeBase(tmp_path / "ix", model=fake_model).add([tmp_path / "docs"])
    with pytest.raises(IndexMismatchError, match="rag index"):
        KnowledgeBase(tmp_path / "ix", model="default")
    # without --model, the index opens with the model it was built with
    assert KnowledgeBase(tmp_path / "ix").stats()["documents"] == 3


def test_bad_files_are_reported_and_good_ones_indexed(tmp_path, fake_model):
    docs = write_articles(tmp_path / "docs", PARAGRAPHS[:2])
    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    report = kb.add([docs, tmp_path / "missing_folder"])
    failed = dict(report.failed)
    assert len(report.added) == 2
    assert {p.rsplit("/", 1)[-1] for p in failed} == {"empty.txt", "binary.txt", "broken.docx", "missing_folder"}
    assert all(reason for reason in failed.values())
    assert kb.stats()["documents"] == 2
    assert_consistent(kb)


def test_updates_replace_skip_and_prune(tmp_path, fake_model):
    docs = write_articles(tmp_path / "docs", PARAGRAPHS)
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    assert len(kb.add([docs]).added) == 3
    again = kb.add([docs])
    assert len(again.unchanged) == 3 and again.chunks == 0
    (docs / "article_1.txt").write_text("标题1\n\n大同市新建5G基站3200个。", encoding="utf-8")
    report = kb.add([docs])
    assert len(report.updated) == 1 and len(report.unchanged) == 2
    assert not any("智能化工作面" in p.text for p in kb.search("智能化工作面", top_k=5, mode="bm25"))
    assert "3200" in kb.search("大同 5G基站", top_k=1, mode="bm25")[0].text
    assert_consistent(kb)
    (docs / "article_2.txt").unlink()
    assert kb.add([docs]).removed == []  # nothing pruned without the flag
    report = kb.add([docs], prune=True)
    assert len(report.removed) == 1
    assert kb.stats()["documents"] == 2
    assert_consistent(kb)
    # another process (a second KnowledgeBase) sees the change
    assert KnowledgeBase(tmp_path / "ix").stats()["documents"] == 2


def test_remove_by_source_and_id(tmp_path, fake_model):
    docs = write_articles(tmp_path / "docs", PARAGRAPHS)
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    kb.add([docs])
    first = kb.documents()[0]
    kb.remove([first["doc_id"]])
    kb.remove([str(docs / "article_2.txt")])
    assert len(kb.documents()) == 1
    with pytest.raises(RagError, match="no document"):
        kb.remove(["nope"])
    assert_consistent(kb)


def test_duplicate_content_under_two_names(tmp_path, fake_model):
    docs = write_articles(tmp_path / "docs", PARAGRAPHS[:1])
    shutil.copy(docs / "article_0.txt", docs / "copy_of_article.txt")
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    report = kb.add([docs])
    assert len(report.added) == 1 and len(report.duplicates) == 1
    assert kb.stats()["documents"] == 1


def test_failed_write_leaves_previous_index_usable(tmp_path, fake_model, monkeypatch):
    docs = write_articles(tmp_path / "docs", PARAGRAPHS[:2])
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    kb.add([docs])
    before = read_manifest(tmp_path / "ix")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rag.store.generations.write_json_atomic", crash)
    write_articles(tmp_path / "more", PARAGRAPHS[2:])
    with pytest.raises(RagError, match="disk full"):  # IndexWriteError: one clear line for the CLI
        kb.add([tmp_path / "more"])
    monkeypatch.undo()
    reopened = KnowledgeBase(tmp_path / "ix")
    assert read_manifest(tmp_path / "ix") == before
    assert reopened.stats()["documents"] == 2
    assert_consistent(reopened)
    assert len(reopened.add([tmp_path / "more"]).added) == 1  # rerunning finishes the job


def test_corrupt_index_file_names_the_file(tmp_path, fake_model):
    write_articles(tmp_path / "docs", PARAGRAPHS)
    KnowledgeBase(tmp_path / "ix", model=fake_model).add([tmp_path / "docs"])
    gen = tmp_path / "ix" / read_manifest(tmp_path / "ix")["generation"]
    dense = gen / "dense.faiss"
    dense.write_bytes(dense.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match="dense.faiss") as err:
        KnowledgeBase(tmp_path / "ix")
    assert "rag index" in str(err.value)


@pytest.mark.parametrize("question", ["", "   ", "\u200b\u200b", "问" * 100_000])
def test_unusable_questions(tmp_path, question, fake_model):
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    with pytest.raises(QuestionError):
        kb.answer(question)


@pytest.mark.parametrize("top_k", [0, -1, 10_000])
def test_top_k_bounds(tmp_path, top_k, fake_model):
    kb = KnowledgeBase(tmp_path / "ix", model=fake_model)
    with pytest.raises(QuestionError, match="top_k"):
        kb.search("问题", top_k=top_k)


def test_empty_knowledge_base_answers_nothing(tmp_path, fake_model):
    result = KnowledgeBase(tmp_path / "ix", model=fake_model).answer(SEED_QUESTION)
    assert result.text is None and result.passages == ()


def test_missing_path_is_a_document_error():
    from rag.documents import iter_files

    with pytest.raises(DocumentError, match="does not exist"):
        list(iter_files(["/definitely/not/here"]))


def test_vectors_are_normalized_in_index(tmp_path, minilm_path):
    write_articles(tmp_path / "docs", ["The city built twelve parks this year.", "Coal mines were modernised."])
    kb = KnowledgeBase(tmp_path / "ix", model=minilm_path)
    kb.add([tmp_path / "docs"])
    snap = kb.store.current()
    ids = snap.bm25.live_ids()
    norms = np.linalg.norm(snap.vectors.reconstruct_batch(ids), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3)
