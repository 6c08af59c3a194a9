"""When an answer is given and when the knowledge base says nothing was found."""

from __future__ import annotations

from ..config import GateSettings


class AnswerGate(GateSettings):
    """The abstention rules around the reader.

    1. The question's key terms must be in the knowledge base: every key word in it (a
       name -- place, person, organisation -- or a dictionary noun, as jieba tags them)
       and at least ``min_found_words`` of its content words must occur somewhere in the
       index. 「北京有几所大学」 or 「火星上有几家省级博士创新站」 over articles that never
       mention 北京 or 火星 get no answer, however close the passages look.
    2. The reader must find a span, with a confidence of at least ``min_confidence``, or,
       when that is None, the reader's own calibrated threshold (``Reader.min_confidence``).
    3. The answer's document must name the places, organisations and persons the question
       names (in the title, heading or text of its passages shown): 「山西省长是谁」 is not
       answered from Shaanxi's report, nor 「上海2025年粮食产量」 from Anhui's. When the
       passage read lacks them, only the passages of documents that name them are read.

    The settings and their defaults are :class:`rag.config.GateSettings`.
    """

    def threshold(self, reader) -> float:
        return float(reader.min_confidence if self.min_confidence is None else self.min_confidence)

    @staticmethod
    def names_missing(question: str, passages, answer_passage: int, names: list[str] | None = None) -> list[str]:
        """The question's names (``names``: computed once by the caller, else here) that the
        answer's document, as far as it is shown, lacks."""
        from ..lexical import place_and_person_names

        names = place_and_person_names(question) if names is None else names
        if not names:
            return []
        doc = passages[answer_passage].doc_id
        shown = "\n".join(f"{p.title}\n{p.heading}\n{p.text}" for p in passages if p.doc_id == doc)
        return [n for n in names if n not in shown]

    def key_terms_missing(self, missing: list[str], missing_key_words: list[str], n_words: int) -> bool:
        """Whether the question's key terms are absent from the index."""
        return bool(missing_key_words) or (n_words > 0 and n_words - len(missing) < self.min_found_words * n_words)
