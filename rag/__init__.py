"""Question answering over Chinese policy articles, offline.

    from rag import KnowledgeBase, Document, answer
    kb = KnowledgeBase("index")
    kb.add(["data/articles"])
    kb.answer("晋中有几家省级博士创新站").text   # '7家'

Importing the package is cheap: models and indexes load on first use.
"""

from .config import apply_offline_defaults

# No request leaves the machine unless the user asks for it: set before any huggingface or
# gradio library is imported. A user may override them in the environment.
apply_offline_defaults()

from .errors import RagError
from .types import Answer, Document, Passage, Span

__all__ = ["Answer", "Document", "KnowledgeBase", "Passage", "RagError", "Span", "answer"]


def __getattr__(name: str):
    if name in ("KnowledgeBase", "answer"):
        from . import knowledge_base

        return getattr(knowledge_base, name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
