"""The token-signing secret: from CRM_AUTH_SECRET, or from a random file kept beside the data.

No secret lives in the source. A local platform (`make run`, or a service bound to loopback
with nothing configured) makes a random one on first use in `<data dir>/auth-secret` (or
CRM_AUTH_SECRET_FILE), and every later process and the token command read that same file.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from crm_runtime import logs

if TYPE_CHECKING:
    from crm_runtime.settings import PlatformSettings

log = logs.get(__name__)
FILE_NAME = "auth-secret"


def ensure_secret_file(path: Path) -> str:
    """Reads the secret at `path`, first creating it (random, mode 0600) if it is missing.

    Creation is atomic and never overwrites: the secret is written to a private temporary
    file and hard-linked into place, so processes starting together all end up reading the
    one that won, and nobody ever reads a half-written file.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48) + "\n")
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, path)
                log.info("auth.secret_file_created", path=str(path))
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    return read_secret_file(path)


def read_secret_file(path: Path) -> str:
    """The secret in `path`, without surrounding whitespace (files often end with a newline)."""
    path = Path(path)
    if path.stat().st_mode & 0o077:
        log.warning("auth.secret_file_readable_by_others", path=str(path), hint="chmod 600 it")
    return path.read_text(encoding="utf-8").strip()


def secret_file_path(platform: PlatformSettings) -> Path:
    return Path(platform.auth_secret_file or Path(platform.data_dir) / FILE_NAME)


def auth_secret(platform: PlatformSettings, create: bool = False) -> str | None:
    """CRM_AUTH_SECRET if set; else the secret file's content (made first when `create`);
    None when neither exists."""
    if platform.auth_secret is not None:
        return platform.auth_secret.get_secret_value()
    path = secret_file_path(platform)
    if create:
        return ensure_secret_file(path)
    return read_secret_file(path) if path.exists() else None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name may resolve to a reachable address
