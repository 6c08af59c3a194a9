"""Indexing with Ray: workers read, clean, chunk and embed; this process writes the store.

``rag index PATH --ray ADDRESS`` (``KnowledgeBase.add(..., ray=ADDRESS)``): ``local`` starts
a Ray on this machine, ``auto`` joins the cluster this machine belongs to, ``ray://host:10001``
connects to a remote one. One actor per worker (``--ray-workers``, default: the cluster's
CPUs, at most one per file batch) loads the embedding model once and takes batches of files;
results come back as they finish and go through the same change detection, duplicate check
and commits (by count and by time) as a run without Ray, so an interrupted run resumes the
same way. Unchanged files are recognised here by their hash and never sent out.

Workers need the ``rag`` package and the model: on a local Ray they get this checkout's
``rag`` on their PYTHONPATH; on a cluster, install the package (with the same model) on
every node. Nothing imports Ray unless ``--ray`` is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DocumentError, RagError

if TYPE_CHECKING:
    from .ingest.ingestor import AddReport, Ingestor

log = logging.getLogger(__name__)
FILES_PER_TASK = 8


class Worker:
    """One Ray actor: the embedding model, loaded once, and the reading and chunking code."""

    def __init__(self, model: str, chunk_size: int, chunk_overlap: int) -> None:
        from .chunking import ChunkSettings
        from .embedding import load_embedder

        self.embedder = load_embedder(model)
        self.chunking = ChunkSettings(size=chunk_size, overlap=chunk_overlap)

    def process(self, files: list[tuple[str, str, str]]) -> list[tuple[str, str, object]]:
        """(source, file hash, Prepared or the reason it failed) for each (path, source, hash)."""
        from .chunking import chunk_text, retrieval_text
        from .documents import read_file
        from .ingest.ingestor import Prepared, _with_source

        out: list[tuple[str, str, object]] = []
        for path, source, file_hash in files:
            try:
                doc = _with_source(read_file(Path(path)), source)
            except DocumentError as exc:
                out.append((source, file_hash, str(exc)))
                continue
            except OSError as exc:
                out.append((source, file_hash, f"cannot read {path}: {exc.strerror or exc}"))
                continue
            chunks = chunk_text(doc.text, doc.doc_id, self.chunking)
            texts = [retrieval_text(doc.title, c.text, c.heading) for c in chunks]
            vectors = (np.asarray(self.embedder.embed_passages(texts), np.float32) if texts
                       else np.zeros((0, int(self.embedder.dim)), np.float32))
            out.append((source, file_hash, Prepared(doc, chunks, vectors)))
        return out


def connect(address: str, cpus: int | None = None) -> None:
    """Start or join Ray: ``local`` (this machine, with ``cpus`` CPUs: all by default),
    ``auto`` (its cluster) or ``ray://host:port``."""
    import ray

    if ray.is_initialized():
        return
    env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith(("HF_", "RAG_", "TRANSFORMERS_"))}}
    if address == "local":
        here = str(Path(__file__).resolve().parents[1])  # this checkout's rag, for the local workers
        env["env_vars"]["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=cpus, runtime_env=env, include_dashboard=False, logging_level=logging.WARNING)
    elif address == "auto" or address.startswith("ray://"):
        ray.init(address=address, runtime_env=env, logging_level=logging.WARNING)
    else:
        raise RagError(f"--ray takes local, auto or ray://host:10001, not {address!r}")


def ray_items(ingestor: Ingestor, files: list[Path], report: AddReport, known: dict[str, str | None],
              address: str, workers: int | None = None) -> Iterator[tuple[str, str, object]]:
    """The ``(source, file hash, load)`` items of ``files`` for ``Ingestor.ingest``,
    prepared by Ray workers; ``known`` maps each stored source to its file hash."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise RagError(f"--ray needs Ray ({exc}): pip install -e '.[scale]'") from exc

    from .embedding import file_sha256
    from .ingest.ingestor import source_name

    todo: list[tuple[str, str, str]] = []
    for path in files:
        source = source_name(path)
        try:
            file_hash = file_sha256(path)
        except OSError as exc:
            report.failed.append((source, f"cannot read {path}: {exc.strerror or exc}"))
            continue
        if known.get(source) == file_hash:
            yield source, file_hash, _never  # unchanged: counted, never sent to a worker
        else:
            todo.append((str(path), source, file_hash))
    if not todo:
        return
    connect(address, workers)
    batches = [todo[i:i + FILES_PER_TASK] for i in range(0, len(todo), FILES_PER_TASK)]
    n = max(1, min(workers or int(ray.cluster_resources().get("CPU", 1)), len(batches)))
    actor = ray.remote(num_cpus=1)(Worker)
    pool = ActorPool([actor.remote(ingestor.embedder.spec, ingestor.chunking.size, ingestor.chunking.overlap) for _ in range(n)])
    log.info("indexing %d files with %d Ray workers", len(todo), n)
    for results in pool.map_unordered(lambda a, batch: a.process.remote(batch), batches):
        for source, file_hash, payload in results:
            yield source, file_hash, (lambda payload=payload: _loaded(payload))


def _loaded(payload: object):
    if isinstance(payload, str):
        raise DocumentError(payload)
    return payload


def _never():
    raise AssertionError("an unchanged file is never loaded")
