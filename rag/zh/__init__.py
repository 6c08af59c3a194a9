"""The Chinese-language layer: one jieba setup and one lexicon for the whole package.

    segment.py  jieba, loaded once (thread-safe), its dictionary and part-of-speech tags
    lexicon.py  question words, measure words, stop words, names' characters, and the
                question patterns built from them
"""

from .segment import jieba, pos_tags, tag_words, word_freq

__all__ = ["jieba", "pos_tags", "tag_words", "word_freq"]
