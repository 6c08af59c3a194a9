"""Answering components. Only names are re-exported here; see the modules for the code."""

from .generate import (
    GenerationError,
    Generator,
    Unverified,
    WrittenAnswer,
    check_answer,
    should_generate,
    stream_answer,
    write_answer,
)

__all__ = [
    "GenerationError",
    "Generator",
    "Unverified",
    "WrittenAnswer",
    "check_answer",
    "should_generate",
    "stream_answer",
    "write_answer",
]
