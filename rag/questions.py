"""What a question must be before it is searched: text of a usable length, and a top-k in range.

One place for these checks, so that search, answer, the CLI and the web app refuse the same
input with the same message (a :class:`~rag.errors.QuestionError`).
"""

from __future__ import annotations

import re
import unicodedata

from .errors import QuestionError

MAX_QUESTION_CHARS = 1000
MAX_TOP_K = 100
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# zero-width and bidi marks, C0/C1 controls, and lone surrogates (from a bad byte in argv or
# a JSON "\ud800"), which no tokenizer or encoder can take
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_question(question: str) -> str:
    """The question without control/zero-width characters; an unusable one is a QuestionError."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", question)).strip()
    if not text:
        raise QuestionError("the question is empty; type a question such as 「晋中有几家省级博士创新站」")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. Ask a shorter question."
        )
    return text


def check_top_k(top_k: int) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise QuestionError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {top_k!r}")
    return top_k


def has_chinese(text: str) -> bool:
    """Whether ``text`` holds a Chinese character (the lexical answer check judges only those)."""
    return _CJK.search(text) is not None
