"""One run per work directory at a time: an ``fcntl`` lock on ``.certpipe/lock``.

The kernel drops the lock when its holder exits, however it exits, so a
killed run never leaves a stale lock behind. POSIX only, like the rest of
certpipe.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from certpipe.errors import CertpipeError, UsageError
from certpipe.fsutil import STATE_DIR

POLL_SECONDS = 0.1


class WorkdirBusy(CertpipeError):
    """Another certpipe run holds the work directory's lock (exit 1)."""


class WorkdirUnusable(UsageError):
    """The work directory cannot be created or written (exit 2)."""


def workdir_unusable(workdir: Path, exc: OSError) -> WorkdirUnusable:
    return WorkdirUnusable(
        f"cannot use the work directory {workdir}: creating {exc.filename or workdir} "
        f"failed: {exc.strerror}; certpipe writes its outputs, manifest and lock there, so "
        f"give a --workdir that you can write to"
    )


def create_workdir(workdir: Path) -> None:
    """Create *workdir* and its parents, raising WorkdirUnusable when that fails."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise workdir_unusable(workdir, exc) from None


class WorkdirLock:
    """Hold an exclusive lock on a work directory while a run changes it."""

    def __init__(self, workdir: Path, wait: float = 0.0):
        self.path = workdir / STATE_DIR / "lock"
        self.wait = wait
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise workdir_unusable(self.path.parent.parent, exc) from None
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    waited = f" after waiting {self.wait:g} s" if self.wait else ""
                    raise WorkdirBusy(
                        f"another certpipe run{holder} is using {self.path.parent.parent}"
                        f"{waited}; wait for it to finish, or pass --wait-lock SECONDS to "
                        f"wait for it"
                    ) from None
                time.sleep(POLL_SECONDS)
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""
