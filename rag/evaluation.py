"""`rag eval`: retrieval and answer quality on a retrieval-QA benchmark folder.

A benchmark folder holds ``passages.jsonl`` (``{"id", "title", "text"}``) and
``questions.jsonl`` (``{"id", "question", "answers", "passage_id"}``); see
``../shared/data/README.md``. The passages are indexed once into a cached knowledge base
(key: content hash of ``passages.jsonl`` + embedding model + chunking + tokenizer), every
question is asked, and the figures are computed from per-question rows that are written
out, so anyone can recompute them:

* strict hit: a retrieved chunk from the gold passage that contains ``answers[0]``;
  passage hit: a retrieved chunk from the gold passage. Recall@1/5/20 and MRR@10 of both.
* answer exact match and F1 with the normalization of the official CMRC 2018 script
  (lower-case, drop its punctuation list and white space; F1 over the longest common substring of
  the mixed segmentation: one token per Chinese character or punctuation mark, one per
  Latin word or number); max over the gold answers; an abstention scores 0.
  Reported overall and on short numeric answers (``answers[0]`` has a digit or a Chinese
  numeral and is at most 8 characters).
* abstention rate (``Answer.text is None``) and latency (p50/p95 of ``answer()``).

Chunk vectors are cached by (model, text hash) under ``<cache>/vectors/``, so a chunking
variant re-embeds only the chunks it changes. Both caches are also keyed by a fingerprint of
the vectors the embedder gives a probe text, so a change in how a model computes (precision,
long-text handling) is never served stale vectors.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SEARCH_TOP_K, TOKENIZER, TOP_K, ChunkSettings
from .errors import RagError
from .ingest.hashing import sha256_hex

log = logging.getLogger(__name__)

EVAL_CACHE_VERSION = 2  # 2: structure-aware chunks with heading paths
RECALL_KS = (1, 5, 20)
MRR_K = 10
ANSWER_TOP_K = TOP_K
SAMPLE_SEED = 0

# ----------------------------------------------------------------------------------------
# answer metrics (official CMRC 2018 evaluation, cmrc2018_evaluate.py)

_CMRC_PUNCT = frozenset(
    ["-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”",
     "；", "’", "《", "》", "……", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"]
)  # fmt: skip
_CJK_CHAR = re.compile(r"[\u4e00-\u9fa5]")
# nltk.word_tokenize (the official script's tokenizer for non-Chinese runs) without nltk:
# words and numbers stay whole, any other non-space character is a token of its own.
_LATIN_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[.,'][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
_NUMERIC = re.compile(r"[0-9０-９零〇一二两三四五六七八九十百千万亿]")


def mixed_segmentation(text: str, rm_punc: bool = False) -> list[str]:
    """One token per Chinese character (and punctuation mark); Latin words and numbers whole."""
    text = str(text).lower().strip()
    out: list[str] = []
    buf = ""
    for ch in text:
        if rm_punc and ch in _CMRC_PUNCT:
            continue
        if _CJK_CHAR.match(ch) or ch in _CMRC_PUNCT:
            if buf:
                out.extend(_LATIN_TOKEN.findall(buf))
                buf = ""
            out.append(ch)
        else:
            buf += ch
    if buf:
        out.extend(_LATIN_TOKEN.findall(buf))
    return out


def remove_punctuation(text: str) -> str:
    """The official EM normalization (lower-case, drop its punctuation list), also dropping
    inner white space, which the official F1 tokenization ignores as well."""
    return "".join(ch for ch in str(text).lower() if ch not in _CMRC_PUNCT and not ch.isspace())


def _lcs_len(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common substring (contiguous) of two token lists."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def exact_match(prediction: str | None, answers: Sequence[str]) -> float:
    """1.0 when the prediction equals a gold answer after CMRC normalization."""
    if prediction is None:
        return 0.0
    p = remove_punctuation(prediction)
    return float(any(p == remove_punctuation(a) for a in answers))


def f1_score(prediction: str | None, answers: Sequence[str]) -> float:
    """CMRC F1: longest common substring of the segmentations, max over gold answers."""
    if prediction is None:
        return 0.0
    pred = mixed_segmentation(prediction, rm_punc=True)
    best = 0.0
    for answer in answers:
        gold = mixed_segmentation(answer, rm_punc=True)
        common = _lcs_len(gold, pred)
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def is_short_numeric(answer: str) -> bool:
    """A short numeric answer: a digit or Chinese numeral, at most 8 characters."""
    return len(answer) <= 8 and bool(_NUMERIC.search(answer))


# ----------------------------------------------------------------------------------------
# benchmark data


@dataclass(frozen=True)
class Benchmark:
    folder: Path
    passages: list[dict]
    questions: list[dict]
    content_hash: str  # sha256 of passages.jsonl


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise RagError(
            f"{path} is missing. A benchmark folder holds passages.jsonl and questions.jsonl "
            "(see ../shared/data/README.md)."
        )
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise RagError(f"{path}, line {n}: not JSON ({exc})") from exc
            missing = [k for k in required if k not in row]
            if missing:
                raise RagError(f"{path}, line {n}: missing field(s) {', '.join(missing)}")
            rows.append(row)
    return rows


def load_benchmark(folder: str | os.PathLike) -> Benchmark:
    """Read a benchmark folder; a missing folder or file is a RagError that says what is expected."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RagError(f"benchmark folder {folder} not found; it must hold passages.jsonl and questions.jsonl")
    passages = _read_jsonl(folder / "passages.jsonl", ("id", "text"))
    questions = _read_jsonl(folder / "questions.jsonl", ("id", "question", "answers", "passage_id"))
    digest = sha256_hex((folder / "passages.jsonl").read_bytes())
    return Benchmark(folder, passages, questions, digest)


def sample_questions(questions: Sequence[dict], limit: int | None, seed: int = SAMPLE_SEED) -> list[dict]:
    """All questions, or a fixed random sample of ``limit`` of them (seeded, in file order)."""
    if limit is None or limit >= len(questions):
        return list(questions)
    if limit < 1:
        raise RagError("--limit must be at least 1")
    picked = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[i] for i in picked]


# ----------------------------------------------------------------------------------------
# cached indexes and vectors


def default_cache_dir() -> Path:
    from .embedding import cache_dir

    return cache_dir() / "eval"


class VectorCache:
    """Chunk vectors of one model keyed by the sha256 of the text, in one SQLite file."""

    def __init__(self, path: Path, dim: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.con = sqlite3.connect(str(path), timeout=60)
        self.con.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def key(text: str) -> str:
        return sha256_hex(text)

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            part = uniq[i:i + 500]
            q = f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})"
            for k, blob in self.con.execute(q, part):
                vec = np.frombuffer(blob, np.float32)
                if vec.size == self.dim:
                    out[k] = vec
        return out

    def put_many(self, items: Sequence[tuple[str, np.ndarray]]) -> None:
        with self.con:
            self.con.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, np.float32).tobytes()) for k, v in items],
            )

    def close(self) -> None:
        self.con.close()


class CachingEmbedder:
    """Wraps an embedder: passage vectors come from the VectorCache when the text was seen."""

    def __init__(self, inner, cache: VectorCache, batch: int = 256) -> None:
        self.inner, self.cache, self.batch = inner, cache, batch
        self.spec, self.dim = inner.spec, inner.dim
        self.hits = self.misses = 0

    def embed_passages(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        keys = [VectorCache.key(t) for t in texts]
        found = self.cache.get_many(keys)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        text_of = dict(zip(keys, texts))
        self.hits += len(keys) - sum(k not in found for k in keys)
        self.misses += len(todo)
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="embedding", unit="chunk")
        for i in range(0, len(todo), self.batch):
            part = todo[i:i + self.batch]
            vecs = np.asarray(self.inner.embed_passages([text_of[k] for k in part], batch_size=batch_size), np.float32)
            self.cache.put_many(list(zip(part, vecs)))
            found.update(zip(part, vecs))
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


_PROBE = "passage: 晋中市建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站。"


def embedder_fingerprint(embedder) -> str:
    """A short hash of the vectors ``embedder`` gives a probe text: a model whose name stays
    the same but whose computation changed (precision, windowing) gets new cache entries."""
    vec = np.asarray(embedder.embed_passages([_PROBE], batch_size=1), np.float32)
    return sha256_hex(np.round(vec, 3).tobytes(), 12)


def open_eval_index(
    bench: Benchmark,
    model: str | None = None,
    cache_root: str | os.PathLike | None = None,
    *,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    tokenizer: str | None = None,
    progress: bool = False,
    **kb_kwargs,
):
    """A KnowledgeBase holding every passage of ``bench``, built once and cached.

    Each passage becomes ``Document(title, text, source=id, doc_id=id)``. The index lives in
    ``<cache>/<key>/`` where the key hashes passages.jsonl, the model, the chunking and the
    tokenizer; it is built in a temporary folder and renamed into place when complete.
    """
    from .embedding import load_embedder
    from .knowledge_base import KnowledgeBase
    from .types import Document

    root = Path(cache_root) if cache_root else default_cache_dir()
    embedder = load_embedder(model)
    fingerprint = embedder_fingerprint(embedder)
    settings = {
        "version": EVAL_CACHE_VERSION,
        "passages": bench.content_hash,
        "model": embedder.spec,
        "embedder": fingerprint,
        "chunk_size": chunk_size or ChunkSettings().size,
        "chunk_overlap": ChunkSettings().overlap if chunk_overlap is None else chunk_overlap,
        "tokenizer": tokenizer or TOKENIZER,
    }
    key = sha256_hex(json.dumps(settings, sort_keys=True), 20)
    final = root / key
    build = {"chunk_size": settings["chunk_size"], "chunk_overlap": settings["chunk_overlap"],
                 "tokenizer": settings["tokenizer"]}
    if not (final / "manifest.json").exists():
        _remove_stale_builds(root, key)
        tmp = root / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("building the evaluation index %s (%d passages)", final, len(bench.passages))
        kb = KnowledgeBase(tmp, model, commit_every=1 << 40, **build)
        dim = int(kb.embedder.dim)
        vectors = VectorCache(root / "vectors" / f"{sha256_hex(embedder.spec + fingerprint, 16)}.sqlite", dim)
        try:
            kb.embedder = CachingEmbedder(kb.embedder, vectors)
            kb._progress = progress
            docs = [Document(p.get("title", "") or "", p["text"], source=str(p["id"]), doc_id=str(p["id"]))
                    for p in bench.passages if p["text"].strip()]
            kb.add_documents(docs)
        finally:
            vectors.close()
        (tmp / "eval_settings.json").write_text(json.dumps(settings, indent=2))
        del kb
        if final.exists():  # built meanwhile by another process
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, final)
    return KnowledgeBase(final, model, **kb_kwargs)


def _remove_stale_builds(root: Path, key: str) -> None:
    """Drop temporary build folders of ``key`` left by processes that are gone."""
    if not root.is_dir():
        return
    for path in root.glob(f".{key}.tmp-*"):
        try:
            os.kill(int(path.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


# ----------------------------------------------------------------------------------------
# asking the questions


def evaluate(kb, bench: Benchmark, questions: Sequence[dict], *, mode: str = "hybrid", top_k: int = SEARCH_TOP_K,
             progress: bool = False) -> list[dict]:
    """One row per question: the ranks of its first strict and passage hits among the
    ``top_k`` retrieved chunks (None when absent), the predicted answer and its scores."""
    # passages with the same text are one document in the index: a hit on the twin counts
    canonical: dict[str, str] = {}
    first_of_text: dict[str, str] = {}
    for p in bench.passages:
        canonical[str(p["id"])] = first_of_text.setdefault(p["text"], str(p["id"]))
    items = questions
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(questions, desc="questions", unit="q")
    if questions:  # load the models and caches before the clock runs
        kb.answer(questions[0]["question"], top_k=ANSWER_TOP_K, mode=mode)
    rows = []
    for q in items:
        answers = [str(a) for a in q["answers"]]
        gold = canonical.get(str(q["passage_id"]), str(q["passage_id"]))
        t0 = time.perf_counter()
        ans = kb.answer(q["question"], top_k=ANSWER_TOP_K, mode=mode)
        latency = time.perf_counter() - t0
        passages = kb.search(q["question"], top_k=top_k, mode=mode)
        strict_rank = passage_rank = None
        for rank, p in enumerate(passages, 1):
            if p.doc_id == gold:
                passage_rank = passage_rank or rank
                if answers and answers[0] in p.text:
                    strict_rank = rank
                    break
        rows.append({
            "id": q["id"],
            "question": q["question"],
            "passage_id": q["passage_id"],
            "answers": answers,
            "strict_rank": strict_rank,
            "passage_rank": passage_rank,
            "retrieved": [p.doc_id for p in passages],
            "prediction": ans.text,
            "confidence": round(float(ans.confidence), 4),
            "em": exact_match(ans.text, answers),
            "f1": round(f1_score(ans.text, answers), 4),
            "short_numeric": bool(answers) and is_short_numeric(answers[0]),
            "latency_ms": round(latency * 1000, 2),
        })
    return rows


def _recall(ranks: list[int | None], k: int) -> float:
    return sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else 0.0


def _mrr(ranks: list[int | None], k: int) -> float:
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def summarize(rows: Sequence[dict], ks: Sequence[int] = RECALL_KS) -> dict:
    """The benchmark figures from per-question rows (see :func:`evaluate`)."""
    rows = list(rows)
    out: dict = {"questions": len(rows)}
    for kind in ("strict", "passage"):
        ranks = [r[f"{kind}_rank"] for r in rows]
        for k in ks:
            out[f"{kind}_recall@{k}"] = _recall(ranks, k)
        out[f"{kind}_mrr@{MRR_K}"] = _mrr(ranks, MRR_K)
    n = max(len(rows), 1)
    out["exact_match"] = sum(r["em"] for r in rows) / n
    out["f1"] = sum(r["f1"] for r in rows) / n
    short = [r for r in rows if r["short_numeric"]]
    out["short_numeric_questions"] = len(short)
    out["short_numeric_exact_match"] = sum(r["em"] for r in short) / len(short) if short else None
    out["short_numeric_f1"] = sum(r["f1"] for r in short) / len(short) if short else None
    out["abstention_rate"] = sum(r["prediction"] is None for r in rows) / n
    lat = [r["latency_ms"] for r in rows]
    out["latency_ms_p50"] = _percentile(lat, 50)
    out["latency_ms_p95"] = _percentile(lat, 95)
    return out


def format_summary(summary: dict) -> str:
    lines = []
    for key, value in summary.items():
        if isinstance(value, float) and not math.isnan(value):
            text = f"{value:.1f}" if key.startswith("latency") else f"{value:.4f}"
        else:
            text = str(value)
        lines.append(f"{key:>28}: {text}")
    return "\n".join(lines)


def split_questions(questions: Sequence[dict], split: str) -> list[dict]:
    """``all``, or only the questions whose passage the reader was (``train``) or was not
    (``heldout``) trained on (:func:`rag.training.data.is_heldout`)."""
    if split == "all":
        return list(questions)
    from .training.data import is_heldout

    return [q for q in questions if is_heldout(q["passage_id"]) == (split == "heldout")]


def run(bench_dir: str | os.PathLike, *, limit: int | None = None, model: str | None = None, mode: str = "hybrid",
        top_k: int = SEARCH_TOP_K, cache_dir: str | os.PathLike | None = None, progress: bool = False,
        split: str = "all", **index_kwargs) -> dict:
    """Evaluate on ``bench_dir``; returns ``{"settings", "summary", "rows"}``."""
    bench = load_benchmark(bench_dir)
    questions = sample_questions(split_questions(bench.questions, split), limit)
    t0 = time.perf_counter()
    kb = open_eval_index(bench, model, cache_dir, progress=progress, **index_kwargs)
    index_seconds = time.perf_counter() - t0
    rows = evaluate(kb, bench, questions, mode=mode, top_k=max(top_k, max(RECALL_KS)), progress=progress)
    stats = kb.stats()
    settings = {
        "bench_dir": str(Path(bench_dir)),
        "passages_sha256": bench.content_hash,
        "limit": limit,
        "sample_seed": SAMPLE_SEED,
        "split": split,
        "mode": mode,
        "reader": kb.pipeline.reader.name,
        "reranker": getattr(kb.pipeline.reranker, "name", None),
        "top_k": top_k,
        "answer_top_k": ANSWER_TOP_K,
        "model": stats["model"],
        "chunking": stats["chunking"],
        "tokenizer": stats["tokenizer"],
        "fusion": dict(kb.fusion.__dict__),
        "chunks": stats["chunks"],
        "index_dir": stats["index_dir"],
        "index_seconds": round(index_seconds, 1),
    }
    return {"settings": settings, "summary": summarize(rows), "rows": rows}


def main(args) -> int:
    """Entry point of `rag eval` (arguments: bench_dir, limit, model, mode, top_k, out, cache_dir)."""
    answering = {k: getattr(args, k) for k in ("reader", "reranker") if getattr(args, k, None) is not None}
    result = run(args.bench_dir, limit=args.limit, model=args.model, mode=args.mode, top_k=args.top_k,
                 cache_dir=args.cache_dir, progress=sys.stderr.isatty(), split=getattr(args, "split", "all"),
                 **answering)
    s = result["settings"]
    print(f"{s['bench_dir']}: {result['summary']['questions']} questions ({s['split']}), mode {s['mode']}, "
          f"reader {s['reader']}, reranker {s['reranker']}, {s['chunks']} chunks, model {s['model']}")
    print(format_summary(result["summary"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"per-question rows written to {out}")
    return 0
