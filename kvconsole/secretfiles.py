"""Files that hold deployment secrets (master keys, the backup key, token-signing keys).

They are created with mode 0600, replaced atomically, and re-read by every process when they
change, so a rotation done by one process (or the CLI) is followed by all of them.
"""

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .errors import Conflict


def stamp(path: str | Path) -> tuple[int, int, int]:
    """Changes whenever the file is replaced (a rotation renames a new file into place).

    Every vault endpoint request asks (the token-signing keyring may have been rotated by
    another process); os.stat costs a quarter of Path.stat.
    """
    status = os.stat(path)
    return status.st_ino, status.st_mtime_ns, status.st_size


# Set while `kv key-files create` runs: an operator's deliberate creation of missing files.
_creating_key_files: ContextVar[bool] = ContextVar("creating_key_files", default=False)


@contextmanager
def creating_key_files() -> Iterator[None]:
    """Within this block, missing key files are created even in production."""
    token = _creating_key_files.set(True)
    try:
        yield
    finally:
        _creating_key_files.reset(token)


def create_development_file(path: Path, content: str) -> None:
    """Create `path` with `content` if this deployment may generate its own key files (or
    an operator is creating them); a file another process created first is kept."""
    if not (settings.KVCONSOLE_GENERATE_KEY_FILES or _creating_key_files.get()):
        raise ImproperlyConfigured(
            f"{path} does not exist. Production deployments must be given their key files "
            "(`manage.py kv key-files create` creates those that are missing)."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def write_secret_file(path: Path, content: str) -> None:
    """Replace `path` atomically: a crash leaves either the old file or the new one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def exclusive(path: Path, busy: str) -> Iterator[None]:
    """Hold a lock beside `path` for a rotation of it; a second rotation is refused with
    `busy` rather than left to interleave its writes with the first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(f"{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(busy) from None
        yield
    finally:
        os.close(descriptor)
