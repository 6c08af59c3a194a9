"""The values that flow through the pipeline. All frozen; offsets are Python str indices."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


def page_at(page_starts: str, offset: int) -> int | None:
    """The 1-based page holding ``offset``, given a document's ``meta["page_starts"]``
    (comma-separated start offsets of its pages); None for a document without pages."""
    if not page_starts:
        return None
    return bisect_right([int(s) for s in page_starts.split(",")], max(offset, 0)) or 1


@dataclass(frozen=True)
class Document:
    """A cleaned article. ``text`` is the cleaned body every offset refers to."""

    title: str
    text: str
    source: str = ""  # file path or URL the text came from
    published: str | None = None  # "YYYY-MM-DD" or "YYYY-MM-DD HH:MM" when known
    meta: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    doc_id: str = ""  # stable id; the knowledge base fills it in when empty


@dataclass(frozen=True)
class Chunk:
    """A span of a document: ``text == document.text[start:end]``."""

    doc_id: str
    index: int  # position of the chunk inside its document
    text: str
    start: int
    end: int
    heading: str = ""  # the headings it sits under: 「第三章 … > 第三十八条」 (no document title)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its provenance and score."""

    text: str
    title: str
    source: str
    published: str | None
    score: float
    doc_id: str
    start: int  # offsets of ``text`` in the cleaned document text
    end: int
    chunk_id: int = -1
    dense_score: float | None = None
    lexical_score: float | None = None
    heading: str = ""  # see Chunk.heading
    meta: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # the document's

    @property
    def page(self) -> int | None:
        """The page the passage starts on (PDFs, scans), for a citation's 「第3页」."""
        return page_at(self.meta.get("page_starts", ""), self.start)

    def citation(self) -> str:
        """One line naming the source for a reader: title（文号）, authority, date, page, heading."""
        number = self.meta.get("doc_number")
        parts = [f"{self.title}（{number}）" if number else self.title, self.meta.get("authority"),
                 self.published, f"第{self.page}页" if self.page else None, self.heading]
        return "  ".join(p for p in parts if p)

    def to_dict(self) -> dict:
        out = {
            "text": self.text,
            "title": self.title,
            "source": self.source,
            "published": self.published,
            "score": round(float(self.score), 6),
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
        }
        out.update({k: self.meta[k] for k in ("doc_number", "authority", "doc_type") if self.meta.get(k)})
        if self.heading:
            out["heading"] = self.heading
        if self.page is not None:
            out["page"] = self.page
        return out


@dataclass(frozen=True)
class Span:
    """An answer span found by extraction. Offsets are into ``passages[passage].text``."""

    text: str
    passage: int  # index into the passage list given to the extractor
    start: int
    end: int
    sentence_start: int  # the evidence sentence around the span, same coordinates
    sentence_end: int
    score: float  # extractor confidence in [0, 1]
    kind: str = ""  # question type that produced it: count, who, where, when, what, sentence


@dataclass(frozen=True)
class Answer:
    """What ``KnowledgeBase.answer`` returns. ``text`` is None when nothing relevant was found."""

    question: str
    text: str | None
    passages: tuple[Passage, ...]
    confidence: float = 0.0
    span: Span | None = None
    evidence: str | None = None  # the source sentence that holds the answer

    @property
    def page(self) -> int | None:
        """The page the answer itself is on (PDFs, scans), for a citation's 「第3页」."""
        if self.span is None:
            return None
        p = self.passages[self.span.passage]
        return page_at(p.meta.get("page_starts", ""), p.start + self.span.start)

    def to_dict(self) -> dict:
        out = {
            "question": self.question,
            "answer": self.text,
            "confidence": round(float(self.confidence), 4),
            "evidence": self.evidence,
            "passages": [p.to_dict() for p in self.passages],
        }
        if self.span is not None:
            out["answer_span"] = {
                "passage": self.span.passage,
                "start": self.span.start,
                "end": self.span.end,
                "kind": self.span.kind,
                "page": self.page,
            }
        return out
