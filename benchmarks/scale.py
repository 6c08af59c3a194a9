"""Answer latency, memory and disk against collection size (10k, 100k, 1M chunks).

    python benchmarks/indexing.py          # once: builds /tmp/corpus_index from the real corpus
    python benchmarks/scale.py             # 10k, 100k and 1M chunks -> benchmarks/results/scale.{json,png}
    python benchmarks/scale.py --sizes 10000 100000 --questions 60      # quicker

What the collections are: the real corpus index (``--source``, ~25k chunks of the policy
corpus with their real multilingual-e5-small vectors and real BM25 rows) replicated whole
documents at a time under new document and chunk ids until the size is reached. Replica 0
is the real chunk; in replica r >= 1 the text and BM25 row are the real ones and the vector
is the real vector moved along the difference of two other real vectors, renormalized: it
stays among real embeddings (which sit in a narrow cone: mean pairwise cosine 0.91) at the
distance of a real nearest neighbour (cosine ~0.97), like a closely related article. The index folders are written with the
product's own store (``rag.store.write_generation``), so they are real indexes.

For each size a fresh process opens the index with ``KnowledgeBase`` and answers real
questions (``ncp_policy_qa_dev``, plus the seed question) one at a time, with timers around
the functions ``KnowledgeBase.answer`` calls: query embedding, dense search, BM25, fusion
(the rest of ``retrieval.search``), SQLite rows and answer extraction. Wall and CPU times
are both recorded (the machine is shared; CPU time is what the process itself spent). The
figures that matter are ratios inside one run: answer time over query-embedding time.

It also sweeps ``nprobe`` of the IVF index on the real vectors (recall@10 against exact
search) and times BM25 add/remove at each size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
QUESTIONS = DATA / "ncp_policy_qa_dev" / "questions.jsonl"
RESULTS = REPO / "benchmarks" / "results"
SEED_QUESTION = "晋中有几家省级博士创新站"
NOISE_COSINE = 0.97  # real chunks' nearest neighbours: median cosine 0.97 (mean pairwise 0.91)
NOISE_STEP = 0.6  # step along a difference of two real vectors that gives that cosine
STAGES = ("embed", "dense", "bm25", "fusion", "rows", "extract")


def questions(limit: int) -> list[str]:
    out = [SEED_QUESTION]
    if QUESTIONS.exists():
        with open(QUESTIONS, encoding="utf-8") as f:
            out += [json.loads(line)["question"] for line in f]
    else:
        print(f"{QUESTIONS} is missing; using the seed question only", file=sys.stderr)
    seen: dict[str, None] = dict.fromkeys(out)
    return list(seen)[:limit]


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss() -> int:
    """Peak RSS of this process image: VmHWM (ru_maxrss would include the parent's pages
    at fork, since the child starts sharing the benchmark builder's memory)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


# -- the source: the real corpus index ------------------------------------------------------
class Source:
    """Chunks, documents, vectors and BM25 rows of a built index."""

    def __init__(self, folder: Path) -> None:
        from rag.store import load_snapshot, read_manifest

        manifest = read_manifest(folder)
        if manifest is None:
            raise SystemExit(f"{folder} holds no index: run `python benchmarks/indexing.py` first")
        self.snap = load_snapshot(folder, manifest)
        self.manifest = manifest
        with self.snap.connect() as con:
            self.docs = con.execute(
                "SELECT id, title, source, published, meta, text, content_hash, file_hash, added_at, chunk_count "
                "FROM documents ORDER BY id").fetchall()
            rows = con.execute('SELECT id, doc_id, idx, start, "end" FROM chunks ORDER BY doc_id, idx').fetchall()
        self.chunks_of: dict[str, list[tuple]] = {}
        for row in rows:
            self.chunks_of.setdefault(row[1], []).append(row)
        self.ids = np.array([r[0] for r in rows], np.int64)
        self.vectors = self.snap.vectors.reconstruct_batch(self.ids)
        self.n = len(self.ids)


def noisy(vectors: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors near ``vectors``, moved along differences of two random real vectors (so they
    stay where real embeddings lie), about as close to their original as a real chunk's nearest
    neighbour is (cosine ~NOISE_COSINE)."""
    a, b = rng.integers(0, len(pool), (2, len(vectors)))
    out = vectors + np.float32(NOISE_STEP) * (pool[a] - pool[b])
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def build(source: Source, size: int, folder: Path) -> dict:
    """An index of ``size`` chunks made of replicas of the source, written by the store."""
    from scipy import sparse

    from rag.lexical import BM25Index
    from rag.store import empty_snapshot, new_vector_index, vector_index_kind, write_generation

    t_all = time.perf_counter()
    rng = np.random.default_rng(size)
    doc_rows, chunk_rows, src_ids = [], [], []
    replica = 0
    while len(chunk_rows) < size:
        for doc in source.docs:
            chunks = source.chunks_of.get(doc[0], [])
            if not chunks:
                continue
            doc_id = doc[0] if replica == 0 else f"{doc[0]}~{replica}"
            doc_rows.append((doc_id, doc[1], doc[2] if replica == 0 else f"{doc[2]}#{replica}", *doc[3:6],
                             f"{doc[6]}~{replica}", doc[7], doc[8], doc[9]))
            for cid, _, idx, start, end in chunks:
                chunk_rows.append((len(chunk_rows), doc_id, idx, start, end))
                src_ids.append(cid)
            if len(chunk_rows) >= size:
                break
        replica += 1
    n = len(chunk_rows)
    src_ids = np.array(src_ids, np.int64)
    position = {int(c): i for i, c in enumerate(source.ids)}
    src_pos = np.array([position[int(c)] for c in src_ids])
    times = {}

    t = time.perf_counter()
    vecs = source.vectors[src_pos]
    for lo in range(source.n, n, 200_000):  # replica 0 keeps the real vectors
        hi = min(n, lo + 200_000)
        vecs[lo:hi] = noisy(vecs[lo:hi], source.vectors, rng)
    times["vectors_s"] = time.perf_counter() - t
    replica_cos = float(np.mean(np.sum(vecs[source.n:][:5000] * source.vectors[src_pos[source.n:][:5000]], axis=1))) \
        if n > source.n else 1.0

    t = time.perf_counter()
    sample = vecs[rng.choice(n, min(n, 200_000), replace=False)]
    index = new_vector_index(vecs.shape[1], n, sample)
    index.add_with_ids(vecs, np.arange(n, dtype=np.int64))
    times["faiss_build_s"] = time.perf_counter() - t
    del vecs, sample

    t = time.perf_counter()
    bm25 = BM25Index(source.snap.bm25.tokenizer, source.snap.bm25.k1, source.snap.bm25.b)
    src_tf = sparse.csr_matrix(source.snap.bm25.tf)
    bm25.tf = src_tf[src_ids]
    bm25.vocab = np.asarray(source.snap.bm25.vocab)
    times["bm25_rows_s"] = time.perf_counter() - t

    def rows(con) -> None:
        con.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)", doc_rows)
        con.executemany('INSERT INTO chunks (id, doc_id, idx, start, "end") VALUES (?,?,?,?,?)', chunk_rows)

    shutil.rmtree(folder, ignore_errors=True)
    manifest = dict(source.manifest, generation="")
    t = time.perf_counter()
    snap = write_generation(empty_snapshot(folder, manifest), index, bm25, rows)
    times["store_write_s"] = time.perf_counter() - t  # SQLite rows, BM25 weights, files, fsync

    # BM25 maintenance at this size: what one commit of KnowledgeBase.add/remove costs
    import copy

    texts = [f"{source.docs[0][1]}\n{source.docs[0][5][s:e]}" for _, _, _, s, e in
             source.chunks_of[source.docs[0][0]]]
    texts = (texts * (2000 // max(len(texts), 1) + 1))[:2000]
    grown = copy.copy(bm25)
    c0, t = time.process_time(), time.perf_counter()
    grown.add(np.arange(n, n + 2000), texts)
    bm25_ops = {"add_2000_wall_s": time.perf_counter() - t, "add_2000_cpu_s": time.process_time() - c0}
    c0, t = time.process_time(), time.perf_counter()
    grown.remove(np.arange(0, 300))
    bm25_ops |= {"remove_300_wall_s": time.perf_counter() - t, "remove_300_cpu_s": time.process_time() - c0}
    c0, t = time.process_time(), time.perf_counter()
    grown._prepare()
    bm25_ops |= {"prepare_wall_s": time.perf_counter() - t, "prepare_cpu_s": time.process_time() - c0}

    gen = folder / snap.generation
    disk = {p.name: sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
            for p in gen.iterdir()}
    total = sum(disk.values())
    return {
        "chunks": n, "documents": len(doc_rows), "replicas": replica, "real_chunks": min(n, source.n),
        "replica_cosine_to_original": round(replica_cos, 4),
        "vector_index": vector_index_kind(index), "bm25_nnz": int(bm25.tf.nnz),
        "build_s": {k: round(v, 2) for k, v in times.items()} | {"total_s": round(time.perf_counter() - t_all, 2)},
        "bm25_ops": {k: round(v, 4) for k, v in bm25_ops.items()},
        "disk_bytes": disk, "disk_bytes_total": total, "disk_bytes_per_chunk": round(total / n, 1),
    }


# -- IVF parameters on the real vectors ------------------------------------------------------
def embed_questions(qs: list[str]) -> np.ndarray:
    from rag.embedding import load_embedder

    embedder = load_embedder(None)
    return np.stack([embedder.embed_query(q) for q in qs]).astype(np.float32)


def timed_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    found = np.zeros((len(queries), k), np.int64)
    c0 = time.thread_time()
    for i in range(len(queries)):
        found[i] = index.search(queries[i : i + 1], k)[1][0]
    return found, (time.thread_time() - c0) / len(queries) * 1000


def recall(found: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(w)) / len(w) for f, w in zip(found, want)]))


def sweep(vectors: np.ndarray, queries: np.ndarray, label: str, k: int = 10, ivf=None) -> dict:
    """recall@k against exact search and CPU ms per query, by nprobe (and HNSW for contrast)."""
    import faiss

    from rag.store import new_vector_index, vector_index_kind

    faiss.omp_set_num_threads(1)
    n, d = vectors.shape
    ids = np.arange(n, dtype=np.int64)
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    exact.add_with_ids(vectors, ids)
    want, exact_ms = timed_search(exact, queries, k)
    build_s = None
    if ivf is None:  # the index new_vector_index would choose for this many vectors (IVF forced)
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        ivf = new_vector_index(d, max(n, 20_001), vectors[rng.choice(n, min(n, 200_000), replace=False)])
        ivf.add_with_ids(vectors, ids)
        build_s = round(time.perf_counter() - t, 2)
    default_probe = ivf.nprobe
    rows = []
    for nprobe in sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, default_probe}):
        if nprobe > ivf.nlist:
            continue
        ivf.nprobe = nprobe
        found, ms = timed_search(ivf, queries, k)
        rows.append({"nprobe": nprobe, "recall": round(recall(found, want), 4), "cpu_ms": round(ms, 3)})
    ivf.nprobe = default_probe
    out = {"vectors": label, "n": n, "queries": len(queries), "k": k, "exact_cpu_ms": round(exact_ms, 3),
           "ivf": vector_index_kind(ivf), "ivf_build_s": build_s, "by_nprobe": rows,
           "default": next(r for r in rows if r["nprobe"] == default_probe)}
    if n <= 100_000:  # HNSW for contrast (it has no remove_ids, so the product does not use it)
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        hnsw.add(vectors)
        hnsw_build = time.perf_counter() - t
        hnsw.hnsw.efSearch = 64
        found, hnsw_ms = timed_search(hnsw, queries, k)
        out["hnsw32_ef64"] = {"recall": round(recall(found, want), 4), "cpu_ms": round(hnsw_ms, 3),
                              "build_s": round(hnsw_build, 2)}
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return out


# -- one process per size: open, then answer questions one at a time -------------------------
def query_run(folder: Path, n_questions: int) -> dict:
    """Runs in a fresh process. Returns cold-start, per-stage latency and memory figures."""
    t_start = time.perf_counter()
    import faiss

    import rag.knowledge_base as kbm
    from rag import extraction
    from rag.lexical import BM25Index
    from rag.store import generations as store
    from rag.store import local

    rss_before = rss()
    kb = kbm.KnowledgeBase(folder)
    open_s = time.perf_counter() - t_start
    rss_open = rss()
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    counts = {"load_snapshot": 0, "bm25_load": 0, "read_index": 0, "connect": 0}

    def timer(stage, fn):
        def wrapper(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                wall[stage] = wall.get(stage, 0.0) + time.perf_counter() - t
                cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - c
        return wrapper

    def counter(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    kb.embedder.embed_query = timer("embed", kb.embedder.embed_query)
    local.LocalView.dense_top_k = timer("dense", local.LocalView.dense_top_k)
    BM25Index.scores = timer("bm25", BM25Index.scores)
    kbm.hybrid_search = timer("search", kbm.hybrid_search)
    kbm._passages = timer("rows", kbm._passages)
    extraction.extract_answer = timer("extract", extraction.extract_answer)
    local.load_snapshot = counter("load_snapshot", local.load_snapshot)
    BM25Index.load = classmethod(counter("bm25_load", BM25Index.load.__func__))
    faiss.read_index = counter("read_index", faiss.read_index)
    store.Snapshot.connect = counter("connect", store.Snapshot.connect)

    qs = questions(n_questions + 1)
    t, c = time.perf_counter(), time.process_time()
    first = kb.answer(qs[0])
    cold = {"first_answer_s": round(time.perf_counter() - t, 3), "first_answer_cpu_s": round(time.process_time() - c, 3),
            "open_s": round(open_s, 3), "seed_answer": first.text,
            "seed_first_passage_has_7": "7家省级博士创新站" in (first.passages[0].text if first.passages else "")}
    rss_first, peak_first = rss(), peak_rss()
    for key in counts:
        counts[key] = 0
    per: dict[str, list[float]] = {s: [] for s in (*STAGES, "total", "other")}
    per_cpu: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    for q in qs[1:]:
        wall.clear()
        cpu.clear()
        t, c = time.perf_counter(), time.process_time()
        kb.answer(q)
        total, total_cpu = time.perf_counter() - t, time.process_time() - c
        wall["fusion"] = wall.get("search", 0.0) - wall.get("dense", 0.0) - wall.get("bm25", 0.0)
        cpu["fusion"] = cpu.get("search", 0.0) - cpu.get("dense", 0.0) - cpu.get("bm25", 0.0)
        for s in STAGES:
            per[s].append(wall.get(s, 0.0) * 1000)
            per_cpu[s].append(cpu.get(s, 0.0) * 1000)
        per["total"].append(total * 1000)
        per_cpu["total"].append(total_cpu * 1000)
        per["other"].append(total * 1000 - sum(per[s][-1] for s in STAGES))
    nq = len(qs) - 1
    ratios = np.array(per["total"]) / np.maximum(np.array(per["embed"]), 1e-6)
    ratios_cpu = np.array(per_cpu["total"]) / np.maximum(np.array(per_cpu["embed"]), 1e-6)
    return {
        "chunks": kb.stats()["chunks"], "questions": nq, "vector_index": kb.store.current().manifest.get("vector_index"),
        "cold": cold,
        "wall_ms": {s: {"p50": round(pct(v, 50), 3), "p95": round(pct(v, 95), 3), "mean": round(float(np.mean(v)), 3)}
                    for s, v in per.items()},
        "cpu_ms": {s: {"p50": round(pct(v, 50), 3), "p95": round(pct(v, 95), 3), "mean": round(float(np.mean(v)), 3)}
                   for s, v in per_cpu.items()},
        "answer_over_embed": {"wall_p50": round(float(np.median(ratios)), 3),
                              "cpu_p50": round(float(np.median(ratios_cpu)), 3),
                              "wall_of_p50s": round(pct(per["total"], 50) / pct(per["embed"], 50), 3),
                              "cpu_of_p50s": round(pct(per_cpu["total"], 50) / pct(per_cpu["embed"], 50), 3)},
        "per_query_during_loop": {k: v / max(nq, 1) for k, v in counts.items()},
        "rss_bytes": {"before_open": rss_before, "after_open": rss_open, "after_first_answer": rss_first,
                      "peak_after_first_answer": peak_first, "after_queries": rss(), "peak": peak_rss()},
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["build"]["chunks"] for r in results]
    q = [r["query"] for r in results]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    ax1.plot(sizes, [x["wall_ms"]["total"]["p50"] for x in q], "o-", color="black", label="answer p50")
    ax1.plot(sizes, [x["wall_ms"]["total"]["p95"] for x in q], "o--", color="black", label="answer p95")
    ax1.plot(sizes, [x["wall_ms"]["embed"]["p50"] for x in q], "s-", color="tab:blue", label="query embedding p50")
    ax1.plot(sizes, [x["wall_ms"]["embed"]["p95"] for x in q], "s--", color="tab:blue", label="query embedding p95")
    ax1.axhline(150, color="grey", lw=0.8, ls=":")
    ax1.text(sizes[0], 160, "150 ms: p95 target at 1M", color="grey", fontsize=8)
    ax1.set_ylim(top=max(250, 1.3 * max(x["wall_ms"]["total"]["p95"] for x in q)))
    ax1.set_title("answer latency (wall, shared machine)")
    ax1.set_ylabel("ms per question")
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for stage, color in zip(STAGES, colors):
        ax2.plot(sizes, [x["cpu_ms"][stage]["p50"] for x in q], "s-", color=color, label=stage)
    ax2.plot(sizes, [x["cpu_ms"]["total"]["p50"] for x in q], "o-", color="black", label="answer")
    ax2.set_title("CPU time per stage, p50")
    ax2.set_ylabel("CPU ms per question")
    gib = 1024**3
    ax3.plot(sizes, [x["rss_bytes"]["peak"] / gib for x in q], "o-", label="peak RSS of the asking process")
    ax3.plot(sizes, [x["rss_bytes"]["after_open"] / gib for x in q], "o--", label="RSS after opening")
    ax3.plot(sizes, [r["build"]["disk_bytes_total"] / gib for r in results], "s-", label="index on disk")
    ax3.set_title("memory and disk (24 GiB machine)")
    ax3.set_ylabel("GiB")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks in the index")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path("/tmp/corpus_index"), help="built corpus index")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--questions", type=int, default=150, help="questions per size (after one warm-up)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"), help="where the index folders go")
    parser.add_argument("--keep", action="store_true", help="keep the index folders")
    parser.add_argument("--no-sweep", action="store_true", help="skip the IVF nprobe sweep")
    parser.add_argument("--json", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--query-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    args = parser.parse_args(argv)
    if args.query_run:
        print(json.dumps(query_run(args.query_run, args.questions)))
        return 0

    if args.plot_only:
        plot(json.loads(args.json.read_text())["sizes"], args.json.with_suffix(".png"))
        return 0
    source = Source(args.source)
    print(f"source: {args.source}: {source.n} chunks, {len(source.docs)} documents", flush=True)
    out: dict = {"command": "python benchmarks/scale.py" + (
        "" if args.sizes == [10_000, 100_000, 1_000_000] else " --sizes " + " ".join(map(str, args.sizes))),
        "source": str(args.source), "source_chunks": source.n, "noise_cosine": NOISE_COSINE, "sizes": []}
    if not args.no_sweep:
        qvecs = embed_questions(questions(201))
        out["ivf_sweep_real"] = sweep(source.vectors, qvecs, "real corpus vectors")
        print(json.dumps(out["ivf_sweep_real"]), flush=True)
        out["query_vectors"] = len(qvecs)
    for size in args.sizes:
        folder = args.work / f"n{size}"
        built = build(source, size, folder)
        print(json.dumps(built), flush=True)
        if not args.no_sweep and size > source.n and built["vector_index"].startswith("ivf"):
            from rag.store import load_snapshot, read_manifest

            snap = load_snapshot(folder, read_manifest(folder))
            vecs = snap.vectors.reconstruct_batch(np.arange(built["chunks"], dtype=np.int64))
            built["ivf_sweep"] = sweep(vecs, qvecs, f"{size} replicated vectors", ivf=snap.vectors)
            del snap, vecs
            print(json.dumps(built["ivf_sweep"]), flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--query-run", str(folder), "--questions", str(args.questions)],
            capture_output=True, text=True, cwd=REPO, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"query run for {size} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        out["sizes"].append({"build": built, "query": result})
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    plot(out["sizes"], args.json.with_suffix(".png"))
    print(f"wrote {args.json} and {args.json.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
