"""Writing into Milvus Lite: chunks/s of commits through the store protocol, and answer latency after.

    python benchmarks/milvus_write.py [--size 6000] [--commit 2000] [--questions 30]
        [--baseline DIR] [--rounds 1] [--out benchmarks/results/milvus_write.json]

The chunks are those of ``benchmarks/milvus_scale.py`` (the ``ncp_policy_qa_dev`` passages
with their real vectors from the evaluation cache, replicated to ``--size``), committed
``--commit`` chunks at a time (about what ``KnowledgeBase.add`` commits: ``commit_every``
2,000) into a fresh Milvus Lite file; then the same process answers ``--questions`` real
questions (rules reader, no reranker) on that store, after one warm-up.

With ``--baseline DIR`` (another checkout of this repository, e.g. ``git worktree add
/tmp/base main``), the same write and questions run with that checkout's ``rag`` too,
alternating with this one's, ``--rounds`` times each, one fresh process per pass, so both
see the same machine load; the ratio is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANSWERING = {"reader": "rules", "reranker": "none"}


def passes(size: int, per_commit: int):
    """(settings, batches): milvus_scale's chunks cut into commits of ~``per_commit`` chunks
    (whole documents each)."""
    from milvus_scale import source_batches

    from rag.store.base import Batch

    settings, batches, _ = source_batches(size)
    out: list[Batch] = []
    for big in batches:
        per_doc = Counter(c.doc_id for c in big.chunks)
        starts = np.cumsum([0] + [per_doc[d.doc_id] for d, _ in big.documents])
        lo = 0
        for i in range(1, len(big.documents) + 1):
            if starts[i] - starts[lo] >= per_commit or i == len(big.documents):
                out.append(Batch([], big.documents[lo:i], big.chunks[starts[lo]:starts[i]],
                                 big.vectors[starts[lo]:starts[i]]))
                lo = i
    return settings, out


def child(size: int, per_commit: int, n_questions: int) -> dict:
    """One pass in this process: write, then answer (``rag`` comes from sys.path[0])."""
    from scale import pct, questions

    import rag
    from rag import KnowledgeBase
    from rag.store.milvus import MilvusStore

    settings, batches = passes(size, per_commit)
    with tempfile.TemporaryDirectory() as tmp:
        store = MilvusStore(str(Path(tmp) / "kb.db"))
        commits = []
        t0 = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            with store.writing(settings):
                store.commit(batch)
            commits.append(round(time.perf_counter() - t, 2))
        write_s = time.perf_counter() - t0
        chunks = sum(len(b.chunks) for b in batches)
        kb = KnowledgeBase(Path(tmp) / "index", store=store, **ANSWERING)
        qs = questions(n_questions + 1)
        kb.answer(qs[0])
        times = []
        for q in qs[1:]:
            t = time.perf_counter()
            kb.answer(q)
            times.append((time.perf_counter() - t) * 1000)
        store.close()
    return {"rag": str(Path(rag.__file__).parents[1]), "chunks": chunks, "commits": len(batches),
            "write_s": round(write_s, 1), "chunks_per_s": round(chunks / write_s, 1), "commit_s": commits,
            "questions": len(times), "answer_ms_p50": round(pct(times, 50), 1), "answer_ms_p95": round(pct(times, 95), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--commit", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--baseline", help="another checkout whose rag is the 'before'")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "milvus_write.json"))
    parser.add_argument("--child", metavar="CODE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path[:0] = [args.child, str(ROOT / "benchmarks")]
        import rag  # noqa: F401  (first: milvus_scale puts this checkout on sys.path too)
        print(json.dumps(child(args.size, args.commit, args.questions)))
        return 0

    from milvus_scale import run_child

    trees = {"this": str(ROOT)} | ({"baseline": str(Path(args.baseline).resolve())} if args.baseline else {})
    out: dict = {"command": "python benchmarks/milvus_write.py " + " ".join(sys.argv[1:]), "size": args.size,
                 "commit": args.commit, "answering": ANSWERING, "runs": {name: [] for name in trees}}
    for _ in range(args.rounds):
        for name, tree in reversed(trees.items()):  # the baseline first in each round
            result = run_child(__file__, ["--size", str(args.size), "--commit", str(args.commit),
                                          "--questions", str(args.questions), "--child", tree], f"the pass with {tree}")
            out["runs"][name].append(result)
            print(f"{name}: {json.dumps(result)}", flush=True)
            Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    if "baseline" in trees:
        def mean(name: str, key: str) -> float:
            return float(np.mean([r[key] for r in out["runs"][name]]))

        out["ratio"] = {"chunks_per_s": round(mean("this", "chunks_per_s") / mean("baseline", "chunks_per_s"), 2),
                        "answer_ms_p50": round(mean("this", "answer_ms_p50") / mean("baseline", "answer_ms_p50"), 2),
                        "answer_ms_p95": round(mean("this", "answer_ms_p95") / mean("baseline", "answer_ms_p95"), 2)}
        print(f"this / baseline: {out['ratio']}")
        Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
