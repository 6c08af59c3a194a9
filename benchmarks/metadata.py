"""Title and date read from the documents themselves, against hand-written gold.

    python benchmarks/metadata.py [--corpus ../shared/data/policy_corpus] [--show]

Gold (benchmarks/data/metadata_gold.jsonl, written by hand from each file's visible text):
the 31 provincial 2026 government work reports and 50 COVID-19 notices sampled from
ncp_covid_policy_docs (random.Random(12) over the sorted names, first 50). ``date`` is the
document's own date as printed (header, 发文日期, signature block), null when the text
shows none with a year; ``also`` lists other acceptable titles. A title is right when it
equals the gold (spaces ignored) or one of ``also``; a date when it equals the gold day.

That gold was written alongside the extractor, so it is in-sample. An out-of-sample check,
benchmarks/data/metadata_gold_fresh.jsonl: the next 30 notices in the same shuffled order
(50-79), their gold written by hand before the extractor was run on them; reported apart
as ``fresh_notices``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rag.ingest import read_file


def squash(text: str | None) -> str:
    return re.sub(r"\s+", "", text or "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(HERE.parent.parent / "shared" / "data" / "policy_corpus"))
    parser.add_argument("--show", action="store_true", help="print every miss")
    parser.add_argument("--out", default=str(HERE / "results" / "metadata.json"))
    args = parser.parse_args()
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"{corpus} is missing: this benchmark reads ../shared/data/policy_corpus", file=sys.stderr)
        return 2
    rows = []
    for name, fresh in (("metadata_gold.jsonl", False), ("metadata_gold_fresh.jsonl", True)):
        rows += [json.loads(line) | {"fresh": fresh}
                 for line in (HERE / "data" / name).read_text(encoding="utf-8").splitlines()]
    results = []
    for row in rows:
        doc = read_file(corpus / row["path"])
        title_ok = squash(doc.title) in {squash(t) for t in [row["title"], *row["also"]]}
        date_ok = (doc.published or "")[:10] == (row["date"] or "")
        results.append({"path": row["path"], "title": doc.title, "date": doc.published, "title_ok": title_ok,
                        "date_ok": date_ok, "gold_title": row["title"], "gold_date": row["date"],
                        "doc_type": doc.meta.get("doc_type"), "doc_number": doc.meta.get("doc_number"),
                        "authority": doc.meta.get("authority"), "fresh": row["fresh"]})
        if args.show and not (title_ok and date_ok):
            print(f"MISS {row['path']}\n  title {doc.title!r} (gold {row['title']!r})\n  date {doc.published} (gold {row['date']})")
    summary = {}
    known = [r for r in results if not r["fresh"]]
    for name, part in (("reports", [r for r in known if r["path"].startswith("gov_")]),
                       ("notices", [r for r in known if r["path"].startswith("ncp_")]), ("all", known),
                       ("fresh_notices", [r for r in results if r["fresh"]])):
        summary[name] = {"n": len(part), "title": round(100 * sum(r["title_ok"] for r in part) / len(part), 1),
                         "date": round(100 * sum(r["date_ok"] for r in part) / len(part), 1),
                         "both": round(100 * sum(r["title_ok"] and r["date_ok"] for r in part) / len(part), 1)}
    for name, s in summary.items():
        print(f"{name:13} n={s['n']:3}  title right {s['title']:5.1f}%  date right {s['date']:5.1f}%  both {s['both']:5.1f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": results}, ensure_ascii=False, indent=1),
                              encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
