"""How much the retrieval score should count beside the trained reranker's relevance logit.

    python benchmarks/rerank_mix.py [--data ../shared/data] [--limit 300]

On the reader's *training* passages only (``--split train``; tuning here touches no held-out
question and no evaluation-only set), each question's first 5 hybrid candidates are read
once by the model; their order under ``logit + w x retrieval score (min-max over the 5)`` is
replayed for a grid of ``w`` and scored by strict Recall@1. Writes
``benchmarks/results/rerank_mix.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import evaluation as ev
from rag.answering.trained import TrainedReader, mixed

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 100.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"benchmark data not found at {args.data}", file=sys.stderr)
        return 2
    reader = TrainedReader()
    out: dict = {"split": args.split, "weights": list(WEIGHTS), "sets": {}}
    for folder in ("cmrc_train", "ncp_policy_qa_dev"):
        bench = ev.load_benchmark(args.data / folder)
        questions = ev.sample_questions(ev.split_questions(bench.questions, args.split), args.limit)
        kb = ev.open_eval_index(bench, None, None, reranker="none", reader="rules")
        hits = {w: 0 for w in WEIGHTS}
        for q in questions:
            passages = kb.search(q["question"], top_k=5)
            if not passages:
                continue
            scored = reader.scores(q["question"], passages)
            strict = [p.doc_id == str(q["passage_id"]) and q["answers"][0] in p.text for p in passages]
            for w in WEIGHTS:
                m = mixed(scored, passages, w)
                hits[w] += strict[max(range(len(m)), key=m.__getitem__)]
        out["sets"][folder] = {str(w): hits[w] / len(questions) for w in WEIGHTS} | {"questions": len(questions)}
        print(folder, json.dumps(out["sets"][folder]), flush=True)
    path = ROOT / "benchmarks" / "results" / "rerank_mix.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
