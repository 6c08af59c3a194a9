from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import ChunkSettings, chunk_text, sentence_spans

from .conftest import SEED, SEED_SENTENCE


def test_offsets_slice_the_text_and_cover_it():
    text = SEED.read_text(encoding="utf-8")
    chunks = chunk_text(text, "d", ChunkSettings(size=200, overlap=50))
    assert len(chunks) > 5
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert len(c.text) <= 200
        assert c.doc_id == "d"
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # every non-space character is in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_follow_sentences_and_overlap():
    text = SEED.read_text(encoding="utf-8")
    chunks = chunk_text(text, "d", ChunkSettings(size=300, overlap=80))
    assert any(SEED_SENTENCE in c.text for c in chunks)  # the answer sentence is never cut
    ends = {b for _, b in sentence_spans(text)}
    assert all(c.end in ends for c in chunks)
    assert any(b.start < a.end for a, b in pairwise(chunks))  # some overlap


def test_long_sentence_is_cut_at_clauses_not_inside_numbers_or_names():
    sentence = "，".join(f"第{i}项任务完成投资12345.67万元" for i in range(40)) + "。"
    text = sentence + "《中华人民共和国" + "长名称" * 30 + "法》规定。"
    chunks = chunk_text(text, "d", ChunkSettings(size=100, overlap=0))
    for c in chunks:
        assert len(c.text) <= 100
        assert text[c.start:c.end] == c.text
        assert "12345.67" in c.text or "1234" not in c.text  # numbers stay whole
    assert all(not (text[c.end - 1].isdigit() and c.end < len(text) and text[c.end].isdigit()) for c in chunks)


def test_settings_are_checked():
    import pytest

    with pytest.raises(ValueError):
        ChunkSettings(size=10)
    with pytest.raises(ValueError):
        ChunkSettings(size=100, overlap=100)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600), st.integers(20, 120))
def test_random_text_offsets(text, size):
    for c in chunk_text(text, "x", ChunkSettings(size=size, overlap=size // 4)):
        assert c.text == text[c.start:c.end]
        assert c.text.strip() == c.text and c.text
        assert len(c.text) <= size
