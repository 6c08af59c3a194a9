"""What the web app's upload progress costs: embedding in slices (for progress and cancel)
against one call, on the same passages, in the same run.

    python benchmarks/web_upload.py [--passages 256] [--rounds 3] [--slices 32,64]

Passages are the chunks of the 31 government work reports in ../shared/data/policy_corpus
(or of data/articles, repeated with a counter, when that folder is missing). The ways are
interleaved round by round; the ratio is of median CPU seconds (the process's own work,
which the other jobs on a shared machine disturb far less than wall time). Writes
benchmarks/results/web_upload.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.chunking import ChunkSettings, chunk_text
from rag.documents import read_file
from rag.embedding import load_embedder
from rag.web.uploads import ProgressEmbedder, UploadJob

REPORTS = REPO.parent / "shared" / "data" / "policy_corpus" / "gov_work_reports_2026"


def passages(n: int) -> list[str]:
    files = sorted(REPORTS.glob("*.txt")) if REPORTS.is_dir() else []
    if not files:
        print(f"{REPORTS} is missing; using data/articles", file=sys.stderr)
        files = sorted((REPO / "data" / "articles").glob("*.txt"))
    texts: list[str] = []
    settings = ChunkSettings(500, 200)
    while len(texts) < n:
        for f in files:
            texts.extend(f"{len(texts)} {c.text}" for c in chunk_text(read_file(f).text, "", settings))
    return texts[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slices", default=str(ProgressEmbedder.SLICE), help="slice sizes to compare, e.g. 32,64")
    args = parser.parse_args()
    texts = passages(args.passages)
    inner = load_embedder(None)
    inner.embed_passages(texts[:8])  # load the model before timing
    ways = {"one call": None, **{f"slices of {n}": int(n) for n in args.slices.split(",")}}
    cpu: dict[str, list[float]] = {w: [] for w in ways}
    wall: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(args.rounds):
        for way, size in ways.items():
            tracked = ProgressEmbedder(inner)
            if size:
                tracked.SLICE = size
            job = UploadJob([], total_chunks=len(texts))
            c, t = time.process_time(), time.perf_counter()
            if size:
                with tracked.watching(job):
                    tracked.embed_passages(texts)
            else:
                inner.embed_passages(texts)
            cpu[way].append(time.process_time() - c)
            wall[way].append(time.perf_counter() - t)
    base = statistics.median(cpu["one call"])
    ratios = {w: round(statistics.median(v) / base, 3) for w, v in cpu.items()}
    result = {"passages": len(texts), "cpu_s": cpu, "wall_s": wall, "cpu_ratio_to_one_call": ratios}
    out = REPO / "benchmarks" / "results" / "web_upload.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{len(texts)} passages, CPU time against one call: {ratios}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
