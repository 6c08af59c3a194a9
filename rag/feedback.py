"""👍/👎 feedback on answers, kept next to the index as append-only JSON lines.

Each vote is one line of ``<data dir>/feedback.jsonl`` (the data dir is the index folder
unless ``--data-dir``/``RAG_DATA_DIR`` names another, see :func:`data_folder`): when, the vote, the question (as typed
and as answered), the answer, its evidence and confidence, and the passages shown (title,
source, date, score, offsets and text), so a reviewer can see what the reader saw. A changed
vote is a new line; :func:`export` keeps the last vote per answer unless asked for all.
Nothing is ever rewritten, so a crash can at worst cut the last line, which export skips.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FEEDBACK_FILE = "feedback.jsonl"
DATA_DIR_ENV = "RAG_DATA_DIR"  # where the web app keeps feedback and uploaded originals
VOTES = ("up", "down")
_MAX_TEXT = 4000  # characters kept of any one field sent by a browser
_MAX_PASSAGES = 20
_PASSAGE_KEYS = ("doc_id", "title", "source", "published", "score", "start", "end", "text")
_LOCK = threading.Lock()


def _text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    return None if value is None else str(value)[:limit]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def data_folder(index_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Where the web app keeps what it is given (feedback, uploaded originals): ``data_dir``,
    else ``$RAG_DATA_DIR``, else the index folder. App replicas on a Milvus store point this
    at one shared volume so that none of them keeps state of its own."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or index_dir)


def record(turn: str, vote: str, answer: dict[str, Any]) -> dict[str, Any]:
    """One feedback line from what the page sends: the turn's id, the vote and the answer's JSON
    (as the ``ask`` endpoint returns it). Fields are checked and cut to size."""
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {VOTES}, not {vote!r}")
    answer = answer if isinstance(answer, dict) else {}
    passages = []
    for p in list(answer.get("passages") or [])[:_MAX_PASSAGES]:
        if isinstance(p, dict):
            passages.append({k: (_number(p.get(k)) if k in ("score", "start", "end") else _text(p.get(k)))
                             for k in _PASSAGE_KEYS})
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "turn": _text(turn, 64),
        "vote": vote,
        "asked": _text(answer.get("asked")),
        "question": _text(answer.get("question")),
        "answer": _text(answer.get("answer")),
        "confidence": _number(answer.get("confidence")),
        "evidence": _text(answer.get("evidence")),
        "passages": passages,
    }


def append(folder: str | os.PathLike, line: dict[str, Any]) -> Path:
    """Append one record to the folder's feedback file (created on first use). A file lock
    keeps lines whole when several app replicas share the folder (a long line is more than
    one write)."""
    from filelock import FileLock

    path = Path(folder) / FEEDBACK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(line, ensure_ascii=False) + "\n"
    with _LOCK, FileLock(str(path) + ".lock"), open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def read(index_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every record in order; a line that is not a JSON object (a cut last line) is skipped."""
    path = Path(index_dir) / FEEDBACK_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON; skipped", path, number)
                continue
            if isinstance(item, dict):
                yield item


def export(index_dir: str | os.PathLike, fmt: str = "jsonl", every_vote: bool = False) -> str:
    """The feedback as JSON lines or CSV (one row per vote; passages as JSON in one column).
    By default only the last vote on each answer is kept."""
    items = list(read(index_dir))
    if not every_vote:
        last: dict[Any, dict] = {}
        for i, item in enumerate(items):
            last[item.get("turn") or i] = item
        items = list(last.values())
    if fmt == "jsonl":
        return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    if fmt != "csv":
        raise ValueError(f"format must be jsonl or csv, not {fmt!r}")
    out = io.StringIO()
    keys = ["time", "turn", "vote", "asked", "question", "answer", "confidence", "evidence", "passages"]
    writer = csv.DictWriter(out, keys, extrasaction="ignore")
    writer.writeheader()
    for item in items:
        writer.writerow({**item, "passages": json.dumps(item.get("passages") or [], ensure_ascii=False)})
    return out.getvalue()
