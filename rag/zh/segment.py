"""jieba, set up once for the whole package.

jieba loads a 35 MB dictionary on first use and logs while doing it; BM25, extraction,
follow-up rewriting and the answer check all segment text, from the web app's threads at
once. Every caller goes through :func:`jieba`, so the dictionary loads once, under a lock,
with the log silenced.
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType

_lock = threading.Lock()
_pos_lock = threading.Lock()  # posseg keeps per-tokenizer state; one tagging at a time
_ready = False


def jieba() -> ModuleType:
    """The jieba module with its dictionary loaded (once, whichever thread asks first)."""
    global _ready
    import jieba as jb

    if not _ready:
        with _lock:
            if not _ready:
                jb.setLogLevel(logging.WARNING)
                jb.initialize()
                _ready = True
    return jb


def pos_tags() -> dict[str, str]:
    """jieba's dictionary tags, word -> part of speech (no HMM guesses)."""
    jieba()
    import jieba.posseg as pseg

    return pseg.dt.word_tag_tab


def word_freq() -> tuple[dict[str, int], int]:
    """jieba's dictionary frequencies and their total (for rarity weights)."""
    dt = jieba().dt
    return dt.FREQ, dt.total


def tag_words(text: str) -> list[tuple[str, str]]:
    """``text`` segmented by ``jieba.posseg`` (with its HMM for unknown words): (word, tag) pairs."""
    jieba()
    import jieba.posseg as pseg

    with _pos_lock:
        return [(p.word, p.flag) for p in pseg.cut(text)]
