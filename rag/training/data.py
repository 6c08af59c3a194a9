"""Training examples for the reader from the shared QA sets, split by passage.

A passage is held out when a hash of its id falls in the lowest ``HELDOUT_PERCENT`` of 100
buckets: the same rule everywhere (training, ``rag eval --split heldout``), and no question
about a held-out passage is ever trained on.

Each question becomes a group of windows exactly as the knowledge base shows passages to the
reader: the document is chunked by the product's own chunker (500/200), a chunk is shown as
``title + "\\n" + chunk``. The window holding the answer is the positive; the negatives are
the highest-BM25 chunks (the product's own lexical retriever, over training passages only)
that do not contain the answer: other chunks of the right article first, the commonest miss,
then chunks of other articles.

Real users type search queries, not the full questions the training sets were written as
(「晋中 博士创新站 几家」, 「非洲气候带」). :func:`search_style` rewrites a share of the
training questions that way, from the product's own content-word analysis, so the reranker
and the reader learn to read keyword queries too; the passages and answers are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..chunking import ChunkSettings, chunk_text

HELDOUT_PERCENT = 20
CHUNKING = ChunkSettings()  # the knowledge base's default
TRAIN_SETS = ("cmrc_train", "ncp_policy_qa_dev")  # dureader_search_dev is evaluation only


def is_heldout(passage_id: str) -> bool:
    """True for passages kept out of training (about ``HELDOUT_PERCENT``% of each set)."""
    bucket = int(hashlib.sha256(str(passage_id).encode("utf-8")).hexdigest()[:8], 16) % 100
    return bucket < HELDOUT_PERCENT


@dataclass(frozen=True)
class Window:
    text: str  # title + "\n" + chunk: what the reader sees
    prefix: int  # characters of the title prefix
    answer_start: int = -1  # answer's character offsets in ``text``; -1 for a negative
    answer_end: int = -1


@dataclass(frozen=True)
class Example:
    qid: str
    question: str
    answers: tuple[str, ...]
    windows: tuple[Window, ...]  # the positive first


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def search_style(question: str, rng: random.Random) -> str | None:
    """A search-engine version of ``question``: its words without particles, prepositions,
    conjunctions and punctuation, either keywords alone (「晋中 省级 博士 创新站」) or glued
    with the question word kept (「晋中省级博士创新站几家」); None when under two words."""
    from ..zh import tag_words
    from ..zh.lexicon import QUESTION_WORDS_RE

    keep_asked = rng.random() < 0.5
    text = question if keep_asked else QUESTION_WORDS_RE.sub(" ", question)
    words = [w.strip() for w, flag in tag_words(text)
             if w.strip() and flag[:1] not in _DROPPED_TAGS and w not in ("是", "请问")]
    if len(words) < 2:
        return None
    if len(words) > 5 and rng.random() < 0.5:  # searchers leave words out
        drop = set(rng.sample(range(len(words)), rng.randint(1, len(words) - 4)))
        words = [w for i, w in enumerate(words) if i not in drop]
    if keep_asked or rng.random() < 0.5:
        return "".join(words)
    return " ".join(words)


_DROPPED_TAGS = frozenset("upcyxw")  # jieba: particles, prepositions, conjunctions, modal, punctuation


def _window(title: str, text: str, a: int, b: int, ans: tuple[int, int] | None) -> Window:
    prefix = len(title) + 1 if title else 0
    shown = (f"{title}\n" if title else "") + text[a:b]
    if ans is None:
        return Window(shown, prefix)
    return Window(shown, prefix, prefix + ans[0] - a, prefix + ans[1] - a)


def build_examples(data_dir: Path, name: str, heldout: bool, negatives: int = 2,
                   chunking: ChunkSettings = CHUNKING, seed: int = 0,
                   search_share: float = 0.0) -> list[Example]:
    """Examples of one QA set: training passages (``heldout=False``) or held-out ones. A
    ``search_share`` of the questions also appears rewritten by :func:`search_style`."""
    from ..lexical import BM25Index

    folder = data_dir / name
    passages = {p["id"]: p for p in read_jsonl(folder / "passages.jsonl")}
    questions = [q for q in read_jsonl(folder / "questions.jsonl") if q["passage_id"] in passages]
    chunks = {pid: chunk_text(p["text"], pid, chunking) for pid, p in passages.items()}
    # the negatives' pool: training passages only, so held-out text is never trained on
    pool = [(pid, c) for pid, cs in chunks.items() if not is_heldout(pid) for c in cs]
    bm25 = BM25Index()
    bm25.add(np.arange(len(pool)), [f"{passages[pid]['title']}\n{c.text}" for pid, c in pool])
    rng = random.Random(seed)
    out = []
    for q in questions:
        pid = q["passage_id"]
        if is_heldout(pid) != heldout or q["answer_starts"][0] < 0:
            continue
        p, answer = passages[pid], q["answers"][0]
        a0 = q["answer_starts"][0]
        a1 = a0 + len(answer)
        holding = [c for c in chunks[pid] if c.start <= a0 and a1 <= c.end]
        if not holding:
            continue  # an answer longer than any chunk cannot be read from one
        pos = min(holding, key=lambda c: abs((c.start + c.end) / 2 - (a0 + a1) / 2))
        windows = [_window(p["title"], p["text"], pos.start, pos.end, (a0, a1))]
        ids, _ = bm25.search(q["question"], 50)
        same = [c for c in chunks[pid] if answer not in c.text]
        rng.shuffle(same)
        ranked = [pool[i] for i in ids]
        ranked_same = [c for qpid, c in ranked if qpid == pid and answer not in c.text]
        others = [(qpid, c) for qpid, c in ranked if qpid != pid and answer not in c.text]
        picks: list[tuple[str, object]] = [(pid, c) for c in (ranked_same or same)[:1]]
        picks += others[: negatives - len(picks)]
        for qpid, c in picks[:negatives]:
            windows.append(_window(passages[qpid]["title"], passages[qpid]["text"], c.start, c.end, None))
        out.append(Example(q["id"], q["question"], tuple(q["answers"]), tuple(windows)))
        if search_share and rng.random() < search_share:
            query = search_style(q["question"], rng)
            if query:
                out.append(Example(q["id"] + "#search", query, tuple(q["answers"]), tuple(windows)))
    return out
