"""Answer time with the trained reader against the query embedding, measured in the same run.

    python benchmarks/reader_speed.py [--questions 40] [--index-dir /tmp/reader_speed_index]

Indexes the sample article and, when ``../shared/data`` is there, the 31 provincial 2026
work reports (distractors full of numbers), then asks a fixed list of questions written
over them. Per question, warm: the query embedding alone (the baseline: what every answer
pays), ``KnowledgeBase.answer`` with the trained model (reranking the first 5 candidates and
reading the top 5 in the same pass) and with the rules reader (no reranking). Reports p50/p95
and the ratios to the baseline; writes ``benchmarks/results/reader_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO.parent / "shared" / "data" / "policy_corpus" / "gov_work_reports_2026"
QUESTIONS = [
    "晋中有几家省级博士创新站", "晋中获批设立几家国家博士后科研站", "晋中建立了几家院士工作站",
    "山西智能化煤矿达到多少座", "2025年山西人均GDP是多少", "广东地区生产总值是多少",
    "浙江城镇新增就业多少人", "四川粮食产量是多少", "河南常住人口城镇化率是多少",
    "北京全市居民人均可支配收入增长多少", "上海口岸贸易总额是多少", "江苏研发经费投入强度是多少",
]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-dir", type=Path, default=Path("/tmp/reader_speed_index"))
    ap.add_argument("--rounds", type=int, default=3, help="times each question is asked")
    args = ap.parse_args()

    from rag import KnowledgeBase

    kb = KnowledgeBase(args.index_dir)
    kb.add([REPO / "data" / "articles"] + ([REPORTS] if REPORTS.is_dir() else []))
    rules = KnowledgeBase(args.index_dir, reader="rules", reranker="none")
    kb.answer(QUESTIONS[0])  # load everything before the clock runs
    rules.answer(QUESTIONS[0])
    timings: dict[str, list[float]] = {"query_embedding": [], "answer_model": [], "answer_rules": []}
    for _ in range(args.rounds):
        for q in QUESTIONS:
            for name, fn in (("query_embedding", lambda q=q: kb.embedder.embed_query(q)),
                             ("answer_model", lambda q=q: kb.answer(q)),
                             ("answer_rules", lambda q=q: rules.answer(q))):
                for cache in (kb._query_cache, rules._query_cache, kb.pipeline.reader._cache):
                    cache.clear()  # every call pays its full price
                t0 = time.perf_counter()
                fn()
                timings[name].append(1000 * (time.perf_counter() - t0))
    base = statistics.median(timings["query_embedding"])
    result = {
        "documents": kb.stats()["documents"], "chunks": kb.stats()["chunks"],
        "questions": len(QUESTIONS), "rounds": args.rounds,
        "rerank_depth": kb.pipeline.rerank_depth, "top_k": 5,
        **{f"{k}_ms_p50": round(statistics.median(v), 1) for k, v in timings.items()},
        **{f"{k}_ms_p95": round(percentile(v, 95), 1) for k, v in timings.items()},
        "answer_model_over_query_embedding_p50": round(statistics.median(timings["answer_model"]) / base, 2),
        "answer_rules_over_query_embedding_p50": round(statistics.median(timings["answer_rules"]) / base, 2),
    }
    out = REPO / "benchmarks" / "results" / "reader_speed.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
