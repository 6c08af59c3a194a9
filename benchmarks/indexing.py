"""Indexing throughput: time per stage of ``KnowledgeBase.add`` over the policy corpus.

    python benchmarks/indexing.py                       # whole corpus + data/articles -> /tmp/corpus_index
    python benchmarks/indexing.py --limit-files 100     # a quick run

The real ``KnowledgeBase.add`` runs unchanged; the benchmark wraps the functions it calls
(read and clean, chunk, BM25 tokenize and matrix, embed, FAISS, store) with timers, so the
stage times add up to what ``rag index`` spends. It then checks that
``rag ask 晋中有几家省级博士创新站 --json`` on the built index ranks first the passage with
「7家省级博士创新站」, times the BM25 tokenizers (bigram / jieba / both) on a sample of the
chunks, and writes ``benchmarks/results/indexing.json``. The built index is kept (default
``/tmp/corpus_index``) for ``benchmarks/scale.py`` and the others.

The embedder's own throughput is measured by ``benchmarks/embedding_speed.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CORPUS = DATA / "policy_corpus"
RESULTS = REPO / "benchmarks" / "results"
QUESTION = "晋中有几家省级博士创新站"
EXPECTED = "7家省级博士创新站"

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(stage: str, fn, *, exclusive: tuple[str, ...] = ()):
    """``fn`` that adds its wall time to ``TIMES[stage]`` (minus the nested ``exclusive`` stages)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = {s: TIMES[s] for s in exclusive}
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.perf_counter() - t0 - sum(TIMES[s] - before[s] for s in exclusive)
            TIMES[stage] += spent
            CALLS[stage] += 1

    return wrapper


def instrument(kb) -> None:
    """Wrap what ``KnowledgeBase.add`` calls; the code that runs is the product's own."""
    import faiss

    import rag.knowledge_base as kbm
    from rag import documents, lexical, store

    documents.read_file = timed("read_clean", documents.read_file)
    kbm._file_hash = timed("read_clean", kbm._file_hash)
    kbm.chunk_text = timed("chunk", kbm.chunk_text)
    lexical.tokenize = timed("bm25_tokenize", lexical.tokenize)
    lexical.BM25Index.add = timed("bm25_matrix", lexical.BM25Index.add, exclusive=("bm25_tokenize",))
    lexical.BM25Index.remove = timed("bm25_matrix", lexical.BM25Index.remove)
    kb.embedder.embed_passages = timed("embed", kb.embedder.embed_passages)
    faiss.clone_index = timed("faiss", faiss.clone_index)
    for cls in (faiss.IndexIDMap2, faiss.IndexIVFFlat):
        cls.add_with_ids = timed("faiss", cls.add_with_ids)
        cls.remove_ids = timed("faiss", cls.remove_ids)
    store.fit_vector_index = timed("faiss", store.fit_vector_index)
    kbm.write_generation = timed("store", kbm.write_generation, exclusive=("faiss", "bm25_matrix"))


def tokenizer_costs(texts: list[str]) -> dict:
    """Seconds per 1,000 chunks for each BM25 tokenizer (jieba's dictionary load apart)."""
    import jieba

    from rag.lexical import TOKENIZERS, tokenize

    t0 = time.perf_counter()
    jieba.initialize()
    out = {"sample_chunks": len(texts), "jieba_dictionary_load_s": round(time.perf_counter() - t0, 3)}
    for mode in TOKENIZERS:
        t0 = time.perf_counter()
        for t in texts:
            tokenize(t, mode)
        out[f"{mode}_s_per_1000"] = round((time.perf_counter() - t0) / len(texts) * 1000, 3)
    return out


def ask_check(index_dir: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", QUESTION, "--json", "--index-dir", str(index_dir)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"ok": False, "error": proc.stderr[-2000:]}
    result = json.loads(proc.stdout)
    passages = result.get("passages", [])
    first = passages[0]["text"] if passages else ""
    rank = next((i + 1 for i, p in enumerate(passages) if EXPECTED in p["text"]), None)
    return {"ok": EXPECTED in first, "answer": result.get("answer"), "rank_of_expected": rank,
            "first_passage": first[:200], "first_source": passages[0]["source"] if passages else None,
            "seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/corpus_index"), help="index folder (rebuilt)")
    parser.add_argument("--limit-files", type=int, default=None, help="first N corpus files (sorted)")
    parser.add_argument("--no-articles", action="store_true", help="leave out data/articles/")
    parser.add_argument("--json", type=Path, default=RESULTS / "indexing.json")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"{args.corpus} is missing: this benchmark needs ../shared/data/policy_corpus", file=sys.stderr)
        return 2

    from rag import KnowledgeBase
    from rag.documents import iter_files

    files = sorted(iter_files([args.corpus]))
    if args.limit_files:
        files = files[: args.limit_files]
    paths = [*files] + ([] if args.no_articles else [REPO / "data" / "articles"])
    chars = sum(p.stat().st_size for p in files)  # bytes; characters are counted from the store below
    shutil.rmtree(args.out, ignore_errors=True)
    kb = KnowledgeBase(args.out)
    instrument(kb)
    t0 = time.perf_counter()
    report = kb.add(paths, progress=sys.stderr.isatty())
    total = time.perf_counter() - t0
    stats = kb.stats()
    with kb._current().connect() as con:
        chars = con.execute("SELECT SUM(LENGTH(text)) FROM documents").fetchone()[0]
    stages = {k: round(v, 2) for k, v in TIMES.items()}
    stages["other"] = round(total - sum(TIMES.values()), 2)
    non_embed = total - TIMES["embed"]
    result = {
        "command": "python benchmarks/indexing.py" + (f" --limit-files {args.limit_files}" if args.limit_files else ""),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}",
        "files": len(files), "documents": stats["documents"], "chunks": report.chunks, "characters": chars,
        "failed": len(report.failed), "duplicates": len(report.duplicates),
        "total_s": round(total, 1), "chunks_per_s": round(report.chunks / total, 2),
        "chunks_per_s_without_embedding": round(report.chunks / non_embed, 1) if non_embed else None,
        "stages_s": stages,
        "stage_share": {k: round(v / total, 4) for k, v in stages.items()},
        "non_embedding_share": round(non_embed / total, 4),
        "calls": dict(CALLS),
        "index_dir": str(args.out), "bytes_on_disk": stats["bytes_on_disk"],
        "vector_index": kb._current().manifest.get("vector_index"),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2), flush=True)
    result["ask_check"] = ask_check(args.out)
    print("ask check:", json.dumps(result["ask_check"], ensure_ascii=False), flush=True)
    import sqlite3

    con = sqlite3.connect(f"file:{kb._current().rows_path}?mode=ro", uri=True)
    sample = [r[0] for r in con.execute(
        "SELECT substr(d.text, c.start + 1, c.\"end\" - c.start) FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "WHERE c.id % 25 = 0 LIMIT 1000")]
    result["tokenizers"] = tokenizer_costs(sample)
    result["tokenizers"]["embed_s_per_1000"] = round(TIMES["embed"] / max(report.chunks, 1) * 1000, 2)
    print("tokenizers:", json.dumps(result["tokenizers"]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    return 0 if result["ask_check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
