"""How to fuse dense and BM25 scores: the measurements behind ``FusionSettings``' defaults.

For every question the dense cosine and the BM25 score of every chunk are computed once
from the cached evaluation index (the one ``rag eval`` and ``retrieval_quality.py`` use),
then each fusion variant is replayed offline in numpy with ``rag.retrieval.fuse`` -- the
code the knowledge base runs -- over the same candidate pool (top ``pool`` of each
method). Variants: each method alone, reciprocal-rank fusion, fixed-weight min-max and
z-score fusion over a weight sweep, and the query-dependent weighting (dense weight
falling as the best BM25 chunk holds more of the question) over a grid.

Usage::

    python benchmarks/fusion_study.py [--data ../shared/data] [--cmrc-limit 2000]
        [--chunk-size 500 --chunk-overlap 200] [--out benchmarks/results/fusion_study.json]

Another chunking needs its own index (embedding every chunk once; vectors of chunks that
are unchanged come from the cache). ``--chunk-sweep`` instead compares chunkings with BM25
alone, which needs no embedding: the share of questions whose ``answers[0]`` fits in some
chunk of its gold passage (the ceiling of strict recall) and BM25's strict and passage
recall.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import evaluation as ev
from rag.retrieval import FusionSettings, fuse, top_positive

DEFAULT_DATA = ROOT.parent / "shared" / "data"


def question_pools(kb, bench: ev.Benchmark, questions: list[dict], pool: int) -> list[tuple]:
    """Per question: candidate ids, their dense and BM25 scores, the BM25 strength, and
    which candidates are strict / passage hits."""
    snap = kb.store.current()
    with snap.connect() as con:
        rows = con.execute(
            'SELECT c.id, c.doc_id, substr(d.text, c.start + 1, c."end" - c.start) '
            "FROM chunks c JOIN documents d ON d.id = c.doc_id"
        ).fetchall()
    ids = np.array([r[0] for r in rows], np.int64)
    doc = {int(r[0]): r[1] for r in rows}
    text = {int(r[0]): r[2] for r in rows}
    vectors = snap.vectors.reconstruct_batch(ids).astype(np.float32)
    out = []
    for q in questions:
        qvec = kb._query_vector(q["question"])
        dense_all = vectors @ qvec
        lexical_all = snap.bm25.scores(q["question"])
        d_top = ids[np.argpartition(-dense_all, min(pool, len(ids) - 1))[:pool]]
        cand = np.unique(np.concatenate([d_top, top_positive(lexical_all, pool)]))
        dense = dense_all[np.searchsorted(ids, cand)]
        lexical = lexical_all[cand]
        strength = 0.5
        if lexical.max() > 0:
            strength = float(snap.bm25.query_evidence(q["question"], cand[[int(np.argmax(lexical))]])[1][0])
        gold, answer = str(q["passage_id"]), str(q["answers"][0])
        passage = np.array([doc[int(c)] == gold for c in cand])
        strict = np.array([p and answer in text[int(c)] for c, p in zip(cand, passage)])
        out.append((dense, lexical, strength, strict, passage))
    return out


def replay(pools: list[tuple], score) -> dict:
    first_s, first_p = [], []
    for dense, lexical, strength, strict, passage in pools:
        order = np.argsort(-score(dense, lexical, strength), kind="stable")[:20]
        s, p = strict[order], passage[order]
        first_s.append(int(np.argmax(s)) + 1 if s.any() else 999)
        first_p.append(int(np.argmax(p)) + 1 if p.any() else 999)
    fs, fp = np.array(first_s), np.array(first_p)
    return {
        "strict_recall@1": float((fs <= 1).mean()), "strict_recall@5": float((fs <= 5).mean()),
        "strict_recall@20": float((fs <= 20).mean()), "strict_mrr@10": float(np.where(fs <= 10, 1 / fs, 0).mean()),
        "passage_recall@1": float((fp <= 1).mean()), "passage_recall@5": float((fp <= 5).mean()),
    }  # fmt: skip


def variants() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [
        ("dense only", lambda d, lx, st: d),
        ("BM25 only", lambda d, lx, st: lx),
    ]

    def with_settings(s: FusionSettings):
        return lambda d, lx, st: fuse(d, lx, s, st)

    out.append(("RRF (k=60), equal weights", with_settings(FusionSettings(normalization="rrf", dense_weight=0.5,
                                                                           adaptive=0.0))))
    for how, w in itertools.product(("minmax", "zscore"), (0.1, 0.2, 0.3, 0.5, 0.7)):
        out.append((f"{how}, dense weight {w}", with_settings(FusionSettings(normalization=how, dense_weight=w,
                                                                             adaptive=0.0))))
    for w, a in itertools.product((0.15, 0.25, 0.35), (1.0, 1.5, 2.0)):
        s = FusionSettings(dense_weight=w, adaptive=a, pivot=0.5, min_dense=0.0)
        tag = " (default)" if s == FusionSettings() else ""
        out.append((f"query-dependent: w(0.5)={w}, slope {a}{tag}", with_settings(s)))
    for floor in (0.1, 0.2, 0.3, 0.4):  # the dense score always counts this much
        s = FusionSettings(min_dense=floor)
        tag = " (default)" if s == FusionSettings() else ""
        out.append((f"query-dependent, dense weight at least {floor}{tag}", with_settings(s)))
    return out


def chunk_sweep(data: Path, cmrc_limit: int) -> None:
    from rag.chunking import ChunkSettings, chunk_text, retrieval_text
    from rag.lexical import BM25Index

    print("| set | chunking | chunks | answer fits in a chunk | BM25 strict R@1 | strict R@5 | passage R@5 |")
    print("|---|---|---|---|---|---|---|")
    for folder, short, limit in (("cmrc_train", "cmrc", cmrc_limit), ("ncp_policy_qa_dev", "ncp", None)):
        bench = ev.load_benchmark(data / folder)
        questions = ev.sample_questions(bench.questions, limit)
        for size, overlap in ((300, 60), (400, 120), (400, 150), (500, 150), (500, 200)):
            chunks = {str(p["id"]): chunk_text(p["text"], str(p["id"]), ChunkSettings(size, overlap))
                      for p in bench.passages}
            title = {str(p["id"]): p.get("title", "") for p in bench.passages}
            rows = [(pid, c.text) for pid, cs in chunks.items() for c in cs]
            index = BM25Index("bigram")
            index.add(np.arange(len(rows)), [retrieval_text(title[pid], t) for pid, t in rows])
            fits, strict, passage = 0, [0, 0], 0
            for q in questions:
                gold, answer = str(q["passage_id"]), str(q["answers"][0])
                fits += any(answer in c.text for c in chunks[gold])
                top, _ = index.search(q["question"], 5)
                hits = [rows[i][0] == gold and answer in rows[i][1] for i in top]
                strict[0] += bool(hits[:1] and hits[0])
                strict[1] += any(hits)
                passage += any(rows[i][0] == gold for i in top)
            n = len(questions)
            print(f"| {short} | {size}/{overlap} | {len(rows)} | {100 * fits / n:.1f} | {100 * strict[0] / n:.1f} "
                  f"| {100 * strict[1] / n:.1f} | {100 * passage / n:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cmrc-limit", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--chunk-overlap", type=int, default=None)
    parser.add_argument("--pool", type=int, default=FusionSettings().pool)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fusion_study.json")
    parser.add_argument("--chunk-sweep", action="store_true", help="compare chunkings with BM25 alone")
    parser.add_argument("--split", default="train", choices=("train", "heldout", "all"),
                        help="questions of the reader's training passages (default: tune there), or the others")
    parser.add_argument("--check", default="dureader_search_dev",
                        help="also report this evaluation-only set (never tuned on); '' for none")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"benchmark data not found at {args.data}; pass --data (the shared data folder)", file=sys.stderr)
        return 2
    if args.chunk_sweep:
        chunk_sweep(args.data, args.cmrc_limit)
        return 0
    results: dict = {}
    sets = [("cmrc_train", "cmrc", args.cmrc_limit), ("ncp_policy_qa_dev", "ncp", None)]
    if args.check:
        sets.append((args.check, f"{args.check.split('_')[0]} (check)", None))
    for folder, short, limit in sets:
        bench = ev.load_benchmark(args.data / folder)
        split = "all" if folder == args.check else args.split
        questions = ev.sample_questions(ev.split_questions(bench.questions, split), limit)
        kb = ev.open_eval_index(bench, None, args.cache_dir, chunk_size=args.chunk_size,
                                chunk_overlap=args.chunk_overlap, progress=True)
        pools = question_pools(kb, bench, questions, args.pool)
        results[short] = {name: replay(pools, fn) for name, fn in variants()}
        results[short]["_chunking"] = kb.stats()["chunking"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    keys = ("strict_recall@1", "strict_recall@5", "passage_recall@5")
    print("| fusion | " + " | ".join(f"{s} {k.replace('_recall', ' R')}" for s in results for k in keys) + " |")
    print("|---|" + "---|" * (len(keys) * len(results)))
    for name, _ in variants():
        cells = [f"{100 * results[s][name][k]:.1f}" for s in results for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nchunking: {results['ncp']['_chunking']}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
