"""Start the web app: ``python app.py`` serves the index in index/ on http://127.0.0.1:7860.

If index/ holds no documents yet, data/articles is indexed first. The same app is
``rag serve [--index-dir index] [--host 127.0.0.1] [--port 7860]``; it lives in rag/web/.
"""

from __future__ import annotations

import argparse
import logging

import rag  # noqa: F401  (first: it turns off analytics and hub access before gradio is imported)
from rag.errors import RagError
from rag.web import serve


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve the policy-article question answering app.")
    parser.add_argument("--index-dir", default="index")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--seed", default="data/articles", help="folder indexed first when the index is empty")
    parser.add_argument("--read-only", action="store_true", help="no uploads or deletes")
    parser.add_argument("--auth-file", default=None, help="admins who may upload and delete (see rag serve --help)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        serve(args.index_dir, args.host, args.port, seed=args.seed, read_only=args.read_only, auth_file=args.auth_file)
    except RagError as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
