"""Password references from a pipeline, read only at the moment they are needed.

A pipeline names where a secret lives (``env:NAME``, ``file:PATH``,
``prompt`` or ``none``); only that name ever appears in messages, logs,
plans and reports.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from certpipe.errors import CertpipeError
from certpipe.fsutil import FileRejected, read_limited

# A password file contains one line, so anything larger is the wrong file.
MAX_PASSWORD_FILE_BYTES = 64 * 1024


class SecretError(CertpipeError):
    """A secret cannot be read from the place the pipeline names."""


@dataclass(frozen=True)
class SecretRef:
    """Reference to the source of a secret, such as ``env:PFX_PASSWORD``."""

    source: str
    base_dir: Path | None = field(default=None, compare=False)

    @property
    def is_none(self) -> bool:
        return self.source == "none"

    @property
    def is_prompt(self) -> bool:
        return self.source == "prompt"

    def describe(self) -> str:
        return self.source

    @property
    def env_name(self) -> str | None:
        """The environment variable of an ``env:NAME`` source, else None."""
        if self.source.startswith("env:"):
            return self.source[len("env:"):]
        return None

    def path(self) -> Path:
        raw = Path(self.source[len("file:"):]).expanduser()
        if not raw.is_absolute() and self.base_dir is not None:
            return self.base_dir / raw
        return raw

    def read(self, label: str = "password", confirm: bool = False) -> "Secret":
        """Read the secret's bytes, raising SecretError naming the source on any problem.

        *label* names the secret in the prompt for the ``prompt`` source;
        *confirm* prompts twice, for a new password that a typo would spoil.
        """
        if self.is_none:
            return Secret(self, b"")
        if self.is_prompt:
            return Secret(self, _prompt(label, confirm))
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
        raise SecretError(
            f"unknown secret source {self.source!r}; use env:NAME, file:PATH, prompt or none"
        )


def _prompt(label: str, confirm: bool) -> bytes:
    if not sys.stdin.isatty():
        raise SecretError(
            f"the {label} source is 'prompt', but standard input is not a terminal; in "
            f"scripts and CI use env:NAME or file:PATH instead"
        )
    try:
        first = getpass.getpass(f"Enter {label}: ", stream=sys.stderr)
        if confirm:
            again = getpass.getpass(f"Repeat {label}: ", stream=sys.stderr)
            if again != first:
                raise SecretError(f"the two entries of the {label} differ; run again")
    except EOFError:
        raise SecretError(f"no {label} entered (end of input)") from None
    if not first:
        raise SecretError(
            f"the {label} entered is empty; write 'none' in the pipeline for no password"
        )
    return first.encode("utf-8", "surrogateescape")


def _read_secret_file(path: Path, source: str) -> bytes:
    try:
        raw = read_limited(path, MAX_PASSWORD_FILE_BYTES)
    except FileNotFoundError:
        raise SecretError(f"password file {path} ({source}) not found") from None
    except IsADirectoryError:
        raise SecretError(f"password file {path} ({source}) is a folder") from None
    except FileRejected as exc:
        raise SecretError(f"password file {path} ({source}): {exc.reason}") from None
    except OSError as exc:
        raise SecretError(f"cannot read password file {path} ({source}): {exc.strerror}") from None
    raw = _decode_text_encoding(raw, path)
    # Drop exactly one trailing LF or CR LF, as an editor on Windows or Unix adds it.
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r") and b"\r" not in raw[:-1] and b"\n" not in raw:
        raise SecretError(
            f"password file {path} ends with a lone carriage return (CR); certpipe does not "
            f"guess whether it belongs to the password. Save the file with LF or CR LF line "
            f"endings, or without a line ending"
        )
    if b"\n" in raw or b"\r" in raw:
        raise SecretError(
            f"password file {path} has more than one line; it must hold only the password "
            f"(certpipe does not silently use the first line, as openssl's file: does)"
        )
    if not raw:
        raise SecretError(
            f"password file {path} is empty; put the password in it, or write 'none' "
            f"in the pipeline for no password"
        )
    return raw


def _decode_text_encoding(raw: bytes, path: Path) -> bytes:
    """Return the file's text as UTF-8, undoing a byte order mark.

    Notepad before Windows 10 1903 saved UTF-8 with a byte order mark, and
    PowerShell 5's ``>`` writes UTF-16LE with one. Without this step the
    mark would become part of the password.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(
                f"password file {path} starts with a UTF-16 byte order mark but is not valid "
                f"UTF-16; save it as UTF-8"
            ) from None
    if b"\x00" in raw:
        raise SecretError(
            f"password file {path} contains NUL bytes (UTF-16 without a byte order mark?); "
            f"save it as UTF-8"
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


# Masking rule: secrets are replaced only in the output of programs (openssl,
# a CA command), never in command lines that certpipe renders, because those
# are built from paths and names and never contain a secret. A secret shorter
# than MIN_MASKED_SECRET_BYTES is left unmasked: replacing every occurrence
# of one to three bytes would garble paths and words and, through the gaps,
# reveal the secret. openssl does not print passwords, so the only risk left
# is a CA command that prints a very short password it was given.
MIN_MASKED_SECRET_BYTES = 4
MASK = b"<hidden>"


def mask_secrets(data: bytes, secrets: Iterable[bytes]) -> bytes:
    """Replace each secret of at least MIN_MASKED_SECRET_BYTES in program output *data*."""
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_MASKED_SECRET_BYTES:
            data = data.replace(secret, MASK)
    return data
