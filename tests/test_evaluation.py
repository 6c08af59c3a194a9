"""`rag eval`: the CMRC answer metrics, the summary figures, and a tiny benchmark end to end
whose right figures are worked out by hand below."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag import evaluation as ev
from rag.errors import RagError
from rag.types import Span

from .conftest import REPO

pytestmark = pytest.mark.usefixtures("rules_answering")  # answers from a stub of the rules: see conftest

# ---------------------------------------------------------------------------------------
# metrics


@pytest.mark.parametrize(
    ("pred", "golds", "em", "f1"),
    [
        ("7家", ["7家"], 1.0, 1.0),
        ("「7家」。", ["7家"], 1.0, 1.0),  # punctuation of the official list is dropped
        (" 7家 ", ["7 家"], 1.0, 1.0),  # and all white space
        ("7家省级", ["7家"], 0.0, 2 * 0.5 * 1.0 / 1.5),  # LCS 2 of 4 / 2 tokens
        ("1963年", ["1990年", "1963年"], 1.0, 1.0),  # max over gold answers
        ("Russell Tanoue", ["russell"], 0.0, 2 * 0.5 * 1.0 / 1.5),  # Latin words are tokens
        ("河内总教区宗座署理", ["天主教河内总教区宗座署理"], 0.0, 2 * 1.0 * 9 / 12 / (1 + 9 / 12)),
        ("三家", ["7家"], 0.0, 2 * 0.5 * 0.5 / 1.0),
        ("北京", ["上海"], 0.0, 0.0),
        (None, ["7家"], 0.0, 0.0),  # an abstention scores 0
    ],
)
def test_exact_match_and_f1(pred, golds, em, f1):
    assert ev.exact_match(pred, golds) == em
    assert ev.f1_score(pred, golds) == pytest.approx(f1)


def test_f1_uses_the_longest_common_substring():
    # official CMRC F1 counts the longest *contiguous* common run, not a bag of characters
    assert ev.f1_score("家7", ["7家"]) == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert ev.mixed_segmentation("GDP增长5.2%") == ["gdp", "增", "长", "5.2", "%"]


def test_short_numeric():
    assert ev.is_short_numeric("7家")
    assert ev.is_short_numeric("三十二人")
    assert ev.is_short_numeric("1963年")
    assert not ev.is_short_numeric("北京北铃专用汽车有限公司")
    assert not ev.is_short_numeric("1990年被擢升为天主教河内总教区宗座署理")


def test_summarize_by_hand():
    keys = ("strict_rank", "passage_rank", "em", "f1", "short_numeric", "prediction", "latency_ms")
    rows = [
        dict(zip(keys, (1, 1, 1.0, 1.0, True, "7家", 10.0))),
        dict(zip(keys, (3, 2, 0.0, 0.5, False, "x", 20.0))),
        dict(zip(keys, (None, 7, 0.0, 0.0, True, None, 30.0))),
        dict(zip(keys, (None, None, 0.0, 0.0, False, None, 40.0))),
    ]
    s = ev.summarize(rows)
    assert s["questions"] == 4
    assert s["strict_recall@1"] == 0.25 and s["strict_recall@5"] == 0.5 and s["strict_recall@20"] == 0.5
    assert s["passage_recall@1"] == 0.25 and s["passage_recall@5"] == 0.5 and s["passage_recall@20"] == 0.75
    assert s["strict_mrr@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert s["passage_mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 7) / 4)
    assert s["exact_match"] == 0.25 and s["f1"] == pytest.approx(1.5 / 4)
    assert s["short_numeric_questions"] == 2 and s["short_numeric_exact_match"] == 0.5
    assert s["abstention_rate"] == 0.5
    assert s["latency_ms_p50"] == pytest.approx(25.0)


def test_sample_is_fixed_and_spread():
    qs = [{"id": i} for i in range(1000)]
    a = ev.sample_questions(qs, 50)
    assert a == ev.sample_questions(qs, 50)  # deterministic
    assert [q["id"] for q in a] == sorted(q["id"] for q in a)  # file order
    assert a != qs[:50] and max(q["id"] for q in a) > 500  # not the head
    assert ev.sample_questions(qs, None) == qs and ev.sample_questions(qs, 5000) == qs


def test_missing_benchmark_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="not found"):
        ev.load_benchmark(tmp_path / "nope")
    (tmp_path / "passages.jsonl").write_text('{"id": "p1", "text": "x"}\n')
    with pytest.raises(RagError, match="questions.jsonl"):
        ev.load_benchmark(tmp_path)


# ---------------------------------------------------------------------------------------
# a tiny benchmark end to end

PASSAGES = [
    {"id": "p1", "title": "晋中人才工作", "text": "晋中市建立院士工作站3家，获批设立1家国家博士后科研站，7家省级博士创新站。"},
    {"id": "p2", "title": "太原城市绿化", "text": "太原市今年新建公园12座，城市绿化覆盖率达到43%。"},
    {"id": "p3", "title": "大同煤矿改造", "text": "大同市推进煤矿智能化改造，建成智能化工作面85个。"},
    {"id": "p4", "title": "长治科技创新", "text": "长治市新增高新技术企业56家，研发投入增长18%。"},
]
QUESTIONS = [
    # answered right: strict hit at rank 1
    {"id": "q1", "question": "晋中有几家省级博士创新站", "answers": ["7家"], "passage_id": "p1"},
    # answered wrong (the stub extractor answers 「43%」): EM 0, F1 0
    {"id": "q2", "question": "太原市今年新建了多少座公园", "answers": ["12座"], "passage_id": "p2"},
    # gold passage retrieved first but answers[0] is not verbatim in it: passage hit, no strict hit
    {"id": "q3", "question": "大同市建成智能化工作面多少个", "answers": ["八十五个", "85个"], "passage_id": "p3"},
    # a long answer, partly predicted (「高新技术企业56家」 vs 「新增高新技术企业56家」)
    {"id": "q4", "question": "长治市新增了什么", "answers": ["新增高新技术企业56家"], "passage_id": "p4"},
]
PREDICTIONS = {"q1": "7家", "q2": "43%", "q3": "85个", "q4": "高新技术企业56家"}


def write_bench(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("passages.jsonl", PASSAGES), ("questions.jsonl", QUESTIONS)):
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return folder


@pytest.fixture
def stub_extractor(monkeypatch):
    """A deterministic extractor so the answer figures can be worked out by hand."""
    by_question = {q["question"]: PREDICTIONS[q["id"]] for q in QUESTIONS}

    def extract(question, passages):
        want = by_question.get(question)
        for i, p in enumerate(passages):
            at = p.text.find(want) if want else -1
            if at >= 0:
                return Span(want, i, at, at + len(want), 0, len(p.text), 0.9, "count")
        return None

    monkeypatch.setattr("rag.extraction.extract_answer", extract)


def test_eval_tiny_benchmark(tmp_path, minilm_path, stub_extractor):
    bench = write_bench(tmp_path / "bench")
    result = ev.run(bench, model=minilm_path, mode="bm25", cache_dir=tmp_path / "cache")
    rows = {r["id"]: r for r in result["rows"]}
    assert [rows[q]["strict_rank"] for q in ("q1", "q2", "q3", "q4")] == [1, 1, None, 1]
    assert [rows[q]["passage_rank"] for q in ("q1", "q2", "q3", "q4")] == [1, 1, 1, 1]
    assert [rows[q]["prediction"] for q in ("q1", "q2", "q3", "q4")] == ["7家", "43%", "85个", "高新技术企业56家"]
    s = result["summary"]
    assert s["questions"] == 4
    assert s["strict_recall@1"] == 0.75 and s["strict_recall@20"] == 0.75
    assert s["strict_mrr@10"] == 0.75
    assert s["passage_recall@1"] == 1.0
    # EM: q1 and q3 (「85个」 is its second gold answer); F1: 1, 0, 1 and 2*(8/8)*(8/10)/(1+8/10)
    assert s["exact_match"] == 0.5
    assert s["f1"] == pytest.approx((1 + 0 + 1 + 2 * 0.8 / 1.8) / 4, abs=1e-4)
    # short numeric answers[0]: 「7家」, 「12座」, 「八十五个」 (q4's is 11 characters)
    assert s["short_numeric_questions"] == 3
    assert s["short_numeric_exact_match"] == pytest.approx(2 / 3)
    assert s["abstention_rate"] == 0.0
    assert s["latency_ms_p95"] >= s["latency_ms_p50"] > 0
    # the rows alone give the figures back
    assert ev.summarize(result["rows"]) == s


def test_eval_index_is_cached(tmp_path, minilm_path, stub_extractor):
    bench = write_bench(tmp_path / "bench")
    cache = tmp_path / "cache"
    first = ev.run(bench, model=minilm_path, mode="bm25", cache_dir=cache)
    folders = sorted(p.name for p in cache.iterdir() if p.name != "vectors")
    assert len(folders) == 1 and first["settings"]["index_seconds"] >= 0
    second = ev.run(bench, model=minilm_path, mode="bm25", cache_dir=cache, limit=2)
    assert sorted(p.name for p in cache.iterdir() if p.name != "vectors") == folders
    assert second["summary"]["questions"] == 2
    # another chunking is another index, but it reuses the cached vectors of equal chunks
    ev.run(bench, model=minilm_path, mode="bm25", cache_dir=cache, chunk_size=200, chunk_overlap=20)
    assert len([p for p in cache.iterdir() if p.name != "vectors"]) == 2


def test_rag_eval_cli(tmp_path, minilm_path):
    bench = write_bench(tmp_path / "bench")
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "eval", str(bench), "--model", minilm_path, "--limit", "3",
         "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "strict_recall@5" in proc.stdout and "exact_match" in proc.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["summary"]["questions"] == 3 == len(data["rows"])
    assert data["summary"] == ev.summarize(data["rows"])
    assert {"strict_rank", "passage_rank", "prediction", "answers"} <= set(data["rows"][0])
