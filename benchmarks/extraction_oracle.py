"""Oracle-retrieval quality of the answer extractor on CMRC 2018 (train split).

Each question gets its gold passage as the only passage, so the figures measure the
extractor alone: exact match (EM) and character F1 of ``extract_answer`` against the
gold answers, overall and on short numeric answers, on a fixed sample (seed 0). The
metrics are ``rag.evaluation``'s (the official CMRC normalization), as in ``rag eval``.

Usage::

    python benchmarks/extraction_oracle.py [--n 2000] [--seed 0] [--data ../shared/data/cmrc_train]
        [--show-errors 20] [--type count]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from rag.evaluation import exact_match, f1_score, is_short_numeric
from rag.extraction import extract_answer, question_type
from rag.types import Passage

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cmrc_train"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show-errors", type=int, default=0, help="print this many numeric misses")
    ap.add_argument("--type", default="", help="only show errors of this question type")
    args = ap.parse_args()
    qpath, ppath = args.data / "questions.jsonl", args.data / "passages.jsonl"
    if not qpath.exists() or not ppath.exists():
        print(
            f"data folder {args.data} is missing (expected questions.jsonl and passages.jsonl); "
            "this benchmark needs ../shared/data",
            file=sys.stderr,
        )
        return 2
    passages = {}
    with ppath.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            passages[row["id"]] = row
    with qpath.open(encoding="utf-8") as f:
        questions = [json.loads(line) for line in f]
    random.seed(args.seed)
    sample = random.sample(questions, min(args.n, len(questions)))

    extract_answer("预热", [Passage("预热文本。", "", "", None, 1.0, "d", 0, 5)])  # warm jieba
    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])  # n, em, f1, answered
    errors = []
    t0 = time.perf_counter()
    for row in sample:
        gold = passages[row["passage_id"]]
        p = Passage(gold["text"], gold.get("title", ""), "", None, 1.0, gold["id"], 0, len(gold["text"]))
        span = extract_answer(row["question"], [p])
        pred = span.text if span else None
        if span is not None:
            assert p.text[span.start : span.end] == span.text
        em, f1 = exact_match(pred, row["answers"]), f1_score(pred, row["answers"])
        qt = question_type(row["question"])
        groups = ["all", f"type:{qt}"]
        if is_short_numeric(row["answers"][0]):
            groups.append("short_numeric")
            if not em and (not args.type or args.type == qt):
                errors.append((row["question"], row["answers"][0], pred, qt))
        for g in groups:
            st = stats[g]
            st[0] += 1
            st[1] += em
            st[2] += f1
            st[3] += span is not None
    elapsed = time.perf_counter() - t0

    print(
        f"CMRC 2018 train, oracle passage, n={len(sample)} (seed {args.seed}), "
        f"{1000 * elapsed / len(sample):.2f} ms/question"
    )
    print(f"{'group':<16}{'n':>6}{'EM':>8}{'F1':>8}{'answered':>10}")
    for g in sorted(stats, key=lambda k: (k != "all", k != "short_numeric", k)):
        n, em, f1, ans = stats[g]
        print(f"{g:<16}{n:>6}{em / n:>8.3f}{f1 / n:>8.3f}{ans / n:>10.3f}")
    for qtext, gold_ans, pred, qt in errors[: args.show_errors]:
        print(f"  [{qt}] {qtext}  gold={gold_ans!r}  pred={pred!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
