"""Serving the app: who may write, and the launch settings (local only, nothing from outside).

Reading is open to everyone who reaches the port. Uploads and deletes need either nothing
(the default, for a single user on 127.0.0.1), or an admin login: a token from the
environment variable ``RAG_ADMIN_TOKEN``, or users in an ``--auth-file`` of salted PBKDF2
hashes (``rag serve --add-admin NAME --auth-file FILE`` writes one). ``--read-only`` turns
writing off altogether. Serving on a non-loopback address with neither prints a warning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RagError

log = logging.getLogger(__name__)

TOKEN_ENV = "RAG_ADMIN_TOKEN"
HASH_NAME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$ITERATIONS$SALT$HASH`` (salt and hash in base64)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{HASH_NAME}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        name, iterations, salt, digest = stored.split("$")
        if name != HASH_NAME:
            return False
        again = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, base64.b64decode(digest))


def read_auth_file(path: str | os.PathLike) -> dict[str, str]:
    """``user:hash`` lines (blank lines and ``#`` comments ignored)."""
    users: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RagError(f"cannot read the auth file {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user or not stored.startswith(HASH_NAME + "$"):
            raise RagError(f"{path} line {number} is not 'user:{HASH_NAME}$...'; "
                           "write entries with rag serve --add-admin NAME --auth-file FILE")
        users[user] = stored
    if not users:
        raise RagError(f"{path} names no admin; add one with rag serve --add-admin NAME --auth-file {path}")
    return users


def add_admin(path: str | os.PathLike, user: str, password: str) -> None:
    """Add or replace ``user`` in the auth file (created with owner-only permissions)."""
    if not user or ":" in user or not password:
        raise RagError("the admin name must be non-empty without ':' and the password non-empty")
    path = Path(path)
    users = read_auth_file(path) if path.exists() and path.stat().st_size else {}
    users[user] = hash_password(password)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text("".join(f"{u}:{h}\n" for u, h in users.items()), encoding="utf-8")


@dataclass(frozen=True)
class Access:
    """Who may upload and delete: anyone (default), nobody (``read_only``), or a logged-in admin."""

    read_only: bool = False
    token: str | None = field(default=None, repr=False)
    users: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, read_only: bool = False, auth_file: str | os.PathLike | None = None) -> Access:
        token = os.environ.get(TOKEN_ENV) or None
        return cls(read_only, token, read_auth_file(auth_file) if auth_file else {})

    @property
    def login_required(self) -> bool:
        return bool(self.token or self.users)

    @property
    def needs_user(self) -> bool:
        return bool(self.users)

    def check(self, user: str, password: str) -> bool:
        if self.token and hmac.compare_digest(password.encode("utf-8"), self.token.encode("utf-8")):
            return True
        stored = self.users.get(user)
        return stored is not None and verify_password(password, stored)

    def refusal(self, is_admin: bool) -> str | None:
        """Why a write is refused (in Chinese), or None when it is allowed."""
        if self.read_only:
            return "只读模式：不能上传或删除文档。"
        if self.login_required and not is_admin:
            return "上传和删除需要管理员登录：请先在本页登录。"
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, access: Access) -> str | None:
    """The warning for serving writable pages to other machines, or None."""
    if is_loopback(host) or access.read_only or access.login_required:
        return None
    return (f"warning: serving on {host}, which other machines can reach, and anyone who reaches it can "
            f"upload and delete documents. Use --read-only, or set {TOKEN_ENV} or --auth-file for an admin login.")


def launch(app, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, quiet: bool = False) -> str:
    """Serve ``app`` locally: no share link, system fonts, queue shared by all sessions.
    Returns the local URL (when ``block`` is False the call returns at once)."""
    from .messages import gradio_i18n
    from .theme import css, theme

    app.queue(default_concurrency_limit=8)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=True,
        theme=theme(),
        css=css(),
        i18n=gradio_i18n(),
        footer_links=["api"],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        max_file_size="100mb",
    )
    return app.local_url


def serve(index_dir: str | os.PathLike = "index", host: str = "127.0.0.1", port: int = 7860, *,
          seed: str | os.PathLike | None = None, block: bool = True, read_only: bool = False,
          auth_file: str | os.PathLike | None = None, generator=None, store: str | None = None,
          data_dir: str | os.PathLike | None = None) -> str:
    """Open (or create) the index in ``index_dir`` and serve the app on ``host:port``.
    With ``seed``, an index that holds no documents yet is first built from that folder;
    ``generator`` (:class:`rag.answering.Generator`) is kept on the knowledge base for
    written answers; ``store`` is where the index lives (see :func:`rag.store.open_store`);
    ``data_dir`` where feedback and uploaded originals go (default ``$RAG_DATA_DIR``, else
    ``index_dir``): with a Milvus store and a shared ``data_dir`` a replica keeps nothing."""
    from ..knowledge_base import KnowledgeBase
    from .layout import build_app

    access = Access.from_options(read_only, auth_file)
    warning = exposure_warning(host, access)
    if warning:
        print(warning, file=sys.stderr)
    kb = KnowledgeBase(index_dir, generator=generator, store=store)
    kb.warm_up(background=True)  # the first upload and question need not wait for the models
    if seed is not None and not kb.documents():
        log.warning("%s holds no documents yet; indexing %s first", index_dir, seed)
        report = kb.add([seed], progress=True)
        for path, reason in report.failed:
            log.warning("skipped %s: %s", path, reason)
    return launch(build_app(kb, access, data_dir), host, port, block=block)
