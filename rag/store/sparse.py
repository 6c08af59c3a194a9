"""Our bigram BM25 as sparse vectors, for a store that searches sparse vectors itself (Milvus).

A chunk's vector holds, for each of its terms, the BM25 term-frequency part
``tf (k1 + 1) / (tf + k1 (1 - b + b len / avgdl))``; a question's vector holds each of its
terms' IDF. Their inner product is the chunk's BM25 score, so the server's sparse index
finds the top ``k`` and nothing scores every row here. Terms are :func:`rag.lexical.tokenize`'s
keys (the same bigrams and question-word cuts as the local store), folded to the 32 bits a
Milvus sparse index takes. Two differences from the local BM25, both small: ``avgdl`` is
the collection's at the time a chunk was written (the local store recomputes it at every
commit), and two terms may share a folded key (about 1 pair in 4,000 among a million
terms). ``benchmarks/store_parity.py`` measures what this does to retrieval.

Document frequencies are kept by the store as per-commit deltas (:func:`df_delta`), so
the IDF of a question's few terms is one small lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.sparse import csr_matrix

from ..lexical import content_words, tokenize

K1, B = 1.2, 0.75
_FOLD = np.uint64(0x9E3779B97F4A7C15)
_MAX_KEY = 4_294_967_291  # a prime below 2^32 - 1, the largest index a Milvus sparse vector takes


def fold(keys: np.ndarray) -> np.ndarray:
    """64-bit term keys -> indices below 2^32 - 1 (multiplicative hashing, then a prime modulus)."""
    with np.errstate(over="ignore"):
        mixed = np.asarray(keys, np.int64).astype(np.uint64) * _FOLD
    return ((mixed >> np.uint64(32)) % np.uint64(_MAX_KEY)).astype(np.int64)


def terms(text: str, tokenizer: str, query: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(folded keys, counts) of ``text``."""
    return np.unique(fold(tokenize(text, tokenizer, query=query)), return_counts=True)


def chunk_matrix(terms: list[tuple[np.ndarray, np.ndarray]], avgdl: float) -> csr_matrix:
    """The BM25 term-frequency part of each term of each chunk, one row a chunk (``terms``:
    each chunk's :func:`terms`), computed for all chunks at once: pymilvus takes the matrix
    as it is, where a dict per chunk cost more to pack than to write."""
    sizes = np.array([len(k) for k, _ in terms], np.int64)
    keys = np.concatenate([k for k, _ in terms] + [np.zeros(0, np.int64)])
    counts = np.concatenate([c for _, c in terms] + [np.zeros(0, np.int64)]).astype(np.float64)
    lengths = np.array([c.sum() for _, c in terms], np.float64)
    norm = np.repeat(K1 * (1 - B + B * lengths / max(avgdl, 1e-9)), sizes)
    weights = (counts * (K1 + 1) / (counts + norm)).astype(np.float32)
    return csr_matrix((weights, keys, np.concatenate([[0], np.cumsum(sizes)])), shape=(len(terms), _MAX_KEY))


def idf(df: np.ndarray, n: int) -> np.ndarray:
    """The local BM25's IDF (rag.lexical.BM25Index._prepare), from document frequencies."""
    n = max(n, 1)
    return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)


def df_delta(added: np.ndarray, removed: Iterable[dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(terms, change in their document frequency) of a commit: ``added`` holds the new
    chunks' terms (each chunk's once: :func:`chunk_matrix`'s indices), ``removed`` the
    sparse vectors of the chunks that go. Terms whose count does not change are left out."""
    gone = [np.fromiter(vec, np.int64, len(vec)) for vec in removed]
    keys = np.concatenate([np.asarray(added, np.int64)] + gone)
    signs = np.concatenate([np.ones(len(added), np.int64), -np.ones(len(keys) - len(added), np.int64)])
    terms, where = np.unique(keys, return_inverse=True)
    delta = np.bincount(where, weights=signs, minlength=len(terms)).astype(np.int64)
    keep = delta != 0
    return terms[keep], delta[keep]


class QueryTerms:
    """A question's terms and their IDF in one state of a store; ``df`` maps a folded key
    to the number of live chunks holding it (looked up once by the caller)."""

    def __init__(self, keys: np.ndarray, df: dict[int, int], n: int) -> None:
        self.keys = keys
        self.n = max(n, 1)
        counts = np.array([df.get(int(k), 0) for k in keys], np.float64)
        self.present = counts > 0
        self.idf = idf(counts, self.n)

    def vector(self) -> dict[int, float]:
        """The question's sparse vector (terms that occur somewhere)."""
        return {int(k): float(w) for k, w, p in zip(self.keys, self.idf, self.present) if p}

    def score(self, chunk: dict[int, float]) -> float:
        """The BM25 score of one chunk's sparse vector."""
        return float(sum(w * chunk.get(int(k), 0.0) for k, w, p in zip(self.keys, self.idf, self.present) if p))

    def evidence(self, chunks: list[dict[int, float]]) -> tuple[float, np.ndarray]:
        """As :meth:`rag.lexical.BM25Index.query_evidence`: the share of the question's IDF
        weight the index knows, and the share each chunk holds."""
        held = np.zeros(len(chunks), np.float32)
        if not len(self.keys) or not self.present.any():
            return 0.0, held
        known = float(self.idf[self.present].sum())
        unseen = int((~self.present).sum())
        total = known + unseen * float(np.log1p((self.n + 0.5) / 0.5))
        if total <= 0:
            return 0.0, held
        for i, chunk in enumerate(chunks):
            held[i] = sum(float(w) for k, w, p in zip(self.keys, self.idf, self.present) if p and int(k) in chunk)
        return known / total, held / total


def word_keys(question: str, tokenizer: str) -> list[tuple[str, bool, np.ndarray]]:
    """The question's content words (rag.lexical.content_words) with their folded terms."""
    return [(word, key, terms(word, tokenizer)[0]) for word, key in content_words(question)]


def missing_words(words: list[tuple[str, bool, np.ndarray]], df: dict[int, int]) -> tuple[list[str], list[str], int]:
    """As :meth:`rag.lexical.BM25Index.missing_words`: a word is missing when fewer than
    half of its terms occur anywhere."""
    missing: list[str] = []
    names: list[str] = []
    for word, is_key, keys in words:
        if len(keys) == 0:
            continue
        found = sum(1 for k in keys if df.get(int(k), 0) > 0)
        if 2 * found < len(keys):
            missing.append(word)
            if is_key:
                names.append(word)
    return missing, names, len(words)
