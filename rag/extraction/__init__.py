"""Rule-based answer-span extraction from ranked Chinese passages.

No neural reader is available offline, so the extractor works with what a careful reader
would use:

1. **Question analysis** (:func:`_analyze`): the question type, the question word (wh)
   and the measure word it asks for, the left and right context around it and the key
   terms (jieba words minus stop words) with rarity weights from jieba's dictionary.
2. **Sentence scoring**: every passage is split into sentences and clauses with offsets;
   a sentence scores by the weighted key terms it holds, character-bigram overlap, the
   key terms its passage (or title) holds, a penalty when the passage lacks a named
   entity of the question, and a small prior for the passage rank.
3. **Candidates by type** in the best sentences: numbers with units (count), person
   names (who), places, organisations and lists (where), dates (when) and the text that
   fills the slot between the question's left and right contexts (what / other).
4. **Candidate scoring**: sentence score, proximity to the key terms inside the same
   clause, alignment with the question's left/right context (「…7家省级博士创新站」 for
   「几家省级博士创新站」) and how well the candidate fits what was asked (家 for 几家).
5. **Confidence and abstention**: the share of the question's key-term weight found
   around the answer, scaled down when the passage lacks a proper name of the question
   (「上海…」 asked of an article about 晋中) or when the candidate has the wrong form
   (an organisation for 「市长是谁」); below a threshold the extractor returns None.

All matching runs on :func:`rag.textnorm.normalize_aligned` text, which keeps offsets,
so every span is cut out of the original passage text exactly.

The package follows those steps: ``patterns.py`` (patterns, thresholds, tagging),
``question.py`` (1), ``candidates.py`` (2, 3), ``scoring.py`` (4, 5 and
:func:`extract_answer`).
"""

from .question import question_type
from .scoring import (
    change_for_amount,
    count_span,
    extract_answer,
    list_only,
    name_only,
    one_quantity,
    respective,
    slot_only,
    subject_clause,
)

__all__ = ["change_for_amount", "count_span", "extract_answer", "list_only", "name_only", "one_quantity", "question_type", "respective",
           "slot_only", "subject_clause"]
