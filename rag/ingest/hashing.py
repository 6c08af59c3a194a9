"""Content hashes: how ingestion tells a changed file or text from an unchanged one."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_hex(data: bytes | str, n: int = 64) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``data`` (text as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:n]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (a file is never held whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
