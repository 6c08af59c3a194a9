"""Light-weight text normalization shared by matching and span search.

Two flavours:

* :func:`normalize` folds width (NFKC), converts traditional to simplified Chinese and
  lowercases. The result may differ in length from the input; use it to compare texts.
* :func:`normalize_aligned` does the same folding character by character and never
  changes the length, so an offset into the result is an offset into the input. Use it
  to search for spans that must be cut out of the original text.

OpenCC is loaded lazily, once, on first use; importing this module is cheap.
"""

from __future__ import annotations

import re
import threading
import unicodedata

__all__ = ["normalize", "normalize_aligned"]

# Full-width ASCII (U+FF01..U+FF5E) -> ASCII, ideographic space -> space, then lowercase
# for ASCII letters. Both are one character to one character.
_WIDTH_TABLE: dict[int, int] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_WIDTH_TABLE[0x3000] = 0x20
for _cp in range(ord("A"), ord("Z") + 1):
    _WIDTH_TABLE[_cp] = _cp + 32
for _cp in range(0xFF21, 0xFF3B):  # full-width A-Z -> ascii a-z
    _WIDTH_TABLE[_cp] = _cp - 0xFEE0 + 32

_FULL_WIDTH_RE = re.compile("[\uff01-\uff5e\u3000]")

_converter = None
_converter_lock = threading.Lock()
# Per-character traditional -> simplified cache (only 1:1 mappings are kept).
_char_cache: dict[str, str] = {}


def _t2s():
    """The OpenCC traditional-to-simplified converter, created once."""
    global _converter
    if _converter is None:
        with _converter_lock:
            if _converter is None:
                import opencc

                _converter = opencc.OpenCC("t2s")
    return _converter


def _t2s_text(text: str) -> str:
    """Convert a whole text with OpenCC (phrase aware); returns the input on failure."""
    try:
        return _t2s().convert(text)
    except Exception:  # noqa: BLE001 - a broken converter must never break matching
        return text


def _t2s_char(ch: str) -> str:
    """Simplified form of one character, or the character itself if not 1:1."""
    out = _char_cache.get(ch)
    if out is None:
        conv = _t2s_text(ch)
        out = conv if len(conv) == 1 else ch
        _char_cache[ch] = out
    return out


def _lower_aligned(text: str) -> str:
    """Lowercase without changing the length (a few characters lowercase to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(lc := c.lower()) != 1 else lc for c in text)


def normalize_aligned(text: str) -> str:
    """Fold width, traditional characters and case, one character for one character.

    ``len(normalize_aligned(t)) == len(t)`` always holds, so offsets found in the result
    are valid offsets into ``t``.
    """
    if not text:
        return text
    if _FULL_WIDTH_RE.search(text):
        text = text.translate(_WIDTH_TABLE)
    folded = _lower_aligned(text)
    if folded.isascii():
        return folded
    # Fast path: OpenCC over the whole text (phrase aware) when it keeps the length.
    # A NUL or other oddity may make the converter misbehave; the length check catches it.
    if "\x00" not in folded:
        conv = _t2s_text(folded)
        if len(conv) == len(folded):
            return conv
    return "".join(c if c.isascii() else _t2s_char(c) for c in folded)


def normalize(text: str) -> str:
    """Fold width (NFKC), convert traditional to simplified and lowercase.

    The length may change; use :func:`normalize_aligned` when offsets matter.
    """
    if not text:
        return text
    # NFKC folds full-width forms (ＡＢＣ１２３？ -> ABC123?) and the ideographic space.
    folded = text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)
    if "\x00" in folded:
        return "".join(_t2s_char(c) for c in folded).lower()
    return _t2s_text(folded).lower()
