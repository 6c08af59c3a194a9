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
from .zh import jieba, tag_words
from .zh.lexicon import QUESTION_WORDS, QUESTION_WORDS_RE

TOKENIZERS = ("bigram", "jieba", "both")
_LATIN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_WORD_FLAG = np.int64(1) << np.int64(62)  # word keys live above every character key
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
    words = [w for w in jieba().lcut_for_search(text) if w.strip() and (w.isalnum() or len(w) > 1)]
    return np.array([_word_key(w) for w in words], np.int64)


# jieba part-of-speech tags of words that carry no content of their own (particles,
# prepositions, conjunctions, pronouns, adverbs, numerals, measure and locality words,
# punctuation), and of names (places, persons, organisations, other proper nouns).
_FUNCTION_TAGS = ("u", "p", "c", "r", "d", "x", "m", "q", "f", "y", "e", "o", "w")
_NAME_TAGS = frozenset(("ns", "nr", "nrt", "nrfg", "nt", "nz"))
_QUESTION_SET = frozenset(QUESTION_WORDS)


def _tagged(question: str) -> list[tuple[str, str]]:
    """jieba words and part-of-speech tags of a question, its question words removed."""
    text = QUESTION_WORDS_RE.sub(" ", normalize(question))
    return [(word.strip(), flag) for word, flag in tag_words(text)]


def content_words(question: str) -> list[tuple[str, bool]]:
    """The question's content words: jieba words of two or more characters that are not
    question words or function words, each with whether it is a *key* word: a name (place,
    person, organisation, other proper noun) or a noun in jieba's dictionary. Nouns that
    jieba does not know are mostly names glued to a neighbouring character by the
    segmenter, so they are content words but not key words."""
    freq = jieba().dt.FREQ
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for word, flag in _tagged(question):
        if len(word) < 2 or word in seen or word in _QUESTION_SET or flag.startswith(_FUNCTION_TAGS):
            continue
        if not any(ch.isalnum() for ch in word):
            continue
        seen.add(word)
        key = flag in _NAME_TAGS or (flag.startswith("n") and freq.get(word, 0) > 0 and not _category(question, word))
        out.append((word, key))
    return out


_CATEGORY_RE = re.compile(r"(?:什么|哪一?[个所种类家项位部]?)$")


def _category(question: str, word: str) -> bool:
    """Whether ``word`` is the kind of thing the question asks for (「什么型号」, 「哪所大学」):
    the answer names one, and the text need not use the word itself (「飞行器AR-E3000」)."""
    i = question.find(word)
    while i >= 0:
        if _CATEGORY_RE.search(question, 0, i):
            return True
        i = question.find(word, i + 1)
    return False


_PLACE_SUFFIX_RE = re.compile(r"(?<=..)(?:地区|自治区|自治州|[省市县区州])$")
_COMMON_NAMES = frozenset(("中国", "我国", "中华人民共和国", "全国", "国家", "国务院", "中央"))  # said in many ways


def place_and_person_names(question: str) -> list[str]:
    """Places, organisations and persons the question names (jieba's ns/nt/nr tags), a
    place's 省/市/县/区/地区/自治区 dropped (「山西省」, 「山西地区」 -> 「山西」): an answer from a passage that names
    none of them is about something else (「山西省长是谁」 read from Shaanxi's report)."""
    out = []
    for word, flag in _tagged(question):
        if len(word) >= 2 and flag in _NAME_TAGS and flag != "nz":  # not "other proper nouns"
            name = _PLACE_SUFFIX_RE.sub("", word) if flag == "ns" else word
            if name not in out and name not in _COMMON_NAMES:
                out.append(name)
    return out


def tokenize(text: str, mode: str = "bigram", query: bool = False) -> np.ndarray:
    """Integer term keys of ``text`` (with repeats). Queries lose their question words."""
    text = normalize(text)
    if query:
        text = QUESTION_WORDS_RE.sub(" ", text)
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
        if len(np.unique(ids)) != len(ids):
            raise ValueError("chunk ids must be distinct")
        per_text = [np.unique(tokenize(t, self.tokenizer), return_counts=True) for t in texts]
        new_keys = np.concatenate([k for k, _ in per_text] + [self.vocab[:0]])
        new_vocab = np.union1d(self.vocab, new_keys)
        # New rows go after the old ones, so the old CSR arrays are reused as they are: only
        # their column numbers move when new terms join the sorted vocabulary (a gather).
        tf = self.tf
        old_indices = tf.indices
        if len(new_vocab) != len(self.vocab) and tf.nnz:
            old_indices = np.searchsorted(new_vocab, self.vocab).astype(np.int64)[old_indices]
        order = np.argsort(ids, kind="stable")
        n_rows = int(ids.max()) + 1
        row_nnz = np.zeros(n_rows - self.size, np.int64)
        row_nnz[ids - self.size] = [len(per_text[i][0]) for i in range(len(ids))]
        nnz = tf.nnz + int(row_nnz.sum())
        idx_dtype = np.int32 if max(nnz, len(new_vocab)) < np.iinfo(np.int32).max else np.int64
        indptr = np.concatenate([tf.indptr.astype(idx_dtype, copy=False),
                                 (tf.nnz + np.cumsum(row_nnz)).astype(idx_dtype)])
        indices = np.concatenate([old_indices.astype(idx_dtype, copy=False)]
                                 + [np.searchsorted(new_vocab, per_text[i][0]).astype(idx_dtype) for i in order])
        data = np.concatenate([tf.data.astype(np.float32, copy=False)]
                              + [per_text[i][1].astype(np.float32) for i in order])
        self.tf = sparse.csr_matrix((data, indices, indptr), shape=(n_rows, len(new_vocab)))
        self.tf.has_sorted_indices = True
        self.vocab = new_vocab
        self._weights = None
        self._n_live = None

    def remove(self, ids: np.ndarray) -> None:
        """Forget the rows ``ids``; they keep their place but match nothing."""
        ids = np.asarray(ids, np.int64)
        ids = ids[(ids >= 0) & (ids < self.size)]
        if len(ids) == 0:
            return
        tf = self.tf
        counts = np.diff(tf.indptr)
        keep_row = np.ones(self.size, bool)
        keep_row[ids] = False
        keep = np.repeat(keep_row, counts)  # term counts are >= 1: no stored zeros to drop
        indptr = np.zeros(self.size + 1, tf.indptr.dtype)
        np.cumsum(np.where(keep_row, counts, 0), out=indptr[1:])
        self.tf = sparse.csr_matrix((tf.data[keep], tf.indices[keep], indptr), shape=tf.shape)
        self.tf.has_sorted_indices = True
        self._weights = None
        self._n_live = None

    def live_ids(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.tf.indptr))

    def _live_count(self) -> int:
        """Number of live rows, counted once per index state."""
        if self._weights is None or getattr(self, "_n_live", None) is None:
            self._n_live = int(np.count_nonzero(np.diff(self.tf.indptr)))
        return self._n_live

    def _prepare(self) -> tuple[sparse.csc_matrix, np.ndarray]:
        """The BM25 weight of every (row, term), column-major, and the IDF of every term:
        computed once per index state (on save, or on first use after a change)."""
        if self._weights is None:
            tf = self.tf
            lengths = np.asarray(tf.sum(axis=1)).ravel()
            live = lengths > 0
            n = max(int(live.sum()), 1)
            avgdl = float(lengths[live].mean()) if live.any() else 1.0
            norm = self.k1 * (1 - self.b + self.b * lengths / avgdl)
            data = tf.data + np.repeat(norm, np.diff(tf.indptr))  # tf + norm of the row
            np.divide(tf.data * (self.k1 + 1), data, out=data)
            weights = sparse.csr_matrix((data.astype(np.float32, copy=False), tf.indices, tf.indptr),
                                        shape=tf.shape).tocsc()
            df = np.diff(weights.indptr)  # rows holding each term (no stored zeros)
            self._idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
            self._weights = weights
        return self._weights, self._idf

    def _query_columns(self, query: str) -> np.ndarray:
        keys = np.unique(tokenize(query, self.tokenizer, query=True))
        if len(keys) == 0 or len(self.vocab) == 0:
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.vocab, keys), len(self.vocab) - 1)
        return pos[self.vocab[pos] == keys]

    def query_evidence(self, query: str, ids: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """How much of ``query`` the index knows, and how much of it each row in ``ids`` holds.

        Every query term weighs its IDF; a term that occurs nowhere weighs the largest IDF
        (that of a term in no row). Returns ``(known, held)``: ``known`` is the share of the
        query's weight whose terms occur somewhere in the index, ``held[i]`` the share whose
        terms occur in row ``ids[i]``. Both are 0 for a query with no content terms.
        """
        ids = np.zeros(0, np.int64) if ids is None else np.asarray(ids, np.int64)
        keys = np.unique(tokenize(query, self.tokenizer, query=True))
        if len(keys) == 0 or len(self.vocab) == 0:
            return 0.0, np.zeros(len(ids), np.float32)
        weights, idf = self._prepare()
        pos = np.minimum(np.searchsorted(self.vocab, keys), len(self.vocab) - 1)
        cols = pos[self.vocab[pos] == keys]
        cols = cols[weights.indptr[cols + 1] > weights.indptr[cols]]  # terms of removed rows occur nowhere
        n = max(self._live_count(), 1)
        unseen = len(keys) - len(cols)
        known = float(idf[cols].sum())
        total = known + unseen * float(np.log1p((n + 0.5) / 0.5))
        held = np.zeros(len(ids), np.float32)
        if total <= 0 or not len(cols):
            return 0.0, held
        if len(ids):
            # which of ``ids`` each query column holds: a binary search in the column's sorted
            # rows (no full-height slicing), summed in float32 in column order as a matvec would
            for c in cols:
                rows = weights.indices[weights.indptr[c]:weights.indptr[c + 1]]
                at = np.minimum(np.searchsorted(rows, ids), len(rows) - 1)
                held += np.where(rows[at] == ids, idf[c], np.float32(0))
            held = held / total
        return known / total, held

    def missing_words(self, question: str) -> tuple[list[str], list[str], int]:
        """The question's content words (see :func:`content_words`) that occur nowhere in
        the index: ``(missing, missing_key_words, n_words)``. A word counts as present when
        at least half of its terms are in the index, so a word that jieba glued to a
        neighbouring character (「潘尼曾」 for 潘尼 + 曾) is not missing."""
        words = content_words(question)
        if not words or len(self.vocab) == 0:
            return [w for w, _ in words], [w for w, name in words if name], len(words)
        weights, _ = self._prepare()
        missing: list[str] = []
        names: list[str] = []
        for word, is_key in words:
            keys = np.unique(tokenize(word, self.tokenizer))
            if len(keys) == 0:
                continue
            pos = np.minimum(np.searchsorted(self.vocab, keys), len(self.vocab) - 1)
            found = (self.vocab[pos] == keys) & (weights.indptr[pos + 1] > weights.indptr[pos])
            if 2 * int(found.sum()) < len(keys):
                missing.append(word)
                if is_key:
                    names.append(word)
        return missing, names, len(words)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (zero where no query term occurs)."""
        weights, idf = self._prepare()
        cols = self._query_columns(query)
        if len(cols) == 0:
            return np.zeros(self.size, np.float32)
        # the query's columns of the CSC weights, taken as slices (no fancy indexing)
        starts, ends = weights.indptr[cols], weights.indptr[cols + 1]
        sub = sparse.csc_matrix(
            (np.concatenate([weights.data[a:b] for a, b in zip(starts, ends)]),
             np.concatenate([weights.indices[a:b] for a, b in zip(starts, ends)]),
             np.concatenate([[0], np.cumsum(ends - starts)])),
            shape=(weights.shape[0], len(cols)),
        )
        return np.asarray(sub @ idf[cols]).ravel()

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (ids, scores), best first; rows with a zero score are never returned."""
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        order = np.argsort(-scores[hits], kind="stable")
        return hits[order], scores[hits[order]]

    # -- persistence -------------------------------------------------------------------
    # tf_*.npy hold the term frequencies (what add/remove change); w_*.npy and idf.npy the
    # prepared CSC weights, so that opening an index needs no O(nnz) preparation. Large
    # arrays are memory-mapped read-only: a query pages in only the columns it touches.
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tf = self.tf
        weights, idf = self._prepare()
        for name, arr in (("tf_data", tf.data), ("tf_indices", tf.indices), ("tf_indptr", tf.indptr),
                          ("vocab", self.vocab), ("w_data", weights.data), ("w_indices", weights.indices),
                          ("w_indptr", weights.indptr), ("idf", idf)):
            np.save(folder / f"{name}.npy", arr)
        params = {"tokenizer": self.tokenizer, "k1": self.k1, "b": self.b, "shape": list(tf.shape),
                  "nnz": int(tf.nnz), "weights": True}
        (folder / "bm25.json").write_text(json.dumps(params))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        params = json.loads((folder / "bm25.json").read_text())
        index = cls(params["tokenizer"], params["k1"], params["b"])
        shape = tuple(params["shape"])
        arrays = {name: _load_array(folder / f"{name}.npy")
                  for name in ("tf_data", "tf_indices", "tf_indptr", "vocab")}
        index.tf = sparse.csr_matrix((arrays["tf_data"], arrays["tf_indices"], arrays["tf_indptr"]), shape=shape)
        index.vocab = arrays["vocab"]
        if params.get("weights") and (folder / "idf.npy").exists():
            w = {name: _load_array(folder / f"{name}.npy") for name in ("w_data", "w_indices", "w_indptr", "idf")}
            if (len(w["w_data"]) == index.tf.nnz and len(w["w_indptr"]) == shape[1] + 1
                    and len(w["idf"]) == shape[1]):
                index._weights = sparse.csc_matrix((w["w_data"], w["w_indices"], w["w_indptr"]), shape=shape)
                index._idf = w["idf"]
        return index


def _load_array(path: Path) -> np.ndarray:
    """A saved array; large ones memory-mapped read-only (files of a generation never change)."""
    if path.stat().st_size > 1 << 20:
        return np.load(path, mmap_mode="r")
    return np.load(path)
