"""Command line: rag index | add | remove | ask | status | eval | serve | feedback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import RagError

NOT_FOUND = "未找到相关内容 (nothing relevant was found in the knowledge base)"


def _kb(args, **kwargs):
    from .knowledge_base import KnowledgeBase

    for key in ("commit_every", "lock_timeout"):
        if getattr(args, key, None) is not None:
            kwargs.setdefault(key, getattr(args, key))
    return KnowledgeBase(args.index_dir, getattr(args, "model", None), **kwargs)


def cmd_index(args) -> int:
    kb = _kb(args)
    report = kb.add(args.paths, prune=getattr(args, "prune", False), progress=not args.quiet)
    for path, reason in report.failed:
        head, sep, rest = reason.partition(": ")  # reasons often start with the path already
        print(f"skipped {path}: {rest if sep and Path(head).name == Path(path).name else reason}", file=sys.stderr)
    for path, twin in report.duplicates:
        print(f"skipped {path}: same text as {twin}", file=sys.stderr)
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
        print(f"出处: {top.title}  {top.published or ''}  {top.source}")
    for rank, p in enumerate(result.passages, 1):
        text = " ".join(p.text.split())
        print(f"\n[{rank}] {p.score:.3f}  {p.title} | {p.published or '-'} | {p.source} [{p.start}:{p.end}]")
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
        print(f"{key:>14}: {value}")
    for doc in kb.documents():
        print(f"  {doc['doc_id']}  {doc['chunks']:>4} chunks  {doc['published'] or '-':<16}  {doc['title']}  ({doc['source']})")
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
                 auth_file=args.auth_file)
    return 0


def cmd_feedback(args) -> int:
    from .feedback import export

    text = export(args.index_dir, args.format, every_vote=args.all)
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
    p.add_argument("--read-only", action="store_true", help="no uploads or deletes, in the page or through the API")
    p.add_argument("--auth-file", default=None, metavar="FILE",
                   help="admins (user:salted hash lines) who may upload and delete after logging in; "
                        "or set RAG_ADMIN_TOKEN")
    p.add_argument("--add-admin", default=None, metavar="NAME", help="add NAME to --auth-file (asks for a password)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("feedback", help="👍/👎 feedback given in the web app")
    fsub = p.add_subparsers(dest="feedback_command", required=True)
    p = with_index(fsub.add_parser("export", help="print the feedback (question, answer, passages, vote)"), model=False)
    p.add_argument("--format", default="jsonl", choices=("jsonl", "csv"))
    p.add_argument("--all", action="store_true", help="every vote, not only the last one on each answer")
    p.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_feedback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted; the index is unchanged since its last completed step", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
