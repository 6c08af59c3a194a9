"""Which confidence formula should gate the trained reader's answers: a study on the training split.

    python benchmarks/gate_study.py [--data ../shared/data] [--limit 250] [--reuse]

For ``cmrc_train`` and ``ncp_policy_qa_dev`` -- only questions whose passage the reader was
trained on (``split_questions(..., "train")``; no held-out question, nothing of the
evaluation-only ``dureader_search_dev``) -- a fixed sample of ``--limit`` questions (seed 0)
is asked twice: as written, and rewritten as a search-engine query by
:func:`rag.training.data.search_style` (seed 12345, so most rewrites differ from those the
reader was trained with). Each is asked against the half-A index of
``benchmarks/retrieval_quality.py``'s :func:`abstention_run` (same index, same open gate):
questions whose passage is in half B have no answer there and should be refused.

While the questions are asked, the reader records the raw features of the passages it reads
(the top 5 reranked): relevance logit, best span score, no-answer score, the fused retrieval
score, the passage's share of the question's indexed terms, whether the answer's document
lacks a name the question asks about, and the answer that passage would give. The formulas
are then compared offline on those rows, replaying the pipeline's choices (the best-scoring
passage answers; one lacking a named place is skipped as :class:`rag.answering.Pipeline`
does): the shipped geometric mean, relevance alone, span-vs-null alone, weighted log-odds
``w x relevance + (1 - w) x (span - null)``, the top passage only against the best of the top
5, and a logistic regression on the features (2-fold by passage over these same rows). For
each formula: the threshold that maximizes the smallest of the eight rates (answered
answerable and refused unanswerable, per set and style), those rates and the EM of the
answerable questions at it, and the thresholds (if any) meeting 90/90 for each set and
style. ``--reuse`` replays the formulas on the rows of the last run without asking again.

Writes ``benchmarks/results/gate_study.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval_quality import abstention_run, curve

from rag import evaluation as ev
from rag.answering.gate import AnswerGate
from rag.answering.trained import TrainedReader, _key, _unit
from rag.training.data import search_style

SETS = (("cmrc_train", "cmrc"), ("ncp_policy_qa_dev", "ncp"))
STYLES = ("original", "search")
REWRITE_SEED = 12345
OUT = ROOT / "benchmarks" / "results" / "gate_study.json"


class RecordingReader(TrainedReader):
    """The shipped reader, noting what it saw: the retrieval scores of the candidates it
    reranks and, on a question's first read, each passage's raw features."""

    def __init__(self) -> None:
        super().__init__()
        self.retrieval: dict[str, tuple[float, float]] = {}
        self.readings: dict[str, list[dict]] = {}

    def rerank(self, question, passages):
        for p in passages:
            self.retrieval[_key(question, p)] = (float(p.score), float(p.dense_score or 0.0))
        return super().rerank(question, passages)

    def read(self, question, passages, evidence=()):
        if question not in self.readings:  # the pipeline's first read sees all the passages
            self.readings[question] = self.features(question, passages, evidence)
        return super().read(question, passages, evidence)

    def features(self, question: str, passages, evidence: Sequence[float]) -> list[dict]:
        scored = self.scores(question, passages)
        raw = [self.retrieval.get(_key(question, p), (0.0, 0.0)) for p in passages]
        unit = _unit([r for r, _ in raw])
        out = []
        for i, (p, s) in enumerate(zip(passages, scored)):
            alone = TrainedReader.read(self, question, [p]) if s.start >= 0 else None
            out.append({"doc_id": p.doc_id, "rel": s.relevance, "best": s.best, "null": s.null,
                        "has_span": s.start >= 0, "retrieval": raw[i][0], "retrieval_unit": unit[i],
                        "dense": raw[i][1], "share": float(evidence[i]) if i < len(evidence) else 0.0,
                        "names_missing": bool(AnswerGate.names_missing(question, passages, i)),
                        "text": alone.text if alone is not None else None, "_passage_text": p.text})
        return out


def collect(args) -> list[dict]:
    """Ask every question (both styles) on the half-A index; one row per question."""
    import torch

    torch.set_num_threads(1)
    from rag.questions import clean_question

    reader = RecordingReader()
    rows: list[dict] = []
    for folder, short in SETS:
        bench = ev.load_benchmark(args.data / folder)
        asked = ev.sample_questions(ev.split_questions(bench.questions, "train"), args.limit)
        rng = random.Random(REWRITE_SEED)
        for style in STYLES:
            if style == "original":
                questions = asked
            else:
                questions = []
                for q in asked:
                    query = search_style(q["question"], rng)
                    if query:
                        questions.append(q | {"question": query, "original": q["question"]})
            reader.readings.clear()
            t0 = time.perf_counter()
            run = abstention_run(bench, questions, args.cache_dir, args.progress,
                                 {"reader": reader, "reranker": reader})
            for q, r in zip(questions, run["rows"]):
                passages = reader.readings.get(clean_question(r["question"]), [])
                for p in passages:
                    text = p.pop("_passage_text")
                    p["gold"] = p["doc_id"] == str(r["passage_id"]) and bool(r["answers"]) and r["answers"][0] in text
                    p["em"] = ev.exact_match(p["text"], r["answers"]) if p["text"] is not None else 0.0
                    p["f1"] = round(ev.f1_score(p["text"], r["answers"]), 4) if p["text"] is not None else 0.0
                rows.append({"set": short, "style": style, "id": r["id"], "question": r["question"],
                             "original": q.get("original", q["question"]), "passage_id": str(r["passage_id"]),
                             "gold_indexed": r["gold_indexed"], "prediction": r["prediction"],
                             "confidence": r["confidence"], "em": r["em"], "f1": r["f1"], "passages": passages})
            print(f"{short} {style}: {len(questions)} questions in {time.perf_counter() - t0:.0f} s; "
                  f"shipped gate at {run['default_threshold']}: answered {run['answered_rate_answerable']:.3f}, "
                  f"refused {run['abstention_rate_unanswerable']:.3f}", file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------
# replaying the pipeline under a formula


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 40.0), -40.0)))


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


Score = Callable[[dict, list[dict]], float]  # (passage, all passages read) -> score


def decide(row: dict, score: Score, top1: bool = False, gate: Score | None = None) -> tuple[str | None, float, float]:
    """The answer, confidence and EM the pipeline would give with ``score`` choosing the
    passage (the best of those with a span; one whose document lacks a named place gives
    way to the best of those that do not, as in Pipeline.answer) and ``gate`` (default: the
    same score) giving the confidence. ``top1``: only the first reranked passage is read."""
    ps = row["passages"][:1] if top1 else row["passages"]
    cands = [p for p in ps if p["has_span"]]
    if not cands:
        return None, -math.inf, 0.0
    best = max(cands, key=lambda p: score(p, ps))
    if best["names_missing"]:
        keep = [p for p in cands if not p["names_missing"]]
        if not keep:
            return None, -math.inf, 0.0
        best = max(keep, key=lambda p: score(p, ps))
    if best["text"] is None:
        return None, -math.inf, 0.0
    conf = (gate or score)(best, ps)
    return best["text"], conf, best["em"]


def geo(p, ps) -> float:
    return math.sqrt(_sig(p["rel"]) * _sig(p["best"] - p["null"]))


def linear(w: float, share: float = 0.0, retrieval: float = 0.0) -> Score:
    """``w`` x relevance logit + (1 - w) x (span - null), plus ``share`` x the passage's share
    of the question's indexed terms and ``retrieval`` x its fused retrieval score."""
    return lambda p, ps: (w * p["rel"] + (1 - w) * (p["best"] - p["null"])
                          + share * p["share"] + retrieval * p["retrieval"])


FEATURES = ("rel", "span_null", "best", "null", "max_rel", "rel_margin", "retrieval", "share", "rank")


def feature_vector(p: dict, ps: list[dict]) -> list[float]:
    rels = sorted((q["rel"] for q in ps), reverse=True)
    margin = rels[0] - rels[1] if len(rels) > 1 else 0.0
    return [p["rel"], p["best"] - p["null"], p["best"], p["null"], rels[0], margin,
            p["retrieval"], p["share"], float(ps.index(p))]


def fold_of(passage_id: str) -> int:
    return hashlib.sha256(f"gate-fold|{passage_id}".encode()).digest()[0] % 2


def logistic_scores(rows: list[dict], select: Score) -> dict[int, float]:
    """Out-of-fold logit of P(answerable) for each row (by position), from a logistic
    regression on the features of the passage ``select`` picks; fit 2-fold by passage."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    feats, labels, idx = [], [], []
    for i, r in enumerate(rows):
        ps = [p for p in r["passages"] if p["has_span"]]
        if not ps:
            continue
        best = max(ps, key=lambda p: select(p, r["passages"]))
        feats.append(feature_vector(best, r["passages"]))
        labels.append(int(r["gold_indexed"]))
        idx.append(i)
    x, y = np.array(feats), np.array(labels)
    folds = np.array([fold_of(rows[i]["passage_id"]) for i in idx])
    out: dict[int, float] = {}
    for f in (0, 1):
        train, test = folds != f, folds == f
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x[train]), y[train])
        for i, z in zip(np.array(idx)[test], model.decision_function(scaler.transform(x[test]))):
            out[int(i)] = float(z)
    return out


def logistic_full(rows: list[dict], select: Score) -> dict:
    """The same regression fit on all rows: its coefficients, to read what it leans on."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    feats, labels = [], []
    for r in rows:
        ps = [p for p in r["passages"] if p["has_span"]]
        if ps:
            best = max(ps, key=lambda p: select(p, r["passages"]))
            feats.append(feature_vector(best, r["passages"]))
            labels.append(int(r["gold_indexed"]))
    x, y = np.array(feats), np.array(labels)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x), y)
    coef = model.coef_[0] / scaler.scale_  # per raw unit
    return {"features": list(FEATURES), "coef_per_unit": [round(float(c), 4) for c in coef],
            "intercept": round(float(model.intercept_[0] - (coef * scaler.mean_).sum()), 4)}


def evaluate_formula(rows: list[dict], decisions: list[tuple[str | None, float, float]],
                     fixed: float | None = None) -> dict:
    """Curves per set and style over the formula's own confidence scale; the common
    threshold that maximizes the smallest of the eight rates (``fixed``: this one)."""
    groups = {(s, st): [] for _, s in SETS for st in STYLES}
    for r, (text, conf, em) in zip(rows, decisions):
        groups[r["set"], r["style"]].append({"gold_indexed": r["gold_indexed"], "prediction": text,
                                             "confidence": conf, "em": em})
    confs = sorted({c for _, c, _ in decisions if c > -math.inf})
    # candidate thresholds: midpoints between distinct confidences (subsampled)
    cands = [confs[0] - 1e-9] + [(a + b) / 2 for a, b in itertools.pairwise(confs)] + [confs[-1] + 1e-9]
    if len(cands) > 400:
        cands = cands[:: len(cands) // 400 + 1]
    if fixed is not None:
        cands = [fixed]
    best_t, best_min = None, -1.0
    for t in cands:
        worst = min(min(c["answered_rate_answerable"], c["abstention_rate_unanswerable"])
                    for g in groups.values() for c in curve(g, [t]))
        if worst > best_min:
            best_t, best_min = t, worst
    at = {f"{s}/{st}": _rounded(curve(g, [best_t])[0]) for (s, st), g in groups.items()}
    ninety = {}
    for (s, st), g in groups.items():
        ok = [t for t, c in zip(cands, curve(g, cands))
              if c["answered_rate_answerable"] >= .9 and c["abstention_rate_unanswerable"] >= .9]
        ninety[f"{s}/{st}"] = [round(min(ok), 4), round(max(ok), 4)] if ok else None
    grid = [confs[min(len(confs) - 1, int(q * len(confs)))] for q in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    curves = {f"{s}/{st}": [_rounded(c) for c in curve(g, grid)] for (s, st), g in groups.items()}
    auc = {f"{s}/{st}": round(_auc(g), 4) for (s, st), g in groups.items()}
    return {"threshold": round(best_t, 4), "min_rate": round(best_min, 4), "at_threshold": at,
            "ninety_ninety_thresholds": ninety, "auc": auc, "curve": curves}


def _auc(rows: list[dict]) -> float:
    """How well the confidence ranks answerable questions above unanswerable ones (ROC AUC;
    a question refused before reading counts as the lowest confidence)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([int(r["gold_indexed"]) for r in rows],
                               [r["confidence"] if r["prediction"] is not None else -1e9 for r in rows]))


def _rounded(c: dict) -> dict:
    return {k: round(v, 4) for k, v in c.items()}


FAMILIES: dict[str, dict[str, Score]] = {
    "geo (shipped)": {"-": geo},
    "w rel + (1-w) (span - null)": {f"w={w / 10}": linear(w / 10) for w in range(11)},
    "w rel + (1-w) (span - null) + a share + b retrieval": {
        f"w={w} a={a} b={b}": linear(w, a, b) for w in (0.5, 0.7, 1.0) for a in (0, 2, 4, 6, 8) for b in (0, 2, 4)},
}


def cross_fitted(rows: list[dict]) -> dict:
    """Each family's parameters and threshold chosen on one half of the passages (2-fold by
    passage id), its rates measured on the other half's questions; both halves pooled. The
    logistic regression is fit and thresholded on one half, scored on the other."""
    folds = [fold_of(r["passage_id"]) for r in rows]
    out = {}
    for name in [*FAMILIES, "logistic on the features, geo chooses"]:
        shifted: list[tuple[str | None, float, float] | None] = [None] * len(rows)
        chosen = []
        for f in (0, 1):
            fit = [r for r, k in zip(rows, folds) if k != f]
            test = [i for i, k in enumerate(folds) if k == f]
            if name in FAMILIES:
                scored = {param: evaluate_formula(fit, [decide(r, sc) for r in fit])
                          for param, sc in FAMILIES[name].items()}
                param = max(scored, key=lambda k: scored[k]["min_rate"])
                t, score, gate = scored[param]["threshold"], FAMILIES[name][param], None
            else:
                gate = _logistic_gate(fit, geo)
                t = evaluate_formula(fit, [decide(r, geo, gate=gate) for r in fit])["threshold"]
                param, score = "fit on the half", geo
            chosen.append({"fold": f, "param": param, "threshold": t})
            for i in test:
                text, conf, em = decide(rows[i], score, gate=gate)
                shifted[i] = (text, conf - t, em)
        res = evaluate_formula(rows, shifted, fixed=0.0)
        out[name] = {"chosen": chosen, "at_threshold": res["at_threshold"], "min_rate": res["min_rate"]}
    return out


def _logistic_gate(rows: list[dict], select: Score) -> Score:
    """A logistic regression of "the question's passage is indexed" on the features of the
    passage ``select`` picks, fit on ``rows``; its logit as a gate."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x, y = [], []
    for r in rows:
        ps = [p for p in r["passages"] if p["has_span"]]
        if ps:
            x.append(feature_vector(max(ps, key=lambda p: select(p, r["passages"])), r["passages"]))
            y.append(int(r["gold_indexed"]))
    xa = np.array(x)
    mean, scale = xa.mean(0), xa.std(0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=1000).fit((xa - mean) / scale, np.array(y))
    return lambda p, ps: float(model.decision_function((np.array([feature_vector(p, ps)]) - mean) / scale)[0])


def study(rows: list[dict]) -> dict:
    formulas: dict[str, list] = {}
    formulas["geo (shipped)"] = [decide(r, geo) for r in rows]
    formulas["geo, top passage only"] = [decide(r, geo, top1=True) for r in rows]
    formulas["relevance"] = [decide(r, linear(1.0)) for r in rows]
    formulas["relevance, top passage only"] = [decide(r, linear(1.0), top1=True) for r in rows]
    formulas["span - null"] = [decide(r, linear(0.0)) for r in rows]
    for w in (0.5, 0.6, 0.7, 0.8, 0.9):
        formulas[f"{w} rel + {1 - w:.1f} (span - null)"] = [decide(r, linear(w)) for r in rows]
        formulas[f"{w} rel + {1 - w:.1f} (span - null), top only"] = [decide(r, linear(w), top1=True) for r in rows]
    for w in (0.5, 0.7, 0.8):
        formulas[f"geo chooses, {w} rel + {1 - w:.1f} (span - null) gates"] = [
            decide(r, geo, gate=linear(w)) for r in rows]
    oof = logistic_scores(rows, geo)
    formulas["logistic (2-fold by passage), geo chooses"] = [
        (t, oof.get(i, -math.inf), em) for i, (t, _, em) in enumerate(formulas["geo (shipped)"])]
    results = {name: evaluate_formula(rows, d) for name, d in formulas.items()}
    for name, d in formulas.items():
        results[name]["auc_minus_shipped_ci95"] = auc_difference(rows, d, formulas["geo (shipped)"])
    return {"formulas": results, "logistic_fit_all_rows": logistic_full(rows, geo),
            "cross_fitted": cross_fitted(rows)}


def auc_difference(rows: list[dict], new: list, old: list, resamples: int = 500) -> dict:
    """Per set and style, the 95% interval of AUC(new) - AUC(old) over paired bootstrap
    resamples of the questions: whether a formula ranks answerable above unanswerable
    questions better than the shipped one beyond chance."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    out = {}
    for _, s in SETS:
        for st in STYLES:
            idx = [i for i, r in enumerate(rows) if r["set"] == s and r["style"] == st]
            y = np.array([int(rows[i]["gold_indexed"]) for i in idx])
            a = np.array([new[i][1] if new[i][0] is not None else -1e9 for i in idx])
            b = np.array([old[i][1] if old[i][0] is not None else -1e9 for i in idx])
            rng = np.random.default_rng(0)
            diffs = []
            for _ in range(resamples):
                k = rng.integers(0, len(idx), len(idx))
                if 0 < y[k].sum() < len(k):
                    diffs.append(roc_auc_score(y[k], a[k]) - roc_auc_score(y[k], b[k]))
            out[f"{s}/{st}"] = [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)]
    return out


def _cells(f: dict, keys: list[str]) -> str:
    """A formula's answered / refused / EM per set and style, at its threshold."""
    return " | ".join(f"{100 * c['answered_rate_answerable']:.1f} / {100 * c['abstention_rate_unanswerable']:.1f}"
                      f" / {100 * c['exact_match_answerable']:.1f}" for c in (f["at_threshold"][k] for k in keys))


def markdown(res: dict) -> str:
    keys = [f"{s}/{st}" for _, s in SETS for st in STYLES]
    head = ("| formula | threshold | min rate | "
            + " | ".join(f"{k} ans / ref / EM" for k in keys) + " |")
    lines = [head, "|" + "---|" * (len(keys) + 3)]
    for name, f in res["formulas"].items():
        lines.append(f"| {name} | {f['threshold']:.3f} | {100 * f['min_rate']:.1f} | " + _cells(f, keys) + " |")
    lines += ["", "ROC AUC, answerable against unanswerable (threshold-free) [95% interval of the difference "
              + "to the shipped formula, paired bootstrap]:", "",
              "| formula | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, f in res["formulas"].items():
        ci = f["auc_minus_shipped_ci95"]
        lines.append(f"| {name} | " + " | ".join(f"{f['auc'][k]:.3f} [{ci[k][0]:+.3f}, {ci[k][1]:+.3f}]"
                                                 for k in keys) + " |")
    lines += ["", "Cross-fitted (parameters and threshold chosen on the other half of the passages):", "",
              head.replace("| threshold ", "| chosen "), lines[1]]
    for name, f in res["cross_fitted"].items():
        chosen = "; ".join(f"{c['param']} t={c['threshold']:.2f}" for c in f["chosen"])
        lines.append(f"| {name} | {chosen} | {100 * f['min_rate']:.1f} | " + _cells(f, keys) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=250)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="replay the formulas on the rows of the last run")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.reuse:
        rows = json.loads(args.out.read_text(encoding="utf-8"))["rows"]
    else:
        if not args.data.is_dir():
            print(f"benchmark data not found at {args.data}; pass --data", file=sys.stderr)
            return 2
        rows = collect(args)
    # the replay of the shipped formula must give the pipeline's own answers
    mismatch = sum((d[0] != r["prediction"]) or (d[0] is not None and abs(d[1] - r["confidence"]) > 1e-3)
                   for r, d in zip(rows, (decide(r, geo) for r in rows)))
    res = {"split": "train", "limit": args.limit, "rewrite_seed": REWRITE_SEED,
           "replay_mismatches": mismatch, **study(rows), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"replay of the shipped formula differs from the pipeline on {mismatch} of {len(rows)} questions")
    print(markdown(res))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
