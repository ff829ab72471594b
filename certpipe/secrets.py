"""Password references from a pipeline, read only at the moment they are needed.

A pipeline names where a secret lives (``env:NAME``, ``file:PATH`` or ``none``);
only that name ever appears in messages, logs, plans and reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from certpipe.errors import CertpipeError


class SecretError(CertpipeError):
    """A secret cannot be read from the place the pipeline names."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from, such as ``env:PFX_PASSWORD``."""

    source: str
    base_dir: Path | None = field(default=None, compare=False)

    @property
    def is_none(self) -> bool:
        return self.source == "none"

    def describe(self) -> str:
        return self.source

    def path(self) -> Path:
        raw = Path(self.source[len("file:"):]).expanduser()
        if not raw.is_absolute() and self.base_dir is not None:
            return self.base_dir / raw
        return raw

    def read(self) -> "Secret":
        """Read the secret's bytes, raising SecretError naming the source on any problem."""
        if self.is_none:
            return Secret(self, b"")
        if self.source.startswith("env:"):
            name = self.source[len("env:"):]
            value = os.environb.get(name.encode()) if os.supports_bytes_environ else None
            if value is None:
                text = os.environ.get(name)
                value = None if text is None else os.fsencode(text)
            if value is None:
                raise SecretError(
                    f"environment variable {name} is not set; export it with the password "
                    f"(or write 'none' in the pipeline for no password)"
                )
            if not value:
                raise SecretError(
                    f"environment variable {name} is empty; set the password in it, "
                    f"or write 'none' in the pipeline for no password"
                )
            return Secret(self, value)
        if self.source.startswith("file:"):
            return Secret(self, _read_secret_file(self.path(), self.source))
        raise SecretError(f"unknown secret source {self.source!r}; use env:NAME, file:PATH or none")


def _read_secret_file(path: Path, source: str) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SecretError(f"password file {path} ({source}) not found") from None
    except OSError as exc:
        raise SecretError(f"cannot read password file {path} ({source}): {exc.strerror}") from None
    # Drop exactly one trailing LF or CR LF, as an editor on Windows or Unix adds it.
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if b"\n" in raw or b"\r" in raw:
        raise SecretError(
            f"password file {path} has more than one line; it must hold only the password"
        )
    if not raw:
        raise SecretError(
            f"password file {path} is empty; put the password in it, or write 'none' "
            f"in the pipeline for no password"
        )
    return raw


@dataclass(frozen=True)
class Secret:
    ref: SecretRef
    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Secret({self.ref.source!r}, value=<hidden>)"

    def check_passable(self) -> None:
        """Reject values openssl cannot receive through an environment variable."""
        if b"\x00" in self.value:
            raise SecretError(f"the secret from {self.ref.source} contains a NUL byte")
