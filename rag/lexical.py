"""BM25 over Chinese text on sparse matrices, updated in place with the index.

Terms are 64-bit integer keys, so no vocabulary of strings is kept:

* ``bigram``: overlapping character bigrams inside runs of Chinese characters (a lone
  Chinese character stands as itself), plus whole Latin words and numbers;
* ``jieba``: jieba's search-mode words;
* ``both``: the union of the two.

Rows of the term-frequency matrix are chunk ids (the same ids as the vector index), so a
removed chunk is a zeroed row and an added chunk is a new row. Scoring a query multiplies
a few columns of a cached BM25 weight matrix by the query's IDF vector: no per-query
rebuild, no Python loop over documents.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
from scipy import sparse

from .textnorm import normalize

TOKENIZERS = ("bigram", "jieba", "both")
_LATIN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_WORD_FLAG = np.int64(1) << np.int64(62)  # word keys live above every character key
# Question words and particles carry no content; queries are split at them so that no
# bigram spans one (「晋中有几家」 gives 晋中/中有 and 家, not 有几/几家).
QUESTION_WORDS = ["请问", "是什么", "什么样", "什么", "为什么", "怎么样", "怎么", "怎样", "如何", "哪些", "哪里", "哪儿", "哪个", "哪位", "哪年", "哪天", "哪一年", "哪", "多少", "多久", "多长", "多大", "几", "是谁", "谁", "何时", "何地", "何处", "是否", "是不是", "有没有", "吗", "呢", "吧", "么"]
_QUESTION_RE = re.compile("|".join(sorted(map(re.escape, QUESTION_WORDS), key=len, reverse=True)))
_CJK_RANGES = ((0x3400, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FFFF))


def _word_key(word: str) -> int:
    h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    return int((h & ((1 << 62) - 1)) | (1 << 62))


def _bigram_keys(text: str) -> np.ndarray:
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    if cps.size == 0:
        return np.zeros(0, np.int64)
    cjk = np.zeros(cps.size, bool)
    for lo, hi in _CJK_RANGES:
        cjk |= (cps >= lo) & (cps <= hi)
    pair = cjk[:-1] & cjk[1:]
    keys = [(cps[:-1][pair] << 21) | cps[1:][pair]]
    # a Chinese character with no Chinese neighbour is a term of its own
    left = np.r_[False, cjk[:-1]]
    right = np.r_[cjk[1:], False]
    keys.append(cps[cjk & ~left & ~right])
    words = [_word_key(w) for w in _LATIN.findall(text)]
    keys.append(np.array(words, np.int64))
    return np.concatenate(keys)


def _jieba_keys(text: str) -> np.ndarray:
    import jieba

    words = [w for w in jieba.lcut_for_search(text) if w.strip() and (w.isalnum() or len(w) > 1)]
    return np.array([_word_key(w) for w in words], np.int64)


def tokenize(text: str, mode: str = "bigram", query: bool = False) -> np.ndarray:
    """Integer term keys of ``text`` (with repeats). Queries lose their question words."""
    text = normalize(text)
    if query:
        text = _QUESTION_RE.sub(" ", text)
    if mode == "bigram":
        return _bigram_keys(text)
    if mode == "jieba":
        return _jieba_keys(text)
    if mode == "both":
        return np.concatenate([_bigram_keys(text), _jieba_keys(text)])
    raise ValueError(f"unknown tokenizer {mode!r}; choose one of {', '.join(TOKENIZERS)}")


class BM25Index:
    """A BM25 index whose rows are chunk ids."""

    def __init__(self, tokenizer: str = "bigram", k1: float = 1.2, b: float = 0.75) -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        self.tokenizer, self.k1, self.b = tokenizer, k1, b
        self.vocab = np.zeros(0, np.int64)  # sorted term keys; column j is vocab[j]
        self.tf = sparse.csr_matrix((0, 0), dtype=np.float32)
        self._weights: sparse.csc_matrix | None = None
        self._idf: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of rows (chunk ids), removed ones included."""
        return self.tf.shape[0]

    def add(self, ids: np.ndarray, texts: list[str]) -> None:
        """Index ``texts`` under chunk ``ids`` (each id at or beyond the current size)."""
        ids = np.asarray(ids, np.int64)
        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        if len(ids) == 0:
            return
        if ids.min() < self.size:
            raise ValueError("chunk ids must be new")
        per_text = [np.unique(tokenize(t, self.tokenizer), return_counts=True) for t in texts]
        new_vocab = np.union1d(self.vocab, np.concatenate([k for k, _ in per_text] + [self.vocab[:0]]))
        old = self.tf.tocoo()
        rows = [old.row.astype(np.int64)]
        cols = [np.searchsorted(new_vocab, self.vocab)[old.col]]
        vals = [old.data]
        for row, (keys, counts) in zip(ids, per_text):
            rows.append(np.full(len(keys), row, np.int64))
            cols.append(np.searchsorted(new_vocab, keys))
            vals.append(counts.astype(np.float32))
        shape = (int(ids.max()) + 1, len(new_vocab))
        self.tf = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape, dtype=np.float32
        )
        self.vocab = new_vocab
        self._weights = None

    def remove(self, ids: np.ndarray) -> None:
        """Forget the rows ``ids``; they keep their place but match nothing."""
        ids = np.asarray(ids, np.int64)
        ids = ids[(ids >= 0) & (ids < self.size)]
        if len(ids) == 0:
            return
        keep = np.ones(self.size, np.float32)
        keep[ids] = 0
        self.tf = sparse.csr_matrix(sparse.diags(keep) @ self.tf, dtype=np.float32)
        self.tf.eliminate_zeros()
        self._weights = None

    def live_ids(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.tf.indptr))

    def _prepare(self) -> tuple[sparse.csc_matrix, np.ndarray]:
        if self._weights is None:
            tf = self.tf
            lengths = np.asarray(tf.sum(axis=1)).ravel()
            live = lengths > 0
            n = max(int(live.sum()), 1)
            avgdl = float(lengths[live].mean()) if live.any() else 1.0
            norm = self.k1 * (1 - self.b + self.b * lengths / avgdl)
            row_of = np.repeat(np.arange(tf.shape[0]), np.diff(tf.indptr))
            data = tf.data * (self.k1 + 1) / (tf.data + norm[row_of])
            weights = sparse.csr_matrix((data.astype(np.float32), tf.indices, tf.indptr), shape=tf.shape)
            df = np.bincount(tf.indices, minlength=tf.shape[1])
            self._idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
            self._weights = weights.tocsc()
        return self._weights, self._idf

    def _query_columns(self, query: str) -> np.ndarray:
        keys = np.unique(tokenize(query, self.tokenizer, query=True))
        if len(keys) == 0 or len(self.vocab) == 0:
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.vocab, keys), len(self.vocab) - 1)
        return pos[self.vocab[pos] == keys]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (zero where no query term occurs)."""
        weights, idf = self._prepare()
        cols = self._query_columns(query)
        if len(cols) == 0:
            return np.zeros(self.size, np.float32)
        return np.asarray(weights[:, cols] @ idf[cols]).ravel()

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (ids, scores), best first; rows with a zero score are never returned."""
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        order = np.argsort(-scores[hits], kind="stable")
        return hits[order], scores[hits[order]]

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tf = self.tf
        for name, arr in (("tf_data", tf.data), ("tf_indices", tf.indices), ("tf_indptr", tf.indptr),
                          ("vocab", self.vocab)):
            np.save(folder / f"{name}.npy", arr)
        params = {"tokenizer": self.tokenizer, "k1": self.k1, "b": self.b, "shape": list(tf.shape)}
        (folder / "bm25.json").write_text(json.dumps(params))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        params = json.loads((folder / "bm25.json").read_text())
        index = cls(params["tokenizer"], params["k1"], params["b"])
        arrays = {name: np.load(folder / f"{name}.npy") for name in ("tf_data", "tf_indices", "tf_indptr", "vocab")}
        index.tf = sparse.csr_matrix(
            (arrays["tf_data"], arrays["tf_indices"], arrays["tf_indptr"]), shape=tuple(params["shape"])
        )
        index.vocab = arrays["vocab"]
        return index
