"""Retrieval through the Milvus Lite store against the local store, same model, same chunks.

Both indexes hold every passage of a benchmark set (``ncp_policy_qa_dev`` by default), with
the same vectors (the evaluation cache, ``rag.evaluation.VectorCache``), and answer every
question with the rules reader and no reranker (reranking is the same code on the same
candidates, so it is left out); strict and passage Recall@1/5/20 come from
``rag.evaluation.evaluate``, as in ``rag eval``. Also the answer latency p50/p95 of each, in
the same run (a ratio, not an absolute: the machine was shared).

    python benchmarks/store_parity.py [--data ../shared/data] [--set ncp_policy_qa_dev] [--limit N]
        [--slice 100] [--out benchmarks/results/store_parity.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import KnowledgeBase
from rag import evaluation as ev
from rag.ingest.hashing import sha256_hex
from rag.types import Document

ANSWERING = {"reader": "rules", "reranker": "none"}


def milvus_index(bench: ev.Benchmark, local: KnowledgeBase, folder: Path) -> tuple[KnowledgeBase, float]:
    """The same passages in a Milvus Lite file, embedded through the same vector cache."""
    kb = KnowledgeBase(folder / "index", store=str(folder / "parity.db"), commit_every=1 << 40, **ANSWERING)
    inner = kb.embedder
    cache = ev.VectorCache(ev.default_cache_dir() / "vectors"
                           / f"{sha256_hex(inner.spec + ev.embedder_fingerprint(inner), 16)}.sqlite", int(inner.dim))
    kb.embedder = ev.CachingEmbedder(inner, cache)
    docs = [Document(p.get("title", "") or "", p["text"], source=str(p["id"]), doc_id=str(p["id"]))
            for p in bench.passages if p["text"].strip()]
    t0 = time.perf_counter()
    kb.add_documents(docs)
    seconds = time.perf_counter() - t0
    print(f"milvus lite: {kb.stats()['chunks']} chunks in {seconds:.1f} s "
          f"(vector cache: {kb.embedder.hits} hits, {kb.embedder.misses} embedded)", flush=True)
    cache.close()
    kb.embedder = inner
    if kb.stats()["chunks"] != local.stats()["chunks"]:
        raise SystemExit(f"chunk counts differ: {kb.stats()['chunks']} vs {local.stats()['chunks']}")
    return kb, seconds


def summarise(results: dict, rows: dict[str, list[dict]], walls: dict[str, float], out: Path) -> None:
    """Fill ``results`` from the rows so far and write it (after every slice)."""
    for name, done in rows.items():
        summary = ev.summarize(done)
        summary["wall_seconds"] = round(walls[name], 1)
        results[name] = summary
        results[f"{name}_rows"] = [{k: r[k] for k in ("id", "strict_rank", "passage_rank", "prediction")} for r in done]
        print(f"{name} ({len(done)} questions): " + ", ".join(
            f"{k} {summary[k]:.4f}" for k in ("strict_recall@1", "strict_recall@5", "strict_recall@20", "passage_recall@5"))
            + f", answer p50 {summary['latency_ms_p50']:.0f} ms, p95 {summary['latency_ms_p95']:.0f} ms", flush=True)
    results["same_strict_rank"] = sum(a["strict_rank"] == b["strict_rank"]
                                      for a, b in zip(results["local_rows"], results["milvus_lite_rows"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--set", default="ncp_policy_qa_dev")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--slice", type=int, default=100, help="questions per slice (results written after each)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "store_parity.json"))
    args = parser.parse_args()
    bench = ev.load_benchmark(Path(args.data) / args.set)
    questions = ev.sample_questions(bench.questions, args.limit)
    local = ev.open_eval_index(bench, **ANSWERING)
    results: dict = {"set": args.set, "questions": len(questions), "answering": ANSWERING, "complete": False}
    rows: dict[str, list[dict]] = {"local": [], "milvus_lite": []}
    walls = {"local": 0.0, "milvus_lite": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        milvus, build_s = milvus_index(bench, local, Path(tmp))
        results["milvus_build_seconds"] = round(build_s, 1)
        # Slices, both stores on each in turn: the two see the same machine load, and a run
        # stopped early still leaves a like-for-like figure on the questions done so far.
        for lo in range(0, len(questions), args.slice):
            for name, kb in (("local", local), ("milvus_lite", milvus)):
                t0 = time.perf_counter()
                rows[name] += ev.evaluate(kb, bench, questions[lo:lo + args.slice], top_k=20)
                walls[name] += time.perf_counter() - t0
            results["questions_done"] = len(rows["local"])
            results["complete"] = len(rows["local"]) == len(questions)
            summarise(results, rows, walls, Path(args.out))
    same = results["same_strict_rank"]
    print(f"same strict rank for {same} of {len(questions)} questions")
    print("| store | strict R@1 | strict R@5 | strict R@20 | passage R@5 | answer p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for name in ("local", "milvus_lite"):
        s = results[name]
        print(f"| {name} | {100 * s['strict_recall@1']:.1f} | {100 * s['strict_recall@5']:.1f} | "
              f"{100 * s['strict_recall@20']:.1f} | {100 * s['passage_recall@5']:.1f} | "
              f"{s['latency_ms_p50']:.0f} | {s['latency_ms_p95']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
