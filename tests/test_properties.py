"""Property-based tests: random Unicode through cleaning, chunking, tokenizing, search and
answer extraction, composed the way the knowledge base composes them.

Per-stage properties live next to their modules (tests/test_chunking.py: chunk offsets of raw
text; tests/test_documents.py: clean_text totality and idempotence; tests/test_extraction.py:
extract_answer on random passages). Here: ``document_from_text`` on anything, the chain
document -> chunks -> passages -> answer span with every offset checked against the text it
claims to slice, question cleaning (including lone surrogates and controls), and a real
index queried with random questions.
"""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag import Document, KnowledgeBase
from rag.chunking import ChunkSettings, chunk_text, retrieval_text
from rag.documents import document_from_text
from rag.errors import DocumentError, QuestionError
from rag.extraction import extract_answer
from rag.knowledge_base import MAX_QUESTION_CHARS, clean_question
from rag.lexical import tokenize
from rag.types import Passage

from .conftest import SEED

pytestmark = pytest.mark.usefixtures("rules_answering")  # tiny made-up articles: see conftest

# Every code point, surrogates and controls included, weighted towards the text this
# system sees: Chinese, its punctuation, digits, measure words and question words.
ANY_CHAR = st.characters(exclude_categories=())
CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
TEXTY = st.sampled_from(list("。，、；：？！“”《》（）\n\n 0123456789０１２.%家个座人年月日几多少谁哪什么是有在")
                        + ["\u200b", "\ufeff", "\u202e", "\x00", "\r", "\t", "　", "😀", "\ud800", "\udcff"])
MIXED = st.one_of(CHINESE, CHINESE, TEXTY, ANY_CHAR)
SEED_TEXT = SEED.read_text(encoding="utf-8")
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ud800-\udfff]")

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_span(span, passages: list[Passage]) -> None:
    text = passages[span.passage].text
    assert 0 <= span.sentence_start <= span.start < span.end <= span.sentence_end <= len(text)
    assert span.text == text[span.start:span.end]
    assert span.text in text[span.sentence_start:span.sentence_end]
    assert 0.0 <= span.score <= 1.0


def _passages(doc: Document, chunks, n: int = 5) -> list[Passage]:
    return [Passage(c.text, doc.title, doc.source, doc.published, 1.0 / (i + 1), doc.doc_id or "d", c.start, c.end, i)
            for i, c in enumerate(chunks[:n])]


@PROPERTY
@given(raw=st.text(MIXED, max_size=800), title=st.none() | st.text(MIXED, max_size=30))
def test_document_from_text_never_fails_but_with_document_error(raw, title):
    try:
        doc = document_from_text(raw, source="random.txt", title=title)
    except DocumentError as exc:
        assert "no article text" in str(exc)
        return
    assert doc.text and doc.text == doc.text.strip()
    assert not INVISIBLE.search(doc.text.replace("\n", ""))
    assert "\r" not in doc.text and "\t" not in doc.text
    assert unicodedata.is_normalized("NFC", doc.text)
    assert doc.title and "\n" not in doc.title
    tokenize(doc.text, "bigram")  # what BM25 will do with it: no exception
    tokenize(retrieval_text(doc.title, doc.text[:300]), "both")


@PROPERTY
@given(raw=st.text(MIXED, min_size=1, max_size=1500), question=st.text(MIXED, max_size=40),
       size=st.integers(20, 400))
def test_document_chunks_passages_and_answer_spans_slice_their_texts(raw, question, size):
    """The knowledge base's chain: clean -> chunk -> passages -> answer span, on junk."""
    try:
        doc = document_from_text(raw, source="random.txt")
    except DocumentError:
        return
    chunks = chunk_text(doc.text, "d", ChunkSettings(size=size, overlap=size // 5))
    assert chunks
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text and c.text
    passages = _passages(doc, chunks)
    try:
        q = clean_question(question)
    except QuestionError:
        return
    span = extract_answer(q, passages)
    if span is not None:
        _check_span(span, passages)
        p = passages[span.passage]
        # the answer's offsets carried back into the document
        assert doc.text[p.start + span.start:p.start + span.end] == span.text


@PROPERTY
@given(question=st.text(MIXED, max_size=60), seed=st.integers(0, 10_000))
def test_random_questions_on_the_seed_article(question, seed):
    """Real article, random questions (and random cuts of it as passages)."""
    doc = document_from_text(SEED_TEXT, source=str(SEED))
    chunks = chunk_text(doc.text, "seed", ChunkSettings(size=300, overlap=60))
    random.Random(seed).shuffle(chunks)
    passages = _passages(doc, chunks)
    try:
        q = clean_question(question + "几家")
    except QuestionError:
        return
    span = extract_answer(q, passages)
    if span is not None:
        _check_span(span, passages)


@PROPERTY
@given(question=st.text(MIXED, max_size=1200))
def test_clean_question_is_total(question):
    try:
        q = clean_question(question)
    except QuestionError as exc:
        assert "empty" in str(exc) or "characters long" in str(exc)
        return
    assert q and q == q.strip() and len(q) <= MAX_QUESTION_CHARS
    assert not INVISIBLE.search(q)
    assert unicodedata.is_normalized("NFC", q)
    for mode in ("bigram", "jieba", "both"):
        tokenize(q, mode, query=True)  # surrogates used to raise UnicodeEncodeError here


@pytest.fixture(scope="module")
def junk_kb(tmp_path_factory, minilm_path):
    """A real index of 25 documents of random, messy text (fixed seed) plus the seed article."""
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 400)] + list("。，、；：？！0123456789 \n家个座人年") + [
        "\u200b", "😀", "\x07", "Ａ", "ß", "\u0301", "\ufeff", "《", "》"]
    docs = [Document(title="".join(rng.choices(alphabet, k=8)), text="".join(rng.choices(alphabet, k=rng.randint(20, 900))),
                     source=f"junk-{i}") for i in range(25)]
    docs.append(document_from_text(SEED_TEXT, source=str(SEED)))
    kb = KnowledgeBase(tmp_path_factory.mktemp("junk") / "index", model=minilm_path)
    report = kb.add_documents([d for d in docs if d.text.strip()])
    assert report.added
    return kb


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(question=st.text(MIXED, max_size=80), top_k=st.integers(1, 12), mode=st.sampled_from(["hybrid", "bm25", "dense"]))
def test_search_and_answer_on_a_real_index_with_random_questions(junk_kb, question, top_k, mode):
    try:
        passages = junk_kb.search(question, top_k=top_k, mode=mode)
    except QuestionError:
        return
    assert len(passages) <= top_k
    for p in passages:
        assert junk_kb.document(p.doc_id).text[p.start:p.end] == p.text
    if mode == "hybrid":
        result = junk_kb.answer(question, top_k=top_k)
        if result.text is not None:
            _check_span(result.span, list(result.passages))
            assert result.evidence == result.passages[result.span.passage].text[
                result.span.sentence_start:result.span.sentence_end]
