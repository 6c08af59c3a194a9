"""The query side of BM25: tokenization of questions, no zero-score noise, query evidence."""

from __future__ import annotations

import numpy as np
import pytest

from rag.lexical import BM25Index, content_words, place_and_person_names, tokenize

TEXTS = [
    "晋中市建立院士工作站3家，获批设立1家国家博士后科研站，7家省级博士创新站。",
    "山西省新建70个博士创新站，引进高层次人才。",
    "各地要做好疫情防控和复工复产工作。",
    "Beijing 2026 GDP growth target is 5%.",
]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    ix = BM25Index("bigram")
    ix.add(np.arange(len(TEXTS)), TEXTS)
    return ix


def keys(text: str, query: bool = False) -> set[int]:
    return set(tokenize(text, "bigram", query=query).tolist())


def test_question_words_split_the_query():
    # 「晋中有几家」: no bigram spans the question word 几 (有几/几家 would match any count)
    assert keys("有几家", query=True) == keys("有", query=True) | keys("家", query=True)
    assert keys("是什么？", query=True) == set()
    assert keys("哪些", query=True) == set()
    # documents keep every bigram
    assert keys("几家") != set()


def test_latin_words_and_numbers_are_whole_terms(index):
    ids, _ = index.search("GDP growth", 5)
    assert ids.tolist() == [3]
    assert index.search("2026", 5)[0].tolist() == [3]


@pytest.mark.parametrize("query", ["是什么？", "哪些呢", "量子引力", "是什么的吗？", "zzzz"])
def test_unseen_or_stop_word_queries_return_nothing(index, query):
    ids, scores = index.search(query, 5)
    assert len(ids) == 0 and len(scores) == 0
    known, held = index.query_evidence(query, np.arange(len(TEXTS)))
    assert known == 0.0 and not held.any()


def test_search_never_returns_zero_scores(index):
    ids, scores = index.search("晋中有几家省级博士创新站", 10)
    assert ids[0] == 0
    assert (scores > 0).all()
    assert 2 not in ids.tolist()  # shares no term with the question


def test_query_evidence_shares(index):
    q = "晋中有几家省级博士创新站"
    known, held = index.query_evidence(q, np.arange(len(TEXTS)))
    # every term of the question is in row 0 except the ones that occur nowhere
    assert 0 < known < 1
    assert held[0] == pytest.approx(known, abs=1e-6)
    assert 0 < held[1] < held[0]
    assert held[2] == 0 and held[3] == 0
    # a query made only of known terms is fully known
    known2, held2 = index.query_evidence("博士创新站", np.array([0, 1]))
    assert known2 == pytest.approx(1.0)
    assert held2 == pytest.approx([1.0, 1.0])
    # a query term found nowhere lowers the share the index knows
    known3, _ = index.query_evidence("博士创新站量子", np.array([0]))
    assert known3 < 1.0


def test_query_evidence_follows_removals():
    ix = BM25Index("bigram")
    ix.add(np.arange(len(TEXTS)), TEXTS)
    assert ix.query_evidence("疫情防控", np.array([2]))[0] == pytest.approx(1.0)
    ix.remove(np.array([2]))
    known, held = ix.query_evidence("疫情防控", np.array([2]))
    assert known == 0.0 and held[0] == 0.0
    assert len(ix.search("疫情防控", 5)[0]) == 0


def test_content_words_of_a_question():
    words = dict(content_words("晋中有几家省级博士创新站？"))
    assert words["晋中"] is True  # a place name: key word
    assert "几家" not in words and "有" not in words  # question and function words go
    assert dict(content_words("火星上有几家省级博士创新站"))["火星"] is True  # a dictionary noun
    assert content_words("是什么？") == []
    # the kind of thing asked for need not be in the text (「飞行器AR-E3000」 for 什么型号)
    words = dict(content_words("首飞成功的电动垂直起降飞行器是什么型号"))
    assert words["型号"] is False and words["飞行器"] is True
    assert dict(content_words("纳希德毕业于哪所大学"))["大学"] is False


def test_place_names_lose_their_administrative_suffix():
    assert place_and_person_names("广东地区生产总值是多少") == ["广东"]  # not 「广东地」
    assert place_and_person_names("山西省长是谁") == ["山西"]
    assert place_and_person_names("内蒙古自治区粮食产量是多少") == ["内蒙古"]


def test_missing_words(index):
    assert index.missing_words("晋中有几家省级博士创新站") == ([], [], len(content_words("晋中有几家省级博士创新站")))
    missing, key, n = index.missing_words("北京有几家省级博士创新站")
    assert missing == ["北京"] and key == ["北京"] and n >= 2
    missing, key, _ = index.missing_words("火星上有几家博士创新站")
    assert "火星" in missing and "火星" in key
    missing, key, n = index.missing_words("量子引力是什么")
    assert set(missing) == {"量子", "引力"} and n == 2


def test_weights_are_built_once_per_index_state():
    ix = BM25Index("bigram")
    ix.add(np.arange(len(TEXTS)), TEXTS)
    ix.search("博士创新站", 3)
    built = ix._weights
    for q in ("晋中有几家省级博士创新站", "疫情防控", "GDP growth"):
        ix.search(q, 3)
        ix.query_evidence(q, np.arange(3))
    assert ix._weights is built  # queries never rebuild BM25
    ix.add(np.array([len(TEXTS)]), ["新增一行：博士创新站"])
    assert ix.search("博士创新站", 10)[0].tolist().count(len(TEXTS)) == 1  # updated with the index
