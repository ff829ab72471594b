"""Atomic file writes: every artifact appears complete or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

TEMP_MARK = ".certpipe-tmp-"
KEY_MODE = 0o600
FILE_MODE = 0o644


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{secrets.token_hex(6)}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_private(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    # The umask may have removed bits; it can never have added any, but set
    # the mode exactly so that a 0644 output is readable as documented.
    os.fchmod(fd, mode)
    return fd


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write *data* to a temporary file beside *path*, fsync it, and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    fd = _create_private(temp, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = FILE_MODE) -> Iterator[Path]:
    """Yield a temporary path for a program to write; rename it onto *path* on success.

    The temporary file is created first with *mode*, so a key that openssl
    writes into it is never readable by others, whatever the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    os.close(_create_private(temp, mode))
    try:
        yield temp
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files that an interrupted run left under *folder*."""
    removed = []
    if not folder.is_dir():
        return removed
    for candidate in folder.rglob(f"*{TEMP_MARK}*"):
        if candidate.is_file() and not candidate.is_symlink():
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed
