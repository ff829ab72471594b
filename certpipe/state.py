"""The manifest in ``WORKDIR/.certpipe/state.json``: what each step last made.

For every step that finished, the manifest stores the SHA-256 of its
settings, of each input file and of each output file. A step is up to date
when all three still match. The manifest also caches the resolved pipeline
under a key made of the pipeline file's hash and the ``--set`` values, so an
unchanged re-run can decide "up to date" from hashes alone, without loading
YAML, JSON Schema, cryptography or sh.

This module imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

from certpipe import __version__, lazylog
from certpipe.fsutil import MAX_INPUT_BYTES, STATE_DIR, TEMP_MARK, atomic_write

log = lazylog.get_logger("certpipe.state")

STATE_VERSION = 2
STATE_FILE = "state.json"


def resolve_path(workdir: Path, value: str) -> Path:
    """Resolve a pipeline path: ``~`` expanded, a relative path taken from *workdir*."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else workdir / path


def file_sha256(path: Path) -> str | None:
    """Return the SHA-256 of the regular file *path*; None if it is missing, not a
    regular file, or larger than MAX_INPUT_BYTES.

    A FIFO or a device is never opened because reading one could block or
    never end, and a file too large to be an input is not hashed. The step
    that reads the file then reports what is wrong with it.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_INPUT_BYTES:
            return None
        with path.open("rb") as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
            return digest.hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def path_digest(path: Path) -> str | None:
    """Return the SHA-256 of a file, or of a folder's file names and contents; None if missing.

    A folder (a local CA's, or one of extra certificates) is hashed over its
    regular files only, one level deep, leaving out temporary files.
    """
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256(b"folder\0")
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if TEMP_MARK in entry.name or not entry.is_file():
            continue
        digest.update(f"{entry.name}\0{file_sha256(Path(entry.path))}\0".encode())
    return "folder:" + digest.hexdigest()


def settings_sha256(kind: str, settings: Mapping[str, Any]) -> str:
    text = json.dumps([kind, settings], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(pipeline_sha256: str, overrides: Mapping[str, str]) -> str:
    """Return the key under which a resolved pipeline is cached.

    It covers everything resolution depends on: the file's bytes, the
    ``--set`` values, the certpipe version (schema and step code) and the
    home folder that ``~`` in input paths expands to.
    """
    text = json.dumps([pipeline_sha256, sorted(overrides.items()), __version__,
                       os.path.expanduser("~")], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def binary_identity(path: str) -> list[Any] | None:
    """Return what identifies the file at *path*: its real path, device, inode, size, mtime.

    A binary replaced by an upgrade gets another inode or mtime, so a version
    recorded for the old one is not reused.
    """
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [os.path.realpath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]


# Secret values are never recorded, not even hashed: a new password in the
# same env: or file: source does not make a step run again (use --force).


class StepRecord:
    """The settings, input and output hashes of one step, from the run that last finished it.

    A plain class, not a dataclass, to keep the up-to-date path from importing
    dataclasses (and with it inspect).
    """

    def __init__(self, kind: str, settings_sha256: str, settings: dict[str, Any],
                 inputs: dict[str, str | None], outputs: dict[str, str | None],
                 checks: list[str] | None = None, finished: str = ""):
        self.kind = kind
        self.settings_sha256 = settings_sha256
        self.settings = settings
        self.inputs = inputs
        self.outputs = outputs
        self.checks = checks if checks is not None else []
        self.finished = finished

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StepRecord) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"StepRecord({self.kind!r}, finished={self.finished!r})"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StepRecord":
        return cls(
            kind=str(data["kind"]),
            settings_sha256=str(data["settings_sha256"]),
            settings=dict(data.get("settings", {})),
            inputs=dict(data["inputs"]),
            outputs=dict(data["outputs"]),
            checks=[str(c) for c in data.get("checks", [])],
            finished=str(data.get("finished", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "settings_sha256": self.settings_sha256,
                "settings": self.settings, "inputs": self.inputs, "outputs": self.outputs,
                "checks": self.checks, "finished": self.finished}


def stale_reasons(record: StepRecord | None, kind: str, settings_hash: str,
                  inputs: Iterable[str], outputs: Iterable[str], workdir: Path) -> list[str]:
    """Return why a step must run again; an empty list means it is up to date."""
    if record is None:
        return ["no earlier run recorded"]
    if record.kind != kind or record.settings_sha256 != settings_hash:
        return ["settings changed"]
    reasons = []
    inputs, outputs = list(inputs), list(outputs)
    if set(record.inputs) != set(inputs):
        reasons.append("the list of input files changed")
    for value in inputs:
        current = path_digest(resolve_path(workdir, value))
        if current is None:
            reasons.append(f"input {value} is missing")
        elif current != record.inputs.get(value):
            reasons.append(f"input {value} changed")
    if set(record.outputs) != set(outputs):
        reasons.append("the list of output files changed")
    for value in outputs:
        current = path_digest(resolve_path(workdir, value))
        if current is None:
            reasons.append(f"output {value} is missing")
        elif current != record.outputs.get(value):
            reasons.append(f"output {value} was changed since it was made")
    return reasons


class State:
    """The manifest of one work directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.path = workdir / STATE_DIR / STATE_FILE
        self.steps: dict[str, StepRecord] = {}
        self.pipeline: dict[str, Any] = {}
        # The openssl binary last used: path, version text and binary_identity().
        self.openssl: dict[str, Any] | None = None

    @classmethod
    def load(cls, workdir: Path) -> "State":
        """Read the manifest; a missing or unreadable one means every step runs."""
        state = cls(workdir)
        try:
            data = json.loads(state.path.read_text("utf-8"))
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s); every step runs and checks its files",
                        state.path, exc)
            return state
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            log.info("%s has another format version; every step runs again", state.path)
            return state
        try:
            state.steps = {name: StepRecord.from_json(entry)
                           for name, entry in data.get("steps", {}).items()}
            state.pipeline = dict(data.get("pipeline") or {})
            openssl = data.get("openssl")
            state.openssl = dict(openssl) if isinstance(openssl, dict) else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("ignoring damaged %s (%s); every step runs and checks its files",
                        state.path, exc)
            return cls(workdir)
        return state

    def known_openssl_version(self, path: str) -> str | None:
        """Return the recorded ``openssl version`` text when *path* is still the same binary."""
        entry = self.openssl or {}
        identity = binary_identity(path)
        if entry.get("path") != path or identity is None or entry.get("identity") != identity:
            return None
        version = entry.get("version")
        return version if isinstance(version, str) else None

    def remember_openssl(self, path: str, version: str) -> None:
        self.openssl = {"path": path, "version": version, "identity": binary_identity(path)}

    def openssl_summary(self) -> dict[str, str] | None:
        """Return the recorded openssl's path and version, as reports show them."""
        if not self.openssl:
            return None
        return {"path": str(self.openssl.get("path", "")),
                "version": str(self.openssl.get("version", ""))}

    def save(self) -> None:
        data = {
            "version": STATE_VERSION,
            "certpipe": __version__,
            "pipeline": self.pipeline,
            "openssl": self.openssl,
            "steps": {name: record.to_json() for name, record in self.steps.items()},
        }
        content = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        try:
            if self.path.read_bytes() == content:
                return  # unchanged: leave the file (and its time stamp) alone
        except OSError:
            pass
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.path, content, mode=0o600)

    def cached_steps(self, key: str) -> list[dict[str, Any]] | None:
        """Return the cached resolved steps when they were stored under *key*."""
        if self.pipeline.get("cache_key") != key:
            return None
        steps = self.pipeline.get("steps")
        return steps if isinstance(steps, list) else None
