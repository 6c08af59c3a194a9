"""Command line: rag index | add | remove | ask | status | eval | serve | feedback."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
from pathlib import Path

from .config import SEARCH_TOP_K, TOP_K
from .errors import RagError

NOT_FOUND = "未找到相关内容 (nothing relevant was found in the knowledge base)"
# control characters, line and paragraph separators, bidi controls, lone surrogates
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def shown(text: object) -> str:
    """``text`` as one safe terminal line: a newline, escape sequence or bidi control in a
    file name or title is printed escaped (``\\n``, ``\\x1b``), never raw."""
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), str(text))


def _kb(args, **kwargs):
    from .knowledge_base import KnowledgeBase

    for key in ("commit_every", "commit_seconds", "lock_timeout", "reader", "reranker"):
        if getattr(args, key, None) is not None:
            kwargs.setdefault(key, getattr(args, key))
    return KnowledgeBase(args.index_dir, getattr(args, "model", None), store=getattr(args, "store", None), **kwargs)


def cmd_index(args) -> int:
    kb = _kb(args)
    report = kb.add(args.paths, prune=getattr(args, "prune", False), progress=not args.quiet,
                    ray=args.ray, ray_workers=args.ray_workers)
    for path, reason in report.failed:
        head, sep, rest = reason.partition(": ")  # reasons often start with the path already
        print(f"skipped {shown(path)}: {shown(rest if sep and Path(head).name == Path(path).name else reason)}",
              file=sys.stderr)
    for path, twin in report.duplicates:
        print(f"skipped {shown(path)}: same text as {shown(twin)}", file=sys.stderr)
    stats = kb.stats()
    rate = report.chunks / report.seconds if report.seconds else 0.0
    print(f"{report.summary()} ({rate:.1f} chunks/s); index {kb.store.where}: "
          f"{stats['documents']} documents, {stats['chunks']} chunks")
    return 1 if report.failed and not (report.added or report.updated or report.unchanged) else 0


def cmd_remove(args) -> int:
    removed = _kb(args).remove(args.docs)
    print(f"removed {len(removed)} document(s): {', '.join(removed)}")
    return 0


def cmd_ask(args) -> int:
    generator = generator_from_args(args)
    kb = _kb(args)
    if kb.store.view() is None:  # not a silent "nothing found"
        where = f"--store {args.store}" if args.store else f"--index-dir {args.index_dir}"
        raise RagError(f"no index in {kb.store.where}; build one first: rag index PATH {where}")
    filters = {k: v for k, v in (("since", args.since), ("until", args.until), ("doc_type", args.doc_type)) if v}
    result = kb.answer(args.question, top_k=args.top_k, filters=filters or None)
    if args.json:
        out = result.to_dict()
        if generator is not None:
            from .answering import write_answer

            written = write_answer(result, generator)
            out["written"] = written.to_dict() if written else None
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    if result.text is None:
        print(NOT_FOUND)
    else:
        top = result.passages[result.span.passage]
        print(f"答案: {result.text}    (confidence {result.confidence:.2f})")
        print(f"依据: {result.evidence}")
        page = f"  (答案在第{result.page}页)" if result.page else ""
        print(f"出处: {shown(top.citation())}  {shown(top.source)}{page}")
    if generator is not None:
        _print_written(result, generator)
    if result.text is None and result.passages:
        print("最接近的段落 (closest passages, not an answer):")
    for rank, p in enumerate(result.passages, 1):
        text = " ".join(p.text.split())
        where = f" | 第{p.page}页" if p.page else ""
        where += f" | {p.heading}" if p.heading else ""
        print(f"\n[{rank}] {p.score:.3f}  {shown(p.title)} | {p.published or '-'}{where} | {shown(p.source)} "
              f"[{p.start}:{p.end}]")
        print(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
    return 0


def generator_from_args(args):
    """The LLM client the --llm-* options describe (``rag ask``, ``rag serve``, app.py), or None
    without --llm-url."""
    if not getattr(args, "llm_url", None):
        return None
    from .answering import Generator

    if not args.llm_model:
        raise RagError("--llm-url needs --llm-model NAME (the model name the endpoint serves)")
    return Generator(args.llm_url, args.llm_model, timeout=args.llm_timeout)


def _print_written(result, generator) -> None:
    """Stream the written answer, then its checks; [n] are the passages listed below."""
    from .answering import WrittenAnswer, stream_answer

    print(f"\n生成的回答 ({generator.model}; [n] = the passages below):")
    final = None
    for item in stream_answer(result, generator):
        if isinstance(item, WrittenAnswer):
            final = item
        else:
            print(item, end="", flush=True)
    if final is None:
        print("未调用生成模型：检索未找到相关内容")
        return
    if final.text:
        print()
    for line in final.check_lines():
        print(line)


def cmd_status(args) -> int:
    kb = _kb(args)
    stats = kb.stats()
    if args.json:
        stats["document_list"] = kb.documents()
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    for key, value in stats.items():
        print(f"{key:>14}: {shown(value)}")
    for doc in kb.documents():
        print(f"  {shown(doc['doc_id'])}  {doc['chunks']:>4} chunks  {shown(doc['published'] or '-'):<16}  "
              f"{shown(doc['title'])}  ({shown(doc['source'])})")
    return 0


def cmd_eval(args) -> int:
    from .evaluation import main as eval_main

    return eval_main(args)


def cmd_serve(args) -> int:
    from .web import server

    if args.add_admin:
        if not args.auth_file:
            raise RagError("--add-admin needs --auth-file FILE (where the salted hash is written)")
        import getpass

        password = getpass.getpass(f"password for {args.add_admin}: ")
        if password != getpass.getpass("again: "):
            raise RagError("the two passwords differ; nothing was written")
        server.add_admin(args.auth_file, args.add_admin, password)
        print(f"{args.add_admin} can now log in as admin with --auth-file {args.auth_file}")
        return 0
    server.serve(index_dir=args.index_dir, host=args.host, port=args.port, read_only=args.read_only,
                 auth_file=args.auth_file, generator=generator_from_args(args), store=args.store, data_dir=args.data_dir)
    return 0


def cmd_feedback(args) -> int:
    from .feedback import data_folder, export

    text = export(data_folder(args.index_dir, args.data_dir), args.format, every_vote=args.all)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def add_store_option(p: argparse.ArgumentParser) -> None:
    """``--store URI`` (for the CLI's commands and app.py)."""
    p.add_argument("--store", default=None, metavar="URI",
                   help="where the index lives: local (default: the index folder), a Milvus Lite file "
                        "ending in .db, or a Milvus server http(s)://host:port (token from $MILVUS_TOKEN)")


def add_data_dir_option(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--data-dir DIR`` (``rag serve``, ``rag feedback export`` and app.py)."""
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where the web app keeps feedback and uploaded originals (default: $RAG_DATA_DIR, "
                        "else the index folder); app replicas on a Milvus store share one")
    return p


def add_llm_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``--llm-*`` options of written answers (``rag ask``, ``rag serve`` and app.py)."""
    g = p.add_argument_group("written answers (optional; the only network use, to this address only)")
    g.add_argument("--llm-url", default=None, metavar="URL",
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (vLLM) or "
                        "http://127.0.0.1:11434/v1 (Ollama); API key from $RAG_LLM_API_KEY")
    g.add_argument("--llm-model", default=None, metavar="NAME", help="model name the endpoint serves")
    g.add_argument("--llm-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="longest wait for the connection and each piece of the reply (default 60)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Question answering over Chinese policy articles.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_index(p, model: bool = True):
        p.add_argument("--index-dir", default="index", help="index folder (default: index)")
        add_store_option(p)
        if model:
            p.add_argument("--model", default=None,
                           help="embedding model: a sentence-transformers name or local path (default: bundled e5-small)")
        return p

    for name, help_text in (("index", "index files and folders (incremental)"), ("add", "add or update files")):
        p = with_index(sub.add_parser(name, help=help_text))
        p.add_argument("paths", nargs="+", help="files (.txt .md .html .pdf .docx .doc .xlsx .csv .pptx, images) or folders")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        if name == "index":
            p.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
        p.add_argument("--commit-every", type=_positive_int, default=None, metavar="N",
                       help="commit a new index generation every N chunks (default 2000)")
        p.add_argument("--commit-seconds", type=_seconds, default=None, metavar="S",
                       help="and at least every S seconds of work, so a crash keeps what was embedded (default 60)")
        p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                       help="how long to wait for another writer of the index (default 600)")
        p.add_argument("--ray", default=None, metavar="ADDRESS",
                       help="read, chunk and embed with Ray workers: local, auto or ray://host:10001")
        p.add_argument("--ray-workers", type=_positive_int, default=None, metavar="N",
                       help="Ray workers, each with its own model (default: the cluster's CPUs)")
        p.set_defaults(func=cmd_index)

    p = with_index(sub.add_parser("remove", help="remove documents by id or source path"), model=False)
    p.add_argument("docs", nargs="+")
    p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                   help="how long to wait for another writer of the index (default 600)")
    p.set_defaults(func=cmd_remove)

    def answering(p):
        p.add_argument("--reader", default=None, choices=("model", "rules"),
                       help="who reads the passages: the trained model (default) or the rules")
        p.add_argument("--reranker", default=None, metavar="model|none|PATH",
                       help="reorder the candidates with the trained model (default), not at all, "
                            "or a local CrossEncoder folder")
        return p

    p = answering(with_index(sub.add_parser("ask", help="answer a question"), model=False))
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=TOP_K)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--since", help="only documents dated on or after this day (2026-01-01, 2026-01 or 2026)")
    p.add_argument("--until", help="only documents dated on or before this day (inclusive)")
    p.add_argument("--doc-type", "--source-type", dest="doc_type", help="only documents of this type (通知, 报告, 法律 …)")
    add_llm_options(p)
    p.set_defaults(func=cmd_ask)

    for name in ("status", "info"):
        p = with_index(sub.add_parser(name, help="documents, chunks, model, size, last update"), model=False)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_status)

    p = answering(sub.add_parser("eval", help="evaluate on a benchmark folder (passages.jsonl + questions.jsonl)"))
    p.add_argument("bench_dir")
    p.add_argument("--split", default="all", choices=("all", "heldout", "train"),
                   help="only questions whose passage the reader was not trained on (heldout), or was (train)")
    p.add_argument("--limit", type=int, default=None, help="a fixed random sample of N questions (seed 0)")
    p.add_argument("--model", default=None)
    p.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    p.add_argument("--top-k", type=int, default=SEARCH_TOP_K)
    p.add_argument("--out", default=None, help="write per-question rows and figures to this JSON file")
    p.add_argument("--cache-dir", default=None, help="where evaluation indexes are cached")
    p.set_defaults(func=cmd_eval)

    p = add_data_dir_option(with_index(sub.add_parser("serve", help="start the web app"), model=False))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    add_llm_options(p)
    p.add_argument("--read-only", action="store_true", help="no uploads or deletes, in the page or through the API")
    p.add_argument("--auth-file", default=None, metavar="FILE",
                   help="admins (user:salted hash lines) who may upload and delete after logging in; "
                        "or set RAG_ADMIN_TOKEN")
    p.add_argument("--add-admin", default=None, metavar="NAME", help="add NAME to --auth-file (asks for a password)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("feedback", help="👍/👎 feedback given in the web app")
    fsub = p.add_subparsers(dest="feedback_command", required=True)
    p = add_data_dir_option(with_index(fsub.add_parser("export", help="print the feedback (question, answer, passages, vote)"),
                                 model=False))
    p.add_argument("--format", default="jsonl", choices=("jsonl", "csv"))
    p.add_argument("--all", action="store_true", help="every vote, not only the last one on each answer")
    p.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_feedback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit: a write error we report, not a core dump
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        return args.func(args)
    except RagError as exc:
        print(f"error: {shown(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except OSError as exc:  # not one of ours: still one line, not a traceback
        print(f"error: {shown(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the index is unchanged since its last completed step", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
