"""20 concurrent web clients asking questions while another process adds documents: errors,
wrong answers and latency (p50/p95), with the add's commits landing mid-load.

The index holds the seed article and 10 generated city articles (「太原市今年新建了几座公园」 ->
「10座」 ...). ``rag serve`` serves it; ``--clients`` threads call its ``ask`` endpoint over
plain HTTP (Gradio's two-step call API) for ``--seconds``, each question drawn at random from:

* the seed question and the 10 old city questions: the answer must always be right;
* 10 questions about city articles the writer adds (体育馆): no answer before the article is
  committed, the right one after; a wrong answer is an error.

``--add-after`` seconds into the load, ``rag add`` (a separate process, ``--commit-seconds``)
adds those 10 articles and ``--add-files`` articles of the policy corpus, so it embeds for
minutes and commits several times while the questions run. The server follows each new
generation without restarting.

    python benchmarks/load_during_add.py                         # 20 clients, 5 minutes, default model
    python benchmarks/load_during_add.py --seconds 60 --add-files 20 --model minilm

Results go to ``benchmarks/results/load_during_add.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from kill_trials import CORPUS, ENV, SEED_ANSWER, SEED_DIR, SEED_QUESTION, model_args, rag, use_reader

OLD = ["太原", "大同", "长治", "晋城", "朔州", "忻州", "吕梁", "临汾", "运城", "阳泉"]
NEW = ["沈阳", "大连", "鞍山", "抚顺", "本溪", "丹东", "锦州", "营口", "阜新", "辽阳"]


def city_article(city: str, n: int, thing: str, unit: str = "座") -> str:
    return (f"{city}市2024年城市建设工作情况\n\n{city}市今年新建{thing}{n}{unit}，城市面貌明显改善。"
            f"{city}市将继续推进城市更新行动。\n")


def write_articles(folder: Path, cities: list[str], start: int, thing: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, city in enumerate(cities):
        (folder / f"{city}.txt").write_text(city_article(city, start + i, thing), encoding="utf-8")


QUESTIONS = ([(SEED_QUESTION, SEED_ANSWER, "old")]
             + [(f"{c}市今年新建了几座公园", f"{10 + i}座", "old") for i, c in enumerate(OLD)]
             + [(f"{c}市今年新建了几座体育馆", f"{40 + i}座", "new") for i, c in enumerate(NEW)])


def http_ask(url: str, question: str, timeout: float = 300) -> dict:
    body = json.dumps({"data": [question, 5, ""]}).encode()
    request = urllib.request.Request(f"{url}/gradio_api/call/ask", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/ask/{event_id}", timeout=timeout) as response:
        stream = response.read().decode("utf-8")
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", stream, re.MULTILINE)
    if not events or events[-1][0] != "complete":
        raise RuntimeError(f"no complete event: {stream[:300]!r}")
    return json.loads(events[-1][1])[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300.0, help="how long the clients ask")
    parser.add_argument("--add-after", type=float, default=20.0, help="start the add this many seconds in")
    parser.add_argument("--add-files", type=int, default=200, help="policy-corpus articles added with the 10 cities")
    parser.add_argument("--commit-seconds", type=float, default=60.0)
    parser.add_argument("--model", default="default", help="default | minilm | a model folder")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--reader", choices=("rules", "model"), default="rules",
                        help="how answers are read (rules: what the made-up articles are for)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_during_add.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    use_reader(args.reader)
    work = Path(tempfile.mkdtemp(prefix="load_during_add_"))
    docs, new_docs, index = work / "docs", work / "new", work / "index"
    shutil.copytree(SEED_DIR, docs)
    write_articles(docs, OLD, 10, "公园")
    write_articles(new_docs, NEW, 40, "体育馆")
    extra = sorted(args.corpus.rglob("*.txt"))[: args.add_files] if args.corpus.is_dir() else []
    if args.add_files and not extra:
        print(f"no corpus at {args.corpus}: adding the 10 city articles only", file=sys.stderr)
    built = rag("index", docs, "--index-dir", index, "-q", *model_args(args.model))
    if built.returncode != 0:
        print(built.stderr, file=sys.stderr)
        return 1

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(index), "--port", str(port)],
                              cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        deadline = time.monotonic() + 300
        while True:  # up, and warm: every question once
            try:
                for q, _, _ in QUESTIONS:
                    http_ask(url, q)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {server.stderr.read()[-2000:]}") from None
                time.sleep(1)

        records: list[dict] = []
        lock = threading.Lock()
        stop = threading.Event()
        t0 = time.monotonic()

        def client(k: int) -> None:
            rng = random.Random(args.seed * 1000 + k)
            while not stop.is_set():
                question, expected, kind = rng.choice(QUESTIONS)
                start = time.monotonic()
                try:
                    answer, error = http_ask(url, question)["answer"], None
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    answer, error = None, f"{type(exc).__name__}: {exc}"
                wrong = error is None and answer != expected and not (kind == "new" and answer is None)
                with lock:
                    records.append({"t": round(start - t0, 3), "latency": time.monotonic() - start, "kind": kind,
                                    "question": question, "answer": answer, "error": error, "wrong": wrong})

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
        for t in threads:
            t.start()
        commits: list[float] = []
        generation = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["generation"]
        add_started = add_finished = None
        while time.monotonic() - t0 < args.seconds:
            now = time.monotonic() - t0
            if writer is None and now >= args.add_after:
                writer = subprocess.Popen(
                    [sys.executable, "-m", "rag.cli", "add", str(new_docs), *map(str, extra), "--index-dir", str(index),
                     "-q", "--commit-seconds", str(args.commit_seconds)],
                    cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                add_started = now
            if writer is not None and add_finished is None and writer.poll() is not None:
                add_finished = now
            current = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["generation"]
            if current != generation:
                commits.append(round(now, 1))
                generation = current
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(300)
    finally:
        server.terminate()
        server.wait(60)
    writer_rc = None
    if writer is not None:
        if writer.poll() is None:
            writer.wait()  # let the add finish: its result is part of the run
        writer_rc = writer.returncode

    latencies = [r["latency"] for r in records if r["error"] is None]
    before_add = [r["latency"] for r in records if r["error"] is None and (add_started is None or r["t"] < add_started)]
    during = [r["latency"] for r in records if r["error"] is None and add_started is not None
              and r["t"] >= add_started and (add_finished is None or r["t"] <= add_finished)]
    near_commit = [r["latency"] for r in records if r["error"] is None and any(0 <= r["t"] - c <= 5 for c in commits)]
    summary = {
        "clients": args.clients, "seconds": args.seconds, "requests": len(records),
        "errors": sum(r["error"] is not None for r in records),
        "wrong_answers": sum(r["wrong"] for r in records),
        "new_answered_right": sum(r["kind"] == "new" and r["answer"] is not None and not r["wrong"] for r in records),
        "commits_during_load_at_s": commits, "add_started_at_s": add_started, "add_finished_at_s": add_finished,
        "add_returncode": writer_rc,
        "latency_s": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
                      "max": round(max(latencies), 3) if latencies else None},
        "latency_before_add_s": {"p50": percentile(before_add, 0.5), "p95": percentile(before_add, 0.95),
                                 "n": len(before_add)},
        "latency_during_add_s": {"p50": percentile(during, 0.5), "p95": percentile(during, 0.95), "n": len(during)},
        "p50_during_add_over_before": (round(percentile(during, 0.5) / percentile(before_add, 0.5), 2)
                                       if during and before_add else None),
        "latency_within_5s_after_a_commit_s": {"p50": percentile(near_commit, 0.5), "p95": percentile(near_commit, 0.95),
                                               "n": len(near_commit)},
        "answers_per_second": round(len(latencies) / args.seconds, 2),
        "mean_latency_s": round(statistics.mean(latencies), 3) if latencies else None,
    }
    examples = [r for r in records if r["error"] or r["wrong"]][:20]
    result = {"command": "python benchmarks/load_during_add.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "reader": args.reader, "added_files": len(extra) + len(NEW), "summary": summary, "failures": examples}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if not (summary["errors"] or summary["wrong_answers"] or writer_rc) and commits else 1


if __name__ == "__main__":
    sys.exit(main())
