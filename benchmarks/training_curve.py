"""Plot the reader's training: loss per step and held-out EM/F1 per evaluation.

    python benchmarks/training_curve.py [--log rag/models/reader/training_log.jsonl] [--out docs/reader_training.png]

The log is the one ``python -m rag.training`` writes (``<out>/log.jsonl``), shipped beside
the weights. Needs matplotlib (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", type=Path, default=REPO / "rag" / "models" / "reader" / "training_log.jsonl")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "reader_training.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in args.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    window = 20
    for key, label in (("loss", "total"), ("span", "span"), ("rel", "relevance")):
        ys = [r[key] for r in steps]
        smooth = [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1]) for i in range(len(ys))]
        a.plot([r["step"] for r in steps], smooth, label=f"{label} (mean of {window})")
    a.set_xlabel("step")
    a.set_ylabel("training loss")
    a.legend()
    for name in sorted({r["eval"] for r in evals}):
        pts = [r for r in evals if r["eval"] == name]
        for key, style in (("em", "-o"), ("f1", "--s")):
            b.plot([r["step"] for r in pts], [r[key] for r in pts], style, label=f"{name} {key.upper()}")
    b.set_xlabel("step")
    b.set_ylabel("held-out, gold window among hard negatives")
    b.set_ylim(0, 1)
    b.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
