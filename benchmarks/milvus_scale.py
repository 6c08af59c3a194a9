"""The Milvus Lite store next to the local store at 100k chunks: answer latency and memory, same run.

    python benchmarks/milvus_scale.py [--size 100000] [--questions 60] [--out benchmarks/results/milvus_scale.json]

What the collection is (synthetic, from real data): every passage of ``ncp_policy_qa_dev``
(593 documents, ~2,900 chunks) with its real multilingual-e5-small vectors (the evaluation
vector cache) and real text, replicated whole documents at a time under new ids until
``--size`` chunks; replica 0 is the real data, in replica r >= 1 the text is the real text and
the vector the real vector moved as in ``benchmarks/scale.py`` (``noisy``: cosine ~0.97 to its
original, among real embeddings). Both stores get the same batches through the store
protocol (``IndexStore.commit``), so they hold the same chunks, vectors and BM25 terms.

Each store is then opened by ``KnowledgeBase`` in a fresh process (rules reader, no reranker)
that answers the same ``--questions`` real questions one at a time after one warm-up: answer
wall time p50/p95 and RSS (after opening, after the questions, peak VmHWM). Milvus Lite runs
inside that process, so its RSS includes the whole engine; a Milvus server would hold the
data in its own processes instead. The machine is shared: compare the two in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from scale import noisy, pct, peak_rss, questions, rss

DATA = ROOT.parent / "shared" / "data" / "ncp_policy_qa_dev"
ANSWERING = {"reader": "rules", "reranker": "none"}
REPLICAS_PER_COMMIT = 8


def source_batches(size: int):
    """(settings, batches): the ncp passages replicated to ``size`` chunks, as store batches."""
    from rag import evaluation as ev
    from rag.chunking import ChunkSettings, chunk_text, retrieval_text
    from rag.embedding import load_embedder
    from rag.ingest.hashing import sha256_hex
    from rag.store.base import Batch, ChunkRow
    from rag.types import Document

    bench = ev.load_benchmark(DATA)
    inner = load_embedder(None)
    cache = ev.VectorCache(ev.default_cache_dir() / "vectors"
                           / f"{sha256_hex(inner.spec + ev.embedder_fingerprint(inner), 16)}.sqlite", int(inner.dim))
    embedder = ev.CachingEmbedder(inner, cache)
    settings = {"model": inner.spec, "dim": int(inner.dim), "chunking": {"size": 500, "overlap": 200},
                "tokenizer": "bigram"}
    chunking = ChunkSettings(size=500, overlap=200)
    seen: set[str] = set()
    docs = []
    for p in bench.passages:
        if p["text"].strip() and p["text"] not in seen:  # the knowledge base keeps one of twins
            seen.add(p["text"])
            d = Document(p.get("title", "") or "", p["text"], source=str(p["id"]), doc_id=str(p["id"]))
            rows = [ChunkRow(d.doc_id, c.index, c.start, c.end, c.heading, retrieval_text(d.title, c.text, c.heading))
                    for c in chunk_text(d.text, d.doc_id, chunking)]
            docs.append((d, rows))
    texts = [r.text for _, rows in docs for r in rows]
    real = np.asarray(embedder.embed_passages(texts), np.float32)
    print(f"source: {len(docs)} documents, {len(texts)} chunks (vector cache: {embedder.hits} hits, "
          f"{embedder.misses} embedded)", flush=True)
    cache.close()
    rng = np.random.default_rng(size)
    batches, total, replica = [], 0, 0
    while total < size:
        batch = Batch()
        vectors = []
        for _ in range(REPLICAS_PER_COMMIT):
            offset = 0
            for d, rows in docs:
                if total >= size:
                    break
                doc_id = d.doc_id if replica == 0 else f"{d.doc_id}~{replica}"
                copy = Document(d.title, d.text, f"{d.source}#{replica}" if replica else d.source, doc_id=doc_id)
                batch.documents.append((copy, f"file-{doc_id}"))
                batch.chunks += [ChunkRow(doc_id, r.index, r.start, r.end, r.heading, r.text) for r in rows]
                v = real[offset:offset + len(rows)]
                vectors.append(v if replica == 0 else noisy(v.copy(), real, rng))
                offset += len(rows)
                total += len(rows)
            replica += 1
            if total >= size:
                break
        batch.vectors = np.concatenate(vectors).astype(np.float32)
        batches.append(batch)
    return settings, batches, replica


def write(store, settings: dict, batches) -> float:
    t0 = time.perf_counter()
    for i, batch in enumerate(batches, 1):
        with store.writing(settings):
            store.commit(batch)
        print(f"  {store.where}: commit {i}/{len(batches)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return time.perf_counter() - t0


def query_run(folder: str, store: str | None, n: int) -> dict:
    """In a fresh process: open the store through KnowledgeBase and answer ``n`` questions."""
    from rag import KnowledgeBase

    before = rss()
    t0 = time.perf_counter()
    kb = KnowledgeBase(folder, store=store, **ANSWERING)
    open_s = time.perf_counter() - t0
    after_open = rss()
    qs = questions(n + 1)
    t0 = time.perf_counter()
    kb.answer(qs[0])  # warm-up: models and caches
    first_s = time.perf_counter() - t0
    times = []
    for q in qs[1:]:
        t0 = time.perf_counter()
        kb.answer(q)
        times.append((time.perf_counter() - t0) * 1000)
    stats = kb.stats()
    return {"chunks": int(stats["chunks"]), "documents": int(stats["documents"]), "questions": len(times),
            "open_s": round(open_s, 2), "first_answer_s": round(first_s, 2),
            "answer_ms": {"p50": round(pct(times, 50), 1), "p95": round(pct(times, 95), 1),
                          "mean": round(float(np.mean(times)), 1)},
            "rss_bytes": {"before_open": before, "after_open": after_open, "after_questions": rss(), "peak": peak_rss()},
            "bytes_on_disk": stats.get("bytes_on_disk")}


def run_child(script: str, args: list[str], what: str) -> dict:
    """``script`` run with ``args`` in a fresh process (a Milvus Lite file is open in one process
    at a time; milvus_write.py also runs another checkout's code this way): the JSON of the
    last line it prints."""
    import subprocess

    proc = subprocess.run([sys.executable, script, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (its error is above)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "milvus_scale.json"))
    parser.add_argument("--stores", default="local,milvus_lite",
                        help="which stores, in this order (a run stopped early keeps the first's figures)")
    parser.add_argument("--query-run", nargs=2, metavar=("FOLDER", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--write", nargs=2, metavar=("FOLDER", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query_run or args.write:
        folder, uri = args.query_run or args.write
        if args.query_run:
            result = query_run(folder, None if uri == "local" else uri, args.questions)
        else:
            from rag.store import open_store

            settings, batches, replicas = source_batches(args.size)
            seconds = write(open_store(uri, folder), settings, batches)
            chunks = sum(len(b.chunks) for b in batches)
            result = {"replicas": replicas, "chunks_written": chunks, "write_s": round(seconds, 1),
                      "write_chunks_per_s": round(chunks / seconds, 1)}
        print(json.dumps(result))
        return 0

    out: dict = {"command": "python benchmarks/milvus_scale.py " + " ".join(sys.argv[1:]), "size": args.size,
                 "questions": args.questions, "answering": ANSWERING, "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # one process per step: a Milvus Lite file is open in one process at a time
        places = {"local": (str(tmp_path / "local"), "local"),
                  "milvus_lite": (str(tmp_path / "unused"), str(tmp_path / "kb.db"))}
        for name in args.stores.split(","):
            folder, uri = places[name]
            out["stores"][name] = {}
            for step in ("--write", "--query-run"):
                result = run_child(__file__, ["--size", str(args.size), "--questions", str(args.questions),
                                              step, folder, uri], f"{step} on {name}")
                out["stores"][name].update(result)
                print(f"{name} {step}: {json.dumps(result)}", flush=True)
                Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    gib = 1024 ** 3
    for name, s in out["stores"].items():
        print(f"| {name} | {s['chunks']:,} | {s['answer_ms']['p50']:.0f} | {s['answer_ms']['p95']:.0f} | "
              f"{s['rss_bytes']['after_open'] / gib:.2f} | {s['rss_bytes']['peak'] / gib:.2f} | {s['write_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
