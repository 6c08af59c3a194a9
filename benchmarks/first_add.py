"""No wait on the first upload: first-add latency and `rag ask` cold start, as ratios to a
bare ``python -c "import rag"`` measured in the same run.

    python benchmarks/first_add.py [--repeat 3]

Each figure is the median wall time of fresh processes (model cache present: run once
before), with their median CPU time (user + system) beside it. "first add": open a new
KnowledgeBase and add one short document (1 chunk), process start to return; then 100
distinct sentences (16 chunks, the most the C engine takes before torch is loaded; more
load torch, whose cost the breakdown gives). "ask cold": `rag ask` on the seed
index, process start to the printed answer, with the default (trained) reader and with
``--reader rules --reranker none`` (no torch); ``--skip-ask`` leaves them to
benchmarks/cold_start.py. The breakdown of a torch load (import, model open, precision
decision) is printed once and recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ADD = """
import sys, tempfile
from rag import KnowledgeBase, Document
kb = KnowledgeBase(tempfile.mkdtemp() + "/i")
text = "".join(f"晋中市第{{i}}批建立院士(专家)工作站{{i}}家,获批设立{{i}}家国家博士后科研站,{{i}}家省级博士创新站。"
               for i in range({n}))  # distinct sentences: repeated chunks are embedded once
kb.add_documents([Document(title="晋中人才", text=text, source="a")])
print("torch loaded" if "torch" in sys.modules else "no torch")
"""
BREAKDOWN = """
import time
t = time.perf_counter(); import torch; a = time.perf_counter() - t
import rag.embedding as E
t = time.perf_counter(); st = E._import_st(); b = time.perf_counter() - t
t = time.perf_counter(); m = E._open_st(str(E.default_model_dir()), is_local=True); c = time.perf_counter() - t
t = time.perf_counter(); p = E._cached_precision(E.default_model_dir(), m, "auto", 0.99); d = time.perf_counter() - t
print(f"import torch {a:.2f} s, sentence-transformers {b:.2f} s, open model {c:.2f} s, precision ({p}, cached) {d:.2f} s")
"""


CPU: dict[str, float] = {}  # median CPU seconds (user + system) of the same runs, by command
OUT: dict[str, str] = {}  # the last run's output, by command


def wall(cmd: list[str], repeat: int) -> float:
    """Median wall seconds of ``repeat`` fresh processes; their median CPU time goes to CPU."""
    times, cpus = [], []
    for _ in range(repeat):
        before = os.times()
        t0 = time.perf_counter()
        OUT[" ".join(cmd)] = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
        times.append(time.perf_counter() - t0)
        after = os.times()
        cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
    CPU[" ".join(cmd)] = statistics.median(cpus)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-ask", action="store_true", help="only the adds (rag ask: benchmarks/cold_start.py)")
    parser.add_argument("--out", default=str(HERE / "results" / "first_add.json"))
    args = parser.parse_args()
    py = sys.executable
    load_start = os.getloadavg()[0]
    index = Path(tempfile.mkdtemp(prefix="first-add-")) / "index"
    subprocess.run([py, "-m", "rag.cli", "index", str(REPO / "data" / "articles"), "--index-dir", str(index), "-q"],
                   cwd=REPO, check=True, capture_output=True)
    subprocess.run([py, "-c", ADD.format(n=40)], cwd=REPO, check=True)  # converts the model once if needed
    base = wall([py, "-c", "import rag"], args.repeat)
    base_cpu = CPU[f"{py} -c import rag"]
    cmds = {
        "import rag": [py, "-c", "import rag"],
        "first add, 1 short document": [py, "-c", ADD.format(n=3)],
        "first add, 100 sentences (16 chunks: the C engine, no torch)": [py, "-c", ADD.format(n=100)],
        "rag ask cold": [py, "-m", "rag.cli", "ask", "晋中有几家省级博士创新站", "--index-dir", str(index)],
        "rag ask cold, --reader rules --reranker none": [py, "-m", "rag.cli", "ask", "晋中有几家省级博士创新站",
                                                         "--index-dir", str(index), "--reader", "rules",
                                                         "--reranker", "none"],
    }
    if args.skip_ask:
        cmds = {k: v for k, v in cmds.items() if not k.startswith("rag ask")}
    rows = {name: wall(cmd, args.repeat) for name, cmd in cmds.items()}
    cpu = {name: CPU[" ".join(cmd)] for name, cmd in cmds.items()}
    for name, seconds in rows.items():
        print(f"{name:44} {seconds:6.2f} s   {seconds / base:5.1f}x import rag   "
              f"CPU {cpu[name]:5.2f} s   {cpu[name] / base_cpu:5.1f}x import rag")
    breakdown = subprocess.run([py, "-c", BREAKDOWN], cwd=REPO, check=True, capture_output=True, text=True).stdout
    print(breakdown.strip())
    result = {"command": "python benchmarks/first_add.py " + " ".join(sys.argv[1:]), "repeat": args.repeat,
              "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()[0],
              "torch_load_breakdown": breakdown.strip()}
    result |= {k: {"s": round(v, 3), "x_import_rag": round(v / base, 2), "cpu_s": round(cpu[k], 3),
                   "cpu_x_import_rag": round(cpu[k] / base_cpu, 2),
                   "output": OUT[" ".join(cmds[k])].strip()[-200:]} for k, v in rows.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
