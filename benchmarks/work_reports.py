"""Short questions over the 31 provincial 2026 government work reports, as a new user asks them.

``benchmarks/data/work_report_questions.jsonl`` holds 60 hand-made questions: 52 whose answer
is a short verbatim span of one report (counts and amounts, percentages, 2026 targets,
names, years; some paraphrased, some with two numbers in the sentence or the answer in a
list) and 8 whose answer is in none of the reports (a figure the report does not give, a
city-level figure, a name the report does not state). Each answerable row records the
report file, the answer's character offset in it (Python ``str`` index of the UTF-8 text)
and the sentence around it; each unanswerable row its ``checked_terms``: groups of
space-separated words that were looked for together in every sentence of all 31 reports,
and a ``note`` on what the report does say. ``kind`` is what the question asks for:
count (amounts with units too), percent, name, year (dates too) or other.

The reports in ``../shared/data/policy_corpus/gov_work_reports_2026/`` are indexed once into
``--index-dir`` (reused when it already holds them), every question is asked with
``kb.answer(q, top_k=5)``, and the script reports:

* exact answers: equal to a gold answer after the CMRC 2018 normalization
  (``rag.evaluation.exact_match``); answers that contain a gold answer, and answers
  contained in one (both after the same normalization); character F1;
* right report first: ``passages[0]`` comes from the question's report; gold passage
  first: ``passages[0]`` also covers the answer's occurrence in the gold sentence (and its
  rank within the top_k);
* refusals (``Answer.text is None``) on the answerable questions (bad) and on the 8
  unanswerable ones (good);
* latency of ``answer()`` (p50/p95; the machine is shared, so only a rough figure).

Usage::

    python benchmarks/work_reports.py [--reader model|rules] [--reranker model|none]
        [--data ../shared/data] [--index-dir /tmp/work_reports_index] [--top-k 5]
        [--out benchmarks/results/work_reports_<reader>.json]

Writes the summary and one row per question to the JSON file and prints a Markdown table.
Exits with status 2 when the shared data folder or the question file is missing or broken.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import KnowledgeBase
from rag import evaluation as ev

DEFAULT_DATA = ROOT.parent / "shared" / "data"
REPORTS = Path("policy_corpus") / "gov_work_reports_2026"
QUESTIONS = ROOT / "benchmarks" / "data" / "work_report_questions.jsonl"
DEFAULT_INDEX = Path("/tmp/work_reports_index")
KINDS = ("count", "percent", "name", "year", "other")


class DataError(Exception):
    """The shared data or the question file is missing or does not match the reports."""


def load_reports(data: Path) -> dict[str, str]:
    """The 31 reports' texts by file name, read as the question offsets were computed."""
    folder = data / REPORTS
    if not folder.is_dir():
        raise DataError(
            f"the work reports are not at {folder}. This benchmark needs the shared data folder "
            "(../shared/data next to the repository); pass --data to point at it."
        )
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))}
    if len(texts) != 31:
        raise DataError(f"{folder} holds {len(texts)} .txt files, not the 31 provincial reports")
    return texts


def evidence_start(text: str, row: dict) -> int:
    """Where the evidence sentence that holds the answer occurrence starts in ``text``, or -1."""
    evidence, start = row["evidence"], row["answer_start"]
    i = text.rfind(evidence, 0, start + len(evidence))
    return i if i >= 0 and i + len(evidence) >= start + len(row["answers"][0]) else -1


def load_questions(path: Path, reports: dict[str, str]) -> list[dict]:
    """The questions, each answerable one checked against its report: the answer must sit
    at ``answer_start`` and inside the evidence sentence, so a changed file is caught."""
    if not path.is_file():
        raise DataError(f"{path} is missing")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        text = reports.get(r["file"])
        if text is None:
            raise DataError(f"{r['id']}: no report named {r['file']}")
        if not r["answerable"]:
            continue
        gold, start = r["answers"][0], r["answer_start"]
        if text[start:start + len(gold)] != gold or gold not in r["evidence"]:
            raise DataError(f"{r['id']}: {gold!r} is not at offset {start} of {r['file']} / in its evidence")
        if evidence_start(text, r) < 0:
            raise DataError(f"{r['id']}: the evidence sentence around offset {start} is not in {r['file']}")
    return rows


def open_index(index_dir: Path, folder: Path, reader: str, reranker: str) -> tuple[KnowledgeBase, bool]:
    """The knowledge base in ``index_dir`` holding the 31 reports; True when it was reused as is."""
    kb = KnowledgeBase(index_dir, reader=reader, reranker=reranker)
    held = {Path(d["source"]).name for d in kb.documents()}
    wanted = {p.name for p in folder.glob("*.txt")}
    if wanted <= held:
        return kb, True
    t0 = time.perf_counter()
    report = kb.add([folder])
    if report.failed:
        raise DataError(f"could not index {len(report.failed)} report(s): {report.failed[:3]}")
    print(f"indexed the reports into {index_dir}: {report.summary()} ({time.perf_counter() - t0:.0f} s)",
          file=sys.stderr, flush=True)
    return kb, False


def gold_offset(doc_text: str, file_text: str, row: dict) -> int | None:
    """The answer's offset in the indexed (cleaned) document: the evidence sentence is
    found there (the occurrence nearest its place in the file) and the answer's position
    inside it carried over. None when the cleaning changed the sentence."""
    evidence, start = row["evidence"], row["answer_start"]
    ev_file = evidence_start(file_text, row)
    found, i = [], doc_text.find(evidence)
    while i >= 0:
        found.append(i)
        i = doc_text.find(evidence, i + 1)
    if not found:
        return None
    ev_doc = min(found, key=lambda j: abs(j - ev_file))
    return ev_doc + (start - ev_file)


def norm(text: str) -> str:
    return ev.remove_punctuation(text)


def ask(kb: KnowledgeBase, row: dict, reports: dict[str, str], top_k: int, docs: dict[str, str]) -> dict:
    """Ask one question and score the answer and the passages."""
    t0 = time.perf_counter()
    a = kb.answer(row["question"], top_k=top_k)
    seconds = time.perf_counter() - t0
    passages = list(a.passages)
    out = {
        "id": row["id"], "question": row["question"], "kind": row["kind"], "answerable": row["answerable"],
        "file": row["file"], "gold": row["answers"], "prediction": a.text,
        "confidence": round(float(a.confidence), 4), "evidence": a.evidence, "refused": a.text is None,
        "top_files": [Path(p.source).name for p in passages], "seconds": round(seconds, 3),
    }
    if not row["answerable"]:
        return out
    pred, golds = a.text, row["answers"]
    p = norm(pred) if pred is not None else ""
    rank = None
    for n, passage in enumerate(passages, 1):
        if Path(passage.source).name != row["file"]:
            continue
        if passage.doc_id not in docs:
            docs[passage.doc_id] = kb.document(passage.doc_id).text
        off = gold_offset(docs[passage.doc_id], reports[row["file"]], row)
        if off is None:  # sentence not found after cleaning: the chunk must hold the answer
            hit = golds[0] in passage.text
        else:
            hit = passage.start <= off and off + len(golds[0]) <= passage.end
        if hit:
            rank = n
            break
    out.update({
        "exact": ev.exact_match(pred, golds) == 1.0,
        "f1": round(ev.f1_score(pred, golds), 4),
        "contains_gold": bool(p) and any(norm(g) in p for g in golds),
        "within_gold": bool(p) and any(p in norm(g) for g in golds),
        "right_report_first": bool(passages) and Path(passages[0].source).name == row["file"],
        "gold_passage_rank": rank,
        "gold_passage_first": rank == 1,
    })
    return out


def rate(rows: list[dict], key: str) -> float | None:
    return sum(bool(r[key]) for r in rows) / len(rows) if rows else None


def summarize(rows: list[dict]) -> dict:
    yes = [r for r in rows if r["answerable"]]
    no = [r for r in rows if not r["answerable"]]
    ms = sorted(1000 * r["seconds"] for r in rows)
    summary = {
        "answerable": len(yes), "unanswerable": len(no),
        "exact": rate(yes, "exact"), "f1": sum(r["f1"] for r in yes) / len(yes) if yes else None,
        "contains_gold": rate(yes, "contains_gold"), "within_gold": rate(yes, "within_gold"),
        "right_report_first": rate(yes, "right_report_first"), "gold_passage_first": rate(yes, "gold_passage_first"),
        "gold_passage_in_top_k": sum(r["gold_passage_rank"] is not None for r in yes) / len(yes) if yes else None,
        "refused_answerable": rate(yes, "refused"), "refused_unanswerable": rate(no, "refused"),
        "latency_ms_p50": statistics.median(ms) if ms else None,
        "latency_ms_p95": ms[min(len(ms) - 1, int(0.95 * len(ms)))] if ms else None,
        "by_kind": {},
    }
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for r in yes:
        by_kind[r["kind"]].append(r)
    for kind in KINDS:
        group = by_kind.get(kind, [])
        summary["by_kind"][kind] = {"n": len(group), "exact": rate(group, "exact"),
                                    "right_report_first": rate(group, "right_report_first"),
                                    "refused": rate(group, "refused")}
    return summary


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def markdown(s: dict, rows: list[dict], label: str) -> str:
    head = (f"| {label} | exact | contains gold | within gold | F1 | right report 1st | gold passage 1st "
            "| gold passage in top k | refused (answerable) | refused (unanswerable) |")
    cells = [pct(s[k]) for k in ("exact", "contains_gold", "within_gold", "f1", "right_report_first",
                                 "gold_passage_first", "gold_passage_in_top_k", "refused_answerable",
                                 "refused_unanswerable")]
    lines = [head, "|---" * 10 + "|", f"| {s['answerable']} + {s['unanswerable']} questions | " + " | ".join(cells) + " |",
             "", "| kind | n | exact | right report 1st | refused |", "|---|---|---|---|---|"]
    for kind, k in s["by_kind"].items():
        lines.append(f"| {kind} | {k['n']} | {pct(k['exact'])} | {pct(k['right_report_first'])} | {pct(k['refused'])} |")
    misses = [r for r in rows if (r["answerable"] and not r["exact"]) or (not r["answerable"] and not r["refused"])]
    if misses:
        lines += ["", "not exact / not refused:"]
        lines += [f"- {r['id']} {r['question']}: gold {r['gold'][:1] or '(none)'}, got {r['prediction']!r}"
                  f" from {r['top_files'][:1]}" for r in misses]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--index-dir", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--reader", choices=("model", "rules"), default="model")
    parser.add_argument("--reranker", choices=("model", "none"), default="model")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/work_reports_<reader>.json "
                             "(…_<reader>_rerank-none.json without the reranker)")
    args = parser.parse_args(argv)
    try:
        reports = load_reports(args.data)
        questions = load_questions(args.questions, reports)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = f"work_reports_{args.reader}" + ("" if args.reranker == "model" else f"_rerank-{args.reranker}")
    out = args.out or ROOT / "benchmarks" / "results" / f"{name}.json"

    t0 = time.perf_counter()
    kb, reused = open_index(args.index_dir, args.data / REPORTS, args.reader, args.reranker)
    index_seconds = time.perf_counter() - t0
    docs: dict[str, str] = {}
    rows = []
    for row in questions:
        r = ask(kb, row, reports, args.top_k, docs)
        rows.append(r)
        mark = ("refused" if r["refused"] else "ok") if not row["answerable"] else \
            ("exact" if r["exact"] else "refused" if r["refused"] else "wrong")
        print(f"{r['id']} {mark:7s} {row['question']} -> {r['prediction']!r}", file=sys.stderr, flush=True)
    summary = summarize(rows)
    stats = kb.stats()
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "settings": {"reader": args.reader, "reranker": args.reranker, "top_k": args.top_k,
                     "index_dir": str(args.index_dir), "index_reused": reused,
                     "index_seconds": round(index_seconds, 1), "documents": stats["documents"],
                     "chunks": stats["chunks"], "model": stats["model"], "chunking": stats["chunking"],
                     "questions": str(args.questions)},
        "summary": summary,
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(markdown(summary, rows, f"reader={args.reader}, reranker={args.reranker}"))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
