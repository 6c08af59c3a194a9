"""One family of errors; every message says what went wrong and what to do."""


class RagError(Exception):
    """Base class for every error this package raises on purpose."""


class DocumentError(RagError):
    """A file could not be read or holds no usable text."""


class QuestionError(RagError):
    """The question is empty, too long or otherwise unusable."""


class StoreError(RagError):
    """Base for problems with the on-disk index."""


class IndexMismatchError(StoreError):
    """The index was built with another model or format version."""


class IndexCorruptError(StoreError):
    """An index file is missing, truncated or unreadable."""


class IndexLockedError(StoreError):
    """Another process is writing the index."""


class ModelError(RagError):
    """An embedding or reranking model could not be loaded."""


class IndexWriteError(StoreError):
    """Writing the index failed (disk full, file-size limit, permission, read-only disk, I/O
    error); the previous generation is still current and whole."""
