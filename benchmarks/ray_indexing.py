"""Indexing with Ray (``rag index --ray local``) against the single-process path, same files, same run.

    python benchmarks/ray_indexing.py [--files 100] [--workers 2]
        [--folder ../shared/data/policy_corpus/ncp_covid_policy_docs] [--out benchmarks/results/ray_indexing.json]

Passes, each into a fresh local index of the same copied files, in this order: the single
process (``KnowledgeBase.add``), Ray with ``--workers`` workers, Ray with 1 worker, Ray on one
file (the fixed cost of a run: actors started, one model loaded per actor), and the single
process with instant random vectors instead of the model (everything the driver does but
embedding: an upper bound on what one driver can write, since a Ray driver does not read or
chunk). Ray itself is started once before the passes and timed apart.

From these: chunks/s of each pass; the overhead per document of Ray against one process;
per-worker throughput (the 1-worker pass less the fixed cost); and a projection for N
machines of W workers: ``min(N * W * per-worker, driver ceiling)``. On the 2 shared cores of
the machine this was written on, 2 workers cannot beat one process (they share the cores and
each loads its own model): read the projection, not the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import KnowledgeBase

ANSWERING = {"reader": "rules", "reranker": "none"}  # indexing only: no reader model to load


class RandomVectors:
    """The model's embedder with instant random unit vectors: times everything but embedding."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.rng = np.random.default_rng(0)

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def embed_passages(self, texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        x = self.rng.standard_normal((len(texts), int(self.inner.dim))).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def one_pass(name: str, folder: Path, docs: Path, **add) -> dict:
    kb = KnowledgeBase(folder, **ANSWERING)
    if name == "single_random_vectors":
        kb.embedder = RandomVectors(kb.embedder)
    kb.embedder.embed_passages(["预热"])  # this process's model loaded before the clock runs (workers' is not)
    t0 = time.perf_counter()
    report = kb.add([docs], **add)
    seconds = time.perf_counter() - t0
    if report.failed:
        raise SystemExit(f"{name}: failed files {report.failed[:3]}")
    n_docs = len(report.added)
    out = {"documents": n_docs, "chunks": int(report.chunks), "seconds": round(seconds, 2),
           "chunks_per_s": round(report.chunks / seconds, 2), "docs_per_s": round(n_docs / seconds, 3),
           "index_chunks": int(kb.stats()["chunks"])}
    print(f"{name}: {out}", flush=True)
    return out


def start_ray(workers: int, tries: int = 3) -> None:
    """Ray on this machine; on a loaded machine its node can miss Ray's fixed 30 s startup
    window (raylet registration), so try again a few times."""
    import ray

    from rag.ray_indexing import connect

    for attempt in range(1, tries + 1):
        try:
            connect("local", workers)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            print(f"ray start attempt {attempt} failed: {exc}", flush=True)
            ray.shutdown()
            if attempt == tries:
                raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(ROOT.parent / "shared" / "data" / "policy_corpus" / "ncp_covid_policy_docs"))
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_indexing.json"))
    args = parser.parse_args()

    import torch

    files = sorted(Path(args.folder).glob("*.txt"))[: args.files]
    results: dict = {
        "command": "python benchmarks/ray_indexing.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "driver_torch_threads": torch.get_num_threads(), "load_avg_at_start": os.getloadavg()},
        "files": len(files), "folder": args.folder, "workers": args.workers, "passes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        docs, one = tmp_path / "docs", tmp_path / "one"
        docs.mkdir()
        one.mkdir()
        for f in files:
            shutil.copy2(f, docs / f.name)
        shutil.copy2(files[0], one / files[0].name)

        t0 = time.perf_counter()
        start_ray(args.workers)
        results["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
        print(f"ray started in {results['ray_start_seconds']} s", flush=True)
        plan = [
            ("single", docs, {}),
            (f"ray_{args.workers}_workers", docs, {"ray": "local", "ray_workers": args.workers}),
            ("ray_1_worker", docs, {"ray": "local", "ray_workers": 1}),
            ("ray_1_file", one, {"ray": "local", "ray_workers": 1}),
            ("single_random_vectors", docs, {}),
        ]
        for name, source, add in plan:
            results["passes"][name] = one_pass(name, tmp_path / name, source, **add)
            Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")

    p = results["passes"]
    single, multi = p["single"], p[f"ray_{args.workers}_workers"]
    fixed = p["ray_1_file"]["seconds"]
    per_worker = p["ray_1_worker"]["chunks"] / max(p["ray_1_worker"]["seconds"] - fixed, 1e-9)
    ceiling = p["single_random_vectors"]["chunks_per_s"]
    results["summary"] = {
        "ray_vs_single_throughput": round(multi["chunks_per_s"] / single["chunks_per_s"], 3),
        "overhead_per_document_s": round((multi["seconds"] - single["seconds"]) / max(single["documents"], 1), 3),
        "overhead_per_document_s_without_fixed_cost": round(
            (multi["seconds"] - fixed - single["seconds"]) / max(single["documents"], 1), 3),
        "fixed_cost_per_run_s": fixed,
        "per_worker_chunks_per_s": round(per_worker, 2),
        "driver_ceiling_chunks_per_s": ceiling,
        "same_chunk_count": len({v["index_chunks"] for k, v in p.items() if k not in ("ray_1_file",)}) == 1,
        "projection_chunks_per_s": {
            f"{n}_machines_x_{w}_workers": round(min(n * w * per_worker, ceiling), 1)
            for n in (1, 4, 16, 64) for w in (8, 32)
        },
    }
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
