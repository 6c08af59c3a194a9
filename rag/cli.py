"""Command line: rag index | add | remove | ask | status | eval | serve."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
from pathlib import Path

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

    for key in ("commit_every", "commit_seconds", "lock_timeout"):
        if getattr(args, key, None) is not None:
            kwargs.setdefault(key, getattr(args, key))
    return KnowledgeBase(args.index_dir, getattr(args, "model", None), **kwargs)


def cmd_index(args) -> int:
    kb = _kb(args)
    report = kb.add(args.paths, prune=getattr(args, "prune", False), progress=not args.quiet)
    for path, reason in report.failed:
        head, sep, rest = reason.partition(": ")  # reasons often start with the path already
        print(f"skipped {shown(path)}: {shown(rest if sep and Path(head).name == Path(path).name else reason)}",
              file=sys.stderr)
    for path, twin in report.duplicates:
        print(f"skipped {shown(path)}: same text as {shown(twin)}", file=sys.stderr)
    stats = kb.stats()
    rate = report.chunks / report.seconds if report.seconds else 0.0
    print(f"{report.summary()} ({rate:.1f} chunks/s); index {args.index_dir}: "
          f"{stats['documents']} documents, {stats['chunks']} chunks")
    return 1 if report.failed and not (report.added or report.updated or report.unchanged) else 0


def cmd_remove(args) -> int:
    removed = _kb(args).remove(args.docs)
    print(f"removed {len(removed)} document(s): {', '.join(removed)}")
    return 0


def cmd_ask(args) -> int:
    from .store import MANIFEST

    kb = _kb(args)
    if not (Path(args.index_dir) / MANIFEST).is_file():  # not a silent "nothing found"
        raise RagError(f"no index in {args.index_dir}; build one first: rag index PATH --index-dir {args.index_dir}")
    result = kb.answer(args.question, top_k=args.top_k)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0
    if result.text is None:
        print(NOT_FOUND)
        if result.passages:
            print("最接近的段落 (closest passages, not an answer):")
    else:
        top = result.passages[result.span.passage]
        print(f"答案: {result.text}    (confidence {result.confidence:.2f})")
        print(f"依据: {result.evidence}")
        print(f"出处: {shown(top.title)}  {top.published or ''}  {shown(top.source)}")
    for rank, p in enumerate(result.passages, 1):
        text = " ".join(p.text.split())
        print(f"\n[{rank}] {p.score:.3f}  {shown(p.title)} | {p.published or '-'} | {shown(p.source)} [{p.start}:{p.end}]")
        print(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
    return 0


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
    from .webapp import serve

    serve(index_dir=args.index_dir, host=args.host, port=args.port)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Question answering over Chinese policy articles.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_index(p, model: bool = True):
        p.add_argument("--index-dir", default="index", help="index folder (default: index)")
        if model:
            p.add_argument("--model", default=None,
                           help="embedding model: a sentence-transformers name or local path (default: bundled e5-small)")
        return p

    for name, help_text in (("index", "index files and folders (incremental)"), ("add", "add or update files")):
        p = with_index(sub.add_parser(name, help=help_text))
        p.add_argument("paths", nargs="+", help=".txt .md .html .pdf .docx files or folders")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        if name == "index":
            p.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
        p.add_argument("--commit-every", type=_positive_int, default=None, metavar="N",
                       help="commit a new index generation every N chunks (default 2000)")
        p.add_argument("--commit-seconds", type=_seconds, default=None, metavar="S",
                       help="and at least every S seconds of work, so a crash keeps what was embedded (default 60)")
        p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                       help="how long to wait for another writer of the index (default 600)")
        p.set_defaults(func=cmd_index)

    p = with_index(sub.add_parser("remove", help="remove documents by id or source path"), model=False)
    p.add_argument("docs", nargs="+")
    p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                   help="how long to wait for another writer of the index (default 600)")
    p.set_defaults(func=cmd_remove)

    p = with_index(sub.add_parser("ask", help="answer a question"), model=False)
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_ask)

    for name in ("status", "info"):
        p = with_index(sub.add_parser(name, help="documents, chunks, model, size, last update"), model=False)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_status)

    p = sub.add_parser("eval", help="evaluate on a benchmark folder (passages.jsonl + questions.jsonl)")
    p.add_argument("bench_dir")
    p.add_argument("--limit", type=int, default=None, help="a fixed random sample of N questions (seed 0)")
    p.add_argument("--model", default=None)
    p.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--out", default=None, help="write per-question rows and figures to this JSON file")
    p.add_argument("--cache-dir", default=None, help="where evaluation indexes are cached")
    p.set_defaults(func=cmd_eval)

    p = with_index(sub.add_parser("serve", help="start the web app"), model=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=cmd_serve)
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
