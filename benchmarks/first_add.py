"""No wait on the first upload: first-add latency and `rag ask` cold start, as ratios to a
bare ``python -c "import rag"`` measured in the same run.

    python benchmarks/first_add.py [--repeat 3]

Each figure is the median wall time of fresh processes (model cache present: run once
before). "first add": open a new KnowledgeBase and add one short document (2 chunks),
process start to return. "first add, torch": the same with 40 chunks, which loads torch.
"ask cold": `rag ask` on the seed index, process start to the printed answer, with the
default (trained) reader and with ``--reader rules``. The breakdown of a torch load (import,
model open, precision decision) is printed once and recorded.
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
text = "晋中市建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站。" * {n}
kb.add_documents([Document(title="晋中人才", text=text, source="a")])
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


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "first_add.json"))
    args = parser.parse_args()
    py = sys.executable
    load_start = os.getloadavg()[0]
    index = Path(tempfile.mkdtemp(prefix="first-add-")) / "index"
    subprocess.run([py, "-m", "rag.cli", "index", str(REPO / "data" / "articles"), "--index-dir", str(index), "-q"],
                   cwd=REPO, check=True, capture_output=True)
    subprocess.run([py, "-c", ADD.format(n=40)], cwd=REPO, check=True)  # converts the model once if needed
    base = wall([py, "-c", "import rag"], args.repeat)
    rows = {
        "import rag": base,
        "first add, 1 short document": wall([py, "-c", ADD.format(n=3)], args.repeat),
        "first add, 40 chunks (loads torch)": wall([py, "-c", ADD.format(n=120)], args.repeat),
        "rag ask cold": wall([py, "-m", "rag.cli", "ask", "晋中有几家省级博士创新站", "--index-dir", str(index)], args.repeat),
        "rag ask cold, --reader rules": wall([py, "-m", "rag.cli", "ask", "晋中有几家省级博士创新站", "--index-dir",
                                              str(index), "--reader", "rules"], args.repeat),
    }
    for name, seconds in rows.items():
        print(f"{name:36} {seconds:6.2f} s   {seconds / base:5.1f}x import rag")
    breakdown = subprocess.run([py, "-c", BREAKDOWN], cwd=REPO, check=True, capture_output=True, text=True).stdout
    print(breakdown.strip())
    result = {"command": "python benchmarks/first_add.py " + " ".join(sys.argv[1:]), "repeat": args.repeat,
              "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()[0],
              "torch_load_breakdown": breakdown.strip()}
    result |= {k: {"s": round(v, 3), "x_import_rag": round(v / base, 2)} for k, v in rows.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
