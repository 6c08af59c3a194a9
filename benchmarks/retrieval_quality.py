"""Retrieval and answer quality: BM25 only vs dense only vs hybrid, and abstention.

On ``cmrc_train`` (a fixed sample of up to 2,000 questions, seed 0, index of all 2,403
passages), ``ncp_policy_qa_dev`` (index of its 593 policy notices) -- by default only the
questions whose passage the reader was not trained on (``--split heldout``, see
``rag.training.data.is_heldout``) -- and all of ``dureader_search_dev`` (real search
queries, evaluation only), with the knowledge base's defaults, this reports for each
retrieval mode the figures of ``rag eval`` (strict and passage Recall@1/5/20, MRR@10,
answer EM/F1 overall and on short numeric answers, abstention, latency).

Abstention is measured the way a user meets it: each passage set is split in two halves
by a hash of the passage id, an index is built from half A only, and every question is
asked against it. Questions whose gold passage is in A should be answered ("answered
rate"); questions whose gold passage is in B have no answer in that index and should be
refused ("abstention rate on unanswerable"). The gate is opened for this run so that every
answer keeps its confidence; the curve over thresholds is computed from those rows.

Usage (one command; the indexes are cached under ~/.cache/rag-zh/eval, so reruns only
ask the questions)::

    python benchmarks/retrieval_quality.py [--data ../shared/data] [--cmrc-limit 2000]
        [--modes bm25,dense,hybrid] [--no-abstention] [--split heldout|train|all]
        [--reader model|rules] [--reranker model|none] [--sets cmrc,ncp,dureader]
        [--out benchmarks/results/retrieval_quality.json]

Writes the figures (and per-question rows) to the JSON file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import evaluation as ev

DEFAULT_DATA = ROOT.parent / "shared" / "data"
SETS = (("cmrc_train", "cmrc"), ("ncp_policy_qa_dev", "ncp"), ("dureader_search_dev", "dureader"))
TRAINED_ON = ("cmrc_train", "ncp_policy_qa_dev")  # asked on --split; dureader is evaluation only, all of it


def half_of(passage_id: str) -> str:
    """A or B, fixed by a hash of the passage id."""
    return "A" if hashlib.sha256(str(passage_id).encode()).digest()[0] % 2 == 0 else "B"


def abstention_run(bench: ev.Benchmark, questions: list[dict], cache_dir, progress: bool, answering: dict) -> dict:
    """Index half A of the passages; ask every question with the gate open (threshold 0), so
    each row keeps the confidence the reader gave; answered vs refused by half follow for
    any threshold (:func:`curve`)."""
    from rag.answering import AnswerGate

    kept = [p for p in bench.passages if half_of(p["id"]) == "A"]
    digest = hashlib.sha256(
        (bench.content_hash + "|half-A|" + ",".join(str(p["id"]) for p in kept)).encode()
    ).hexdigest()
    half = ev.Benchmark(bench.folder, kept, bench.questions, digest)
    kb = ev.open_eval_index(half, None, cache_dir, progress=progress, **answering)
    default = kb.answer_gate.threshold(kb.pipeline.reader)
    kb.answer_gate = AnswerGate(min_confidence=0.0)
    rows = ev.evaluate(kb, half, questions, mode="hybrid", top_k=ev.ANSWER_TOP_K, progress=progress)
    for r in rows:
        r["gold_indexed"] = half_of(r["passage_id"]) == "A"
    return {"indexed_passages": len(kept), "default_threshold": default,
            "answerable_questions": sum(r["gold_indexed"] for r in rows),
            "unanswerable_questions": sum(not r["gold_indexed"] for r in rows),
            **curve(rows, [default])[0], "curve": curve(rows, THRESHOLDS), "rows": rows}


THRESHOLDS = [round(0.05 * i, 2) for i in range(2, 19)]


def curve(rows: list[dict], thresholds: list[float]) -> list[dict]:
    """Per threshold: answered share and EM of questions whose gold passage is indexed, and
    the refused share of those whose gold passage is not."""
    inside = [r for r in rows if r["gold_indexed"]]
    outside = [r for r in rows if not r["gold_indexed"]]
    out = []
    for t in thresholds:
        ok = [r for r in inside if r["prediction"] is not None and r["confidence"] >= t]
        out.append({"threshold": t,
                    "answered_rate_answerable": len(ok) / max(len(inside), 1),
                    "exact_match_answerable": sum(r["em"] for r in ok) / max(len(inside), 1),
                    "abstention_rate_unanswerable": sum(r["prediction"] is None or r["confidence"] < t
                                                        for r in outside) / max(len(outside), 1)})
    return out


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(results: dict) -> str:
    cols = [
        ("strict R@1", "strict_recall@1"), ("strict R@5", "strict_recall@5"), ("strict R@20", "strict_recall@20"),
        ("strict MRR@10", "strict_mrr@10"), ("passage R@1", "passage_recall@1"), ("passage R@5", "passage_recall@5"),
        ("passage R@20", "passage_recall@20"), ("EM", "exact_match"), ("F1", "f1"),
        ("EM short num.", "short_numeric_exact_match"), ("abstain", "abstention_rate"),
    ]
    head = "| set | mode | " + " | ".join(c for c, _ in cols) + " | p50 ms | p95 ms |"
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    for short, block in results["sets"].items():
        for mode, res in block["modes"].items():
            s = res["summary"]
            cells = [pct(s[k]) for _, k in cols]
            lines.append(f"| {short} | {mode} | " + " | ".join(cells)
                         + f" | {s['latency_ms_p50']:.0f} | {s['latency_ms_p95']:.0f} |")
    out = "\n".join(lines)
    abst = [(short, b["abstention"]) for short, b in results["sets"].items() if b.get("abstention")]
    if abst:
        out += "\n\n| set (index of half the passages) | answered, gold indexed | EM, gold indexed " \
               "| refused, gold not indexed |\n|---|---|---|---|\n"
        out += "\n".join(
            f"| {short} ({a['indexed_passages']} passages; {a['answerable_questions']} + "
            f"{a['unanswerable_questions']} questions) | {pct(a['answered_rate_answerable'])} "
            f"| {pct(a['exact_match_answerable'])} | {pct(a['abstention_rate_unanswerable'])} |"
            for short, a in abst
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cmrc-limit", type=int, default=2000)
    parser.add_argument("--modes", default="bm25,dense,hybrid")
    parser.add_argument("--no-abstention", action="store_true")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval_quality.json")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--split", default="heldout", choices=("heldout", "train", "all"),
                        help="cmrc/ncp questions of passages the reader was not trained on (default), or was")
    parser.add_argument("--sets", default="cmrc,ncp,dureader")
    parser.add_argument("--reader", default="model", choices=("model", "rules"))
    parser.add_argument("--reranker", default="model", help="model, none or a CrossEncoder folder")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"benchmark data not found at {args.data}; pass --data (the shared data folder)", file=sys.stderr)
        return 2
    modes = [m for m in args.modes.split(",") if m]
    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "sets": {}}
    t_all = time.perf_counter()
    answering = {"reader": args.reader, "reranker": args.reranker}
    results["answering"] = answering | {"split": args.split}
    for folder, short in SETS:
        if short not in args.sets.split(","):
            continue
        bench = ev.load_benchmark(args.data / folder)
        limit = args.cmrc_limit if short == "cmrc" else None
        split = args.split if folder in TRAINED_ON else "all"
        questions = ev.sample_questions(ev.split_questions(bench.questions, split), limit)
        block: dict = {"questions": len(questions), "split": split, "modes": {}}
        t0 = time.perf_counter()
        kb = ev.open_eval_index(bench, None, args.cache_dir, progress=args.progress, **answering)
        block["index_seconds"] = round(time.perf_counter() - t0, 1)
        stats = kb.stats()
        block["settings"] = {"chunks": stats["chunks"], "chunking": stats["chunking"], "tokenizer": stats["tokenizer"],
                             "model": stats["model"], "fusion": dict(kb.fusion.__dict__), "sample_seed": ev.SAMPLE_SEED,
                             "limit": limit}
        for mode in modes:
            rows = ev.evaluate(kb, bench, questions, mode=mode, top_k=20, progress=args.progress)
            block["modes"][mode] = {"summary": ev.summarize(rows), "rows": rows}
            print(f"{short} {mode}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                     for k, v in block["modes"][mode]["summary"].items()}),
                  file=sys.stderr, flush=True)
        if not args.no_abstention and folder in TRAINED_ON:
            block["abstention"] = abstention_run(bench, questions, args.cache_dir, args.progress, answering)
            a = {k: v for k, v in block["abstention"].items() if k not in ("rows", "curve")}
            print(f"{short} abstention: {json.dumps(a)}", file=sys.stderr, flush=True)
        results["sets"][short] = block
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(markdown(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
