"""How much the retrieval score should count beside the trained reranker's relevance logit.

    python benchmarks/rerank_mix.py [--data ../shared/data] [--limit 300]

On the reader's *training* passages only (``--split train``; tuning here touches no held-out
question and no evaluation-only set), each question's first 5 hybrid candidates are read
once by the model; their order under ``logit + w x retrieval score + d x dense score``
(both min-max over the 5) is replayed for a grid of ``w`` and ``d`` and scored by strict
Recall@1. ``--search-style`` asks each question as a search-engine query instead
(:func:`rag.training.data.search_style`, the rewriting the reader was trained with), the
style on which the fused score leans on BM25. Writes ``benchmarks/results/rerank_mix.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import evaluation as ev
from rag.answering.trained import TrainedReader, mixed
from rag.training.data import search_style

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 100.0)
DENSE_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--split", default="train")
    ap.add_argument("--search-style", action="store_true", help="ask each question as a search query")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"benchmark data not found at {args.data}", file=sys.stderr)
        return 2
    reader = TrainedReader()
    rng = random.Random(0)
    grid = [(w, d) for w in WEIGHTS for d in DENSE_WEIGHTS]
    out: dict = {"split": args.split, "search_style": args.search_style, "weights": list(WEIGHTS),
                 "dense_weights": list(DENSE_WEIGHTS), "sets": {}}
    for folder in ("cmrc_train", "ncp_policy_qa_dev"):
        bench = ev.load_benchmark(args.data / folder)
        questions = ev.sample_questions(ev.split_questions(bench.questions, args.split), args.limit)
        kb = ev.open_eval_index(bench, None, None, reranker="none", reader="rules")
        hits = dict.fromkeys(grid, 0)
        asked = 0
        for q in questions:
            question = search_style(q["question"], rng) if args.search_style else q["question"]
            if not question:
                continue
            asked += 1
            passages = kb.search(question, top_k=5)
            if not passages:
                continue
            scored = reader.scores(question, passages)
            strict = [p.doc_id == str(q["passage_id"]) and q["answers"][0] in p.text for p in passages]
            for w, d in grid:
                m = mixed(scored, passages, w, d)
                hits[w, d] += strict[max(range(len(m)), key=m.__getitem__)]
        out["sets"][folder] = {f"{w}/{d}": round(hits[w, d] / max(asked, 1), 4) for w, d in grid} | {"questions": asked}
        print(folder, json.dumps(out["sets"][folder]), flush=True)
    name = "rerank_mix_search.json" if args.search_style else "rerank_mix.json"
    path = ROOT / "benchmarks" / "results" / name
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
