"""Does the passage asked about come first? Law-article questions over laws_regulations.

    python benchmarks/law_articles.py [--corpus ../shared/data/policy_corpus] [--index-dir DIR]

benchmarks/data/law_questions.jsonl holds 30 questions written by hand over 10 laws
(「安全生产法第三十八条规定了什么」, 「根据劳动合同法第八十二条，用人单位要承担什么责任」),
each naming the law file and the article. The 10 laws are indexed twice with the default
model and 500/200 chunks: with structure-aware chunking (the default) and without it
(sentence packing only, as before). A question is a hit when the first passage is from
the right law and holds the article's own start (its heading path ends with the article,
or, without structure, a line of the passage starts with it). Reported per retrieval mode.

``pool20``: the product ranks the retriever's first 5 candidates (the reranker's depth) and
puts a passage whose heading is the article named by a question that also names the law
first (``rag.answering.pipeline.named``); this row applies the same rule to the first 20
candidates instead, to measure a deeper pool. With ``--index-dir`` an existing index is
reused (unchanged files are not embedded again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def hit(passage, law: str, article: str) -> bool:
    if not passage.source.endswith(Path(law).name):
        return False
    if passage.heading:
        return passage.heading.split(" > ")[-1] == article
    return re.search(rf"^{article}\s", passage.text, re.MULTILINE) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(HERE.parent.parent / "shared" / "data" / "policy_corpus"))
    parser.add_argument("--index-dir", default=None, help="where the two indexes go (default: a temporary folder)")
    parser.add_argument("--variants", default="structure,sentences", help="which indexes to build and ask")
    parser.add_argument("--modes", default="hybrid,bm25,dense", help="retrieval modes to report")
    parser.add_argument("--out", default=str(HERE / "results" / "law_articles.json"))
    args = parser.parse_args()
    laws_dir = Path(args.corpus) / "laws_regulations"
    if not laws_dir.is_dir():
        print(f"{laws_dir} is missing: this benchmark reads ../shared/data/policy_corpus", file=sys.stderr)
        return 2
    from rag import KnowledgeBase
    from rag.answering.pipeline import named
    from rag.chunking import ChunkSettings

    questions = [json.loads(line) for line in (HERE / "data" / "law_questions.jsonl").read_text("utf-8").splitlines()]
    files = sorted({laws_dir / q["law"] for q in questions})
    root = Path(args.index_dir or tempfile.mkdtemp(prefix="law-articles-"))
    results: dict = {"command": "python benchmarks/law_articles.py " + " ".join(sys.argv[1:]),
                     "load_average_at_start": os.getloadavg()[0], "questions": len(questions), "laws": len(files),
                     "variants": {}}
    for name in args.variants.split(","):
        structure = name == "structure"
        kb = KnowledgeBase(root / name)
        kb.chunking = ChunkSettings(500, 200, structure=structure)
        t0 = time.perf_counter()
        report = kb.add(files)
        variant = {"chunks": kb.stats()["chunks"], "index_s": round(time.perf_counter() - t0, 1), "rows": []}
        for mode in args.modes.split(","):
            hits = 0
            for q in questions:
                top = kb.search(q["question"], top_k=5, mode=mode)
                ok = bool(top) and hit(top[0], q["law"], q["article"])
                hits += ok
                variant["rows"].append({"mode": mode, "question": q["question"], "hit": ok,
                                        "first": top[0].citation() if top else None})
            variant[mode] = round(100 * hits / len(questions), 1)
        hits = 0
        for q in questions:
            pool = sorted(kb.search(q["question"], top_k=20, mode="hybrid"), key=lambda p, q=q: -named(q["question"], p))
            hits += bool(pool) and hit(pool[0], q["law"], q["article"])
        variant["pool20"] = round(100 * hits / len(questions), 1)
        results["variants"][name] = variant
        rates = "  ".join(f"{mode} {variant[mode]:5.1f}%" for mode in args.modes.split(","))
        print(f"{name:10} chunks {variant['chunks']:5} (added {len(report.added)} laws in {variant['index_s']} s): "
              f"asked article first  {rates}  hybrid, named over 20 candidates {variant['pool20']:5.1f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
