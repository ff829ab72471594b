"""The interface every step kind implements, and the context a step runs in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from certpipe.errors import PipelineError
from certpipe.secrets import Secret, SecretRef

InputRef = tuple[tuple[str | int, ...], str]


@dataclass
class StepContext:
    """What a running step may use: the work directory, openssl, and run options."""

    workdir: Path
    openssl_factory: Any  # callable returning certpipe.openssl.OpenSSL, made on first use
    timeout: float
    rekey: bool = False
    fixed_now: dt.datetime | None = None  # tests set a clock; otherwise the real time
    _openssl: Any = None

    @property
    def now(self) -> dt.datetime:
        return self.fixed_now or dt.datetime.now(dt.timezone.utc)

    @property
    def openssl(self) -> Any:
        if self._openssl is None:
            self._openssl = self.openssl_factory()
        return self._openssl

    def path(self, value: str) -> Path:
        """Resolve a pipeline path: relative paths are relative to the work directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.workdir / path

    def state_dir(self) -> Path:
        folder = self.workdir / ".certpipe"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def secret(self, ref: SecretRef | None) -> Secret | None:
        if ref is None:
            return None
        return SecretRef(ref.source, self.workdir).read()


@dataclass
class StepResult:
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


class Step:
    """A step kind. Subclasses are dataclasses built from the step's validated settings."""

    kind: ClassVar[str]
    name: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Step":
        raise NotImplementedError

    def inputs(self) -> list[InputRef]:
        """Files the step reads, as (key path within the step, path) pairs."""
        return []

    def outputs(self) -> dict[str, str]:
        """Files (or folders) the step writes, by setting name."""
        return {}

    def settings(self) -> dict[str, Any]:
        """Settings that change the step's outputs, for the up-to-date decision."""
        raise NotImplementedError

    def run(self, ctx: StepContext) -> StepResult:
        raise NotImplementedError


def secret_ref(settings: dict[str, Any], key: str) -> SecretRef | None:
    value = settings.get(key)
    return None if value is None else SecretRef(value)


def reject_control_chars(value: str, what: str) -> None:
    bad = [c for c in value if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise PipelineError(f"{what} contains a control character ({bad[0]!r}); remove it")
