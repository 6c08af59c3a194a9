"""Indexing throughput: time per stage of ``KnowledgeBase.add`` over the policy corpus.

    python benchmarks/indexing.py                       # whole corpus + data/articles -> /tmp/corpus_index
    python benchmarks/indexing.py --stub-embedder       # every stage but embedding, at full size (minutes)
    python benchmarks/indexing.py --limit-files 100     # a quick run

The real ``KnowledgeBase.add`` runs unchanged; the benchmark wraps the functions it calls
(read and clean, chunk, BM25 tokenize and matrix, embed, FAISS, store) with timers, so the
stage times add up to what ``rag index`` spends. Files go in four incremental ``add`` calls:
data/articles, the government work reports, the COVID policy notices, the laws; progress
is written to the JSON after every commit, so a run cut short still reports its figures.
``--stub-embedder`` replaces only the embedding model (random unit vectors, instant), to
time every other stage over the whole corpus quickly; ``--reuse-vectors INDEX`` serves
chunks already embedded in an earlier run's index from there (they are counted apart and
the embedding rate is taken over the chunks embedded live). It then checks that
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

import numpy as np

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

    import rag.knowledge_base
    import rag.store.local  # noqa: F401
    from rag import documents, lexical
    from rag.store import generations as store

    documents.read_file = timed("read_clean", documents.read_file)
    # the file hash, under whichever name the knowledge base imports it (it has moved before)
    for module in _modules_calling("file_sha256"):
        module.file_sha256 = timed("read_clean", module.file_sha256)
    for module in _modules_calling("chunk_text"):
        module.chunk_text = timed("chunk", module.chunk_text)
    lexical.tokenize = timed("bm25_tokenize", lexical.tokenize)
    lexical.BM25Index.add = timed("bm25_matrix", lexical.BM25Index.add, exclusive=("bm25_tokenize",))
    lexical.BM25Index.remove = timed("bm25_matrix", lexical.BM25Index.remove)
    kb.embedder.embed_passages = timed("embed", kb.embedder.embed_passages)
    faiss.clone_index = timed("faiss", faiss.clone_index)
    for cls in (faiss.IndexIDMap2, faiss.IndexIVFFlat, faiss.IndexIVFScalarQuantizer):
        cls.add_with_ids = timed("faiss", cls.add_with_ids)
        cls.remove_ids = timed("faiss", cls.remove_ids)
    store.fit_vector_index = timed("faiss", store.fit_vector_index)
    for module in _modules_calling("write_generation"):
        module.write_generation = timed("store", module.write_generation, exclusive=("faiss", "bm25_matrix"))


def _modules_calling(name: str) -> list:
    """The loaded rag modules (not the defining one, not packages, not the embedder's model
    conversion) that imported ``name``: the knowledge base, or the ingestion module it
    delegates to. Fails loudly when none does, so a moved function is never left untimed."""
    found = [m for key, m in list(sys.modules.items())
             if key.startswith("rag.") and not key.startswith("rag.embedding") and m is not None
             and not hasattr(m, "__path__")  # a package only re-exports
             and name in vars(m) and getattr(vars(m)[name], "__module__", key) != key]
    if not found:
        raise SystemExit(f"no rag module calls {name}: update benchmarks/indexing.py's instrument()")
    return found


def tokenizer_costs(texts: list[str]) -> dict:
    """Seconds per 1,000 chunks for each BM25 tokenizer (jieba's dictionary load apart)."""
    from rag.lexical import TOKENIZERS, tokenize
    from rag.zh import jieba

    t0 = time.perf_counter()
    jieba()  # the package's one jieba setup: the dictionary loads here
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


class StubEmbedder:
    """Instant random unit vectors: times every stage but embedding."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(0)

    def __call__(self, texts, batch_size: int = 32, progress: bool = False):
        x = self.rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


class ReusedVectors:
    """Vectors of chunks an earlier index already holds, by retrieval text; the rest live."""

    def __init__(self, folder: Path, live) -> None:
        from rag.chunking import retrieval_text
        from rag.store import load_snapshot, read_manifest

        snap = load_snapshot(folder, read_manifest(folder))
        with snap.connect() as con:
            rows = con.execute('SELECT c.id, d.title, substr(d.text, c.start + 1, c."end" - c.start) '
                               "FROM chunks c JOIN documents d ON d.id = c.doc_id").fetchall()
        vecs = snap.vectors.reconstruct_batch(np.array([r[0] for r in rows], np.int64))
        self.known = {retrieval_text(title, text): vecs[i] for i, (_, title, text) in enumerate(rows)}
        self.live = live
        self.reused = 0

    def __call__(self, texts, batch_size: int = 32, progress: bool = False):
        out = np.zeros((len(texts), next(iter(self.known.values())).shape[0]), np.float32)
        todo = [i for i, t in enumerate(texts) if t not in self.known]
        for i, t in enumerate(texts):
            if t in self.known:
                out[i] = self.known[t]
        self.reused += len(texts) - len(todo)
        if todo:
            out[todo] = self.live([texts[i] for i in todo], batch_size=batch_size, progress=progress)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=None, help="index folder, rebuilt (default /tmp/corpus_index)")
    parser.add_argument("--limit-files", type=int, default=None, help="first N files of each corpus folder")
    parser.add_argument("--stub-embedder", action="store_true", help="random vectors instead of the model")
    parser.add_argument("--reuse-vectors", type=Path, default=None, help="index of an earlier run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"{args.corpus} is missing: this benchmark needs ../shared/data/policy_corpus", file=sys.stderr)
        return 2
    stub = args.stub_embedder
    out_dir = args.out or Path("/tmp/corpus_index_stub" if stub else "/tmp/corpus_index")
    json_path = args.json or RESULTS / ("indexing_stub.json" if stub else "indexing.json")

    from rag import KnowledgeBase
    from rag.documents import iter_files

    groups = [("data/articles", [REPO / "data" / "articles"])]
    for name in ("gov_work_reports_2026", "ncp_covid_policy_docs", "laws_regulations"):
        files = sorted(iter_files([args.corpus / name]))
        groups.append((name, files[: args.limit_files] if args.limit_files else files))
    shutil.rmtree(out_dir, ignore_errors=True)
    kb = KnowledgeBase(out_dir)
    live = kb.embedder.embed_passages
    if stub:
        kb.embedder.embed_passages = StubEmbedder(kb.embedder.dim)
    elif args.reuse_vectors:
        kb.embedder.embed_passages = ReusedVectors(args.reuse_vectors, live)
    instrument(kb)
    result: dict = {
        "command": "python benchmarks/indexing.py" + (" --stub-embedder" if stub else "")
        + (f" --limit-files {args.limit_files}" if args.limit_files else ""),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}",
        "embedder": "stub (random vectors)" if stub else kb.embedder.spec, "groups": [], "complete": False,
    }
    t0 = time.perf_counter()
    chunks = 0

    def snapshot_figures(done: bool) -> None:
        total = time.perf_counter() - t0
        stats = kb.stats()
        stages = {k: round(v, 2) for k, v in TIMES.items()}
        stages["other"] = round(total - sum(TIMES.values()), 2)
        non_embed = total - TIMES["embed"]
        reused = getattr(kb.embedder.embed_passages, "__wrapped__", None)
        reused = getattr(reused, "reused", 0)
        embedded_live = stats["chunks"] - reused
        result.update({
            "complete": done, "documents": stats["documents"], "chunks": stats["chunks"],
            "elapsed_s": round(total, 1), "chunks_per_s": round(stats["chunks"] / total, 2) if total else None,
            "non_embedding_s": round(non_embed, 2),
            "chunks_per_s_without_embedding": round(stats["chunks"] / non_embed, 1) if non_embed else None,
            "embedded_live": embedded_live, "embedded_reused": reused,
            "embed_chunks_per_s_live": round(embedded_live / TIMES["embed"], 2) if TIMES["embed"] and not stub else None,
            "stages_s": stages, "stage_share": {k: round(v / total, 4) for k, v in stages.items()} if total else {},
            "calls": dict(CALLS), "index_dir": str(out_dir), "bytes_on_disk": stats["bytes_on_disk"],
            "vector_index": (kb.store.current().manifest.get("vector_index") if kb.store.current() else None),
        })
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")

    import rag.store.local as kbm

    write = kbm.write_generation

    def write_and_report(*a, **k):
        snap = write(*a, **k)
        kb.store._snap = snap
        snapshot_figures(False)
        return snap

    kbm.write_generation = write_and_report
    for name, paths in groups:
        report = kb.add(paths, progress=sys.stderr.isatty())
        chunks += report.chunks
        result["groups"].append({"group": name, "files": len(paths), "chunks": report.chunks,
                                 "seconds": round(report.seconds, 1), "failed": len(report.failed),
                                 "duplicates": len(report.duplicates)})
        snapshot_figures(False)
        print(json.dumps(result["groups"][-1]), flush=True)
        if name == "gov_work_reports_2026" and not stub:
            result["ask_check_reports"] = ask_check(out_dir)
            print("ask check:", json.dumps(result["ask_check_reports"], ensure_ascii=False), flush=True)
    with kb.store.current().connect() as con:
        result["characters"] = con.execute("SELECT SUM(LENGTH(text)) FROM documents").fetchone()[0]
    snapshot_figures(True)
    if not stub:
        result["ask_check"] = ask_check(out_dir)
        print("ask check:", json.dumps(result["ask_check"], ensure_ascii=False), flush=True)
    import sqlite3

    con = sqlite3.connect(f"file:{kb.store.current().rows_path}?mode=ro", uri=True)
    sample = [r[0] for r in con.execute(
        "SELECT substr(d.text, c.start + 1, c.\"end\" - c.start) FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "WHERE c.id % 25 = 0 LIMIT 1000")]
    result["tokenizers"] = tokenizer_costs(sample)
    print(json.dumps(result, ensure_ascii=False, indent=2), flush=True)
    json_path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    return 0 if stub or result["ask_check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
