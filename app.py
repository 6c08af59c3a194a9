"""Start the web app: ``python app.py`` serves the index in index/ on http://127.0.0.1:7860.

If index/ holds no documents yet, data/articles is indexed first. The same app is
``rag serve [--index-dir index] [--host 127.0.0.1] [--port 7860]``; it lives in rag/web/.
``--llm-url URL --llm-model NAME`` adds written answers from an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import argparse
import logging

import rag  # noqa: F401  (first: it turns off analytics and hub access before gradio is imported)
from rag.cli import add_data_dir_option, add_llm_options, add_store_option, generator_from_args
from rag.errors import RagError
from rag.web import serve


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve the policy-article question answering app.")
    parser.add_argument("--index-dir", default="index")
    add_store_option(parser)
    add_data_dir_option(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--seed", default="data/articles", help="folder indexed first when the index is empty")
    parser.add_argument("--read-only", action="store_true", help="no uploads or deletes")
    parser.add_argument("--auth-file", default=None, help="admins who may upload and delete (see rag serve --help)")
    add_llm_options(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        generator = generator_from_args(args)
        serve(args.index_dir, args.host, args.port, seed=args.seed, read_only=args.read_only, auth_file=args.auth_file,
              generator=generator, store=args.store, data_dir=args.data_dir)
    except RagError as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
