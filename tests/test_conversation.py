"""Follow-up questions are rewritten into standalone ones (rag.conversation)."""

from __future__ import annotations

import pytest

from rag.conversation import elliptical_subject, is_followup, resolve_followup, rewrite_followup

SEED = "晋中有几家省级博士创新站"


@pytest.mark.parametrize(
    ("previous", "question", "expected"),
    [
        # the example: the new object replaces the old one, the place stays
        (SEED, "那国家博士后科研站呢？", "晋中有几家国家博士后科研站"),
        (SEED, "国家博士后科研站呢", "晋中有几家国家博士后科研站"),
        (SEED, "那么国家博士后科研站呢?", "晋中有几家国家博士后科研站"),
        # a new place replaces the old place
        (SEED, "那太原呢", "太原有几家省级博士创新站"),
        (SEED, "太原市呢？", "太原市有几家省级博士创新站"),
        # both at once
        (SEED, "那太原的国家博士后科研站呢", "太原有几家国家博士后科研站"),
        # a new time replaces the old time, or is put in front
        ("2023年晋中引进了多少人才", "2024年呢", "2024年晋中引进了多少人才"),
        ("晋中引进了多少人才", "2024年呢", "2024年晋中引进了多少人才"),
        # the object can sit before the question word
        ("市科技局局长是谁", "那市教育局局长呢", "市教育局局长是谁"),
        ("市科技局局长是谁？", "市委人才办主任呢", "市委人才办主任是谁"),
        ("晋中省级博士创新站有几家", "国家博士后科研站呢", "晋中国家博士后科研站有几家"),
        # ... or be followed by a verb phrase that stays
        ("晋中市与多少所高校开展合作", "那企业呢", "晋中市与多少所企业开展合作"),
        ("晋中建立了几家院士(专家)工作站", "省级博士创新站呢", "晋中建立了几家省级博士创新站"),
        # a short complete question without a place inherits the previous one
        (SEED, "国家博士后科研站有几家？", "晋中国家博士后科研站有几家"),
        (SEED, "那国家博士后科研站有几家呢", "晋中国家博士后科研站有几家"),
    ],
)
def test_followups_are_rewritten(previous: str, question: str, expected: str) -> None:
    assert resolve_followup(question, previous) == expected
    assert is_followup(question, previous)


@pytest.mark.parametrize(
    ("previous", "question"),
    [
        (None, SEED),
        ("", "那国家博士后科研站呢"),
        (SEED, "山西省教育厅的厅长是谁"),  # complete, with its own place
        (SEED, "什么是博士后科研工作站"),  # starts with a question word: a new topic
        (SEED, "晋中建立了几家院士(专家)工作站"),
        (SEED, "2024年晋中市委五届八次全会明确指出要推进哪些方面的改革工作呢"),  # long: complete
    ],
)
def test_standalone_questions_are_unchanged(previous: str | None, question: str) -> None:
    assert resolve_followup(question, previous) == question
    assert not is_followup(question, previous)


@pytest.mark.parametrize(
    ("question", "subject"),
    [("那国家博士后科研站呢？", "国家博士后科研站"), ("国家博士后科研站呢", "国家博士后科研站"),
     ("那太原呢", "太原"), (SEED, ""), ("那有几家呢", ""), ("呢", ""), ("请问非洲气候带", ""), ("那太原", "")],
)
def test_the_subject_of_an_elliptical_question(question: str, subject: str) -> None:
    assert elliptical_subject(question) == subject


def test_chained_followups_use_the_resolved_previous_question() -> None:
    first = resolve_followup("那国家博士后科研站呢", SEED)
    second = resolve_followup("那院士工作站呢", first)
    assert second == "晋中有几家院士工作站"
    assert resolve_followup("那太原呢", second) == "太原有几家院士工作站"


def test_rewrite_reports_the_rule_and_the_original() -> None:
    result = rewrite_followup("那太原呢？", SEED)
    assert result.original == "那太原呢？"
    assert result.rewritten and result.rule == "replace-place"
    assert not rewrite_followup(SEED, None).rewritten


@pytest.mark.parametrize("junk", ["", "   ", "呢", "那", "？？", "那呢？"])
def test_degenerate_input_does_not_raise(junk: str) -> None:
    out = resolve_followup(junk, SEED)
    assert isinstance(out, str)
    assert resolve_followup(SEED, junk) == SEED


def test_no_question_word_in_previous_falls_back_to_its_place() -> None:
    assert resolve_followup("那教育呢", "晋中的人才政策") == "晋中教育"
