"""Filters on retrieved passages by their document: date range, document type, ids.

``KnowledgeBase.search/answer(..., filters={"since": "2026-01-01", "until": "2026-12-31",
"doc_type": "报告", "doc_ids": [...]})``. The retrievers fetch a larger pool
(:data:`OVERFETCH` candidates) and the filter keeps the passages of matching documents, so
the ranking inside the filtered set is the ranking of the whole index. A document without a
date never passes a date filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import QuestionError
from .types import Passage

OVERFETCH = 500  # candidates ranked before filtering
KEYS = ("since", "until", "doc_type", "doc_ids")
_DATE_RE = re.compile(r"^\d{4}(?:-\d{2}(?:-\d{2})?)?$")


@dataclass(frozen=True)
class Filters:
    since: str | None = None  # YYYY, YYYY-MM or YYYY-MM-DD, inclusive
    until: str | None = None  # inclusive: "2026" keeps all of 2026
    doc_type: str | None = None  # 通知, 意见, 办法, 报告, 法律 … (meta["doc_type"], else from the title)
    doc_ids: frozenset[str] | None = None

    @classmethod
    def parse(cls, filters: Mapping | Filters | None) -> Filters | None:
        """Filters from a mapping; None when nothing is asked. Unknown keys and malformed
        dates are a QuestionError."""
        if filters is None or isinstance(filters, Filters):
            return filters
        if not isinstance(filters, Mapping):
            raise QuestionError(f"filters must be a mapping with keys {', '.join(KEYS)}")
        unknown = set(filters) - set(KEYS)
        if unknown:
            raise QuestionError(f"unknown filter {', '.join(sorted(map(str, unknown)))}; use {', '.join(KEYS)}")
        for key in ("since", "until"):
            value = filters.get(key)
            if value is not None and not (isinstance(value, str) and _DATE_RE.match(value.strip())):
                raise QuestionError(f"filter {key} must be a date like 2026-01-01 (or 2026, 2026-01), not {value!r}")
        ids = filters.get("doc_ids")
        if isinstance(ids, str):
            ids = [ids]
        parsed = cls(
            since=(filters.get("since") or "").strip() or None,
            until=(filters.get("until") or "").strip() or None,
            doc_type=(filters.get("doc_type") or "").strip() or None,
            doc_ids=frozenset(map(str, ids)) if ids else None,
        )
        return parsed if parsed != cls() else None

    def accepts(self, passage: Passage) -> bool:
        if self.doc_ids is not None and passage.doc_id not in self.doc_ids:
            return False
        if self.since or self.until:
            day = (passage.published or "")[:10]
            if not day:
                return False
            if self.since and day < self.since:
                return False
            if self.until and day[:len(self.until)] > self.until:
                return False
        if self.doc_type:
            from .ingest.metadata import doc_type

            kind = passage.meta.get("doc_type") or doc_type(passage.title)
            if kind != self.doc_type:
                return False
        return True

    def apply(self, passages: Iterable[Passage]) -> list[Passage]:
        return [p for p in passages if self.accepts(p)]
