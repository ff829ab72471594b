"""Atomic file writes and work-directory confinement.

Every artifact is written to a temporary file in its own folder, flushed with
fsync and renamed into place, so a run killed at any moment leaves each file
either as it was or complete. This module imports only the standard library:
the up-to-date fast path uses it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

from certpipe.errors import CertpipeError

TEMP_MARK = ".certpipe-tmp-"
KEY_MODE = 0o600
FILE_MODE = 0o644
STATE_DIR = ".certpipe"
# Largest file that certpipe reads as certificate material or a reply.
MAX_INPUT_BYTES = 10_000_000


class EmptyOutput(CertpipeError):
    """A program exited successfully but wrote nothing to its output file."""


def empty_output(path: Path) -> EmptyOutput:
    return EmptyOutput(f"the program exited without error but wrote nothing for {path}; "
                       f"{path} was left as it was")


def blocked_folder_reason(folder: Path) -> str | None:
    """Return why *folder* can never be created because a part of its path is a file, or None."""
    current = folder
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    if os.path.lexists(current) and not current.is_dir():
        return f"{current} is a file, not a folder"
    return None


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.urandom(6).hex()}")


def is_temp_path(path: Path) -> bool:
    return TEMP_MARK in path.name


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


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE, *,
                 create_folders: bool = True) -> None:
    """Write *data* to a temporary file beside *path*, fsync it, and rename it into place.

    With *create_folders* false, a missing folder raises FileNotFoundError.
    """
    if create_folders:
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
    writes into it is never readable by others, whatever the umask. An output
    left empty raises EmptyOutput and *path* stays as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    os.close(_create_private(temp, mode))
    try:
        yield temp
        fd = os.open(temp, os.O_RDONLY)
        try:
            if os.fstat(fd).st_size == 0:
                raise empty_output(path)
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


def remove_stale_temps(folders: Iterable[Path]) -> list[Path]:
    """Delete temporary files that an interrupted run left directly in *folders*.

    Only the folders that a pipeline writes to are searched, never the whole
    work directory, which may be a large checkout. Call it only while holding
    the work directory's lock, or it could delete another run's temporary file.
    """
    removed = []
    for folder in dict.fromkeys(folders):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if TEMP_MARK in entry.name and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def escape_reason(workdir: Path, value: str) -> str | None:
    """Return why the output *value* would land outside *workdir* through a symlink, or None.

    The lexical check (no '..', not absolute) runs when the pipeline is
    loaded. This one resolves the symlinks that exist now, against the real
    path of the work directory. A missing part of the path is fine: atomic
    writes create folders, never symlinks.
    """
    real_workdir = os.path.realpath(workdir)
    target = os.path.realpath(os.path.join(real_workdir, value))
    if os.path.commonpath([real_workdir, target]) == real_workdir:
        return None
    current = Path(workdir)
    for part in Path(value).parts:
        current = current / part
        if current.is_symlink():
            return (f"leads outside the work directory through the symlink {current} -> "
                    f"{os.readlink(current)}; outputs must stay inside {real_workdir}")
    return f"resolves to {target}, outside the work directory {real_workdir}"


class FileRejected(CertpipeError):
    """A user-named file is not a regular file, or is larger than the caller's limit.

    ``reason`` is the message without the path, for callers that word their
    own error around it.
    """

    def __init__(self, path: Path, reason: str, too_large: bool = False):
        self.path = path
        self.reason = reason
        self.too_large = too_large
        super().__init__(f"{path}: {reason}")


def describe_file_type(mode: int) -> str:
    """Return the name of a non-regular file type, as ``ls -l`` distinguishes them."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular_file(path: Path, limit: int) -> os.stat_result:
    """Stat *path* (following symlinks) and raise FileRejected unless it is a regular file
    of at most *limit* bytes. OSError, such as FileNotFoundError, passes through.
    """
    info = os.stat(path)
    _check_stat(path, info, limit)
    return info


def _check_stat(path: Path, info: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected(path, f"is {describe_file_type(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise FileRejected(path, f"{info.st_size} bytes is too large (the limit is {limit} bytes)",
                           too_large=True)


def read_limited(path: Path, limit: int) -> bytes:
    """Read the regular file *path*, raising FileRejected when it is anything else or
    larger than *limit* bytes.

    The type and size are checked with stat before the file is opened, so a
    FIFO is never opened (which would block until a writer comes) and a
    device is never read. The file is opened with O_NONBLOCK and checked again
    with fstat, because it may have been replaced in between, and at most
    *limit* + 1 bytes are read, because it may grow. A folder raises
    IsADirectoryError and a missing file FileNotFoundError, like open().
    """
    check_regular_file(path, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_stat(path, os.fstat(fd), limit)
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise FileRejected(path, f"too large: it grew past the limit of {limit} bytes while "
                                 f"being read", too_large=True)
    return data
