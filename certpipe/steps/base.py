"""The interface every step kind implements, and the context a step runs in."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Union

from certpipe.errors import PipelineError
from certpipe.fsutil import FILE_MODE, atomic_output, atomic_write, empty_output
from certpipe.secrets import Secret, SecretRef
from certpipe.state import resolve_path

InputRef = tuple[tuple[str | int, ...], str]


@dataclass
class StepContext:
    """Context of a running step: the work directory, openssl and the run options."""

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
        return resolve_path(self.workdir, value)

    def state_dir(self) -> Path:
        folder = self.workdir / ".certpipe"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def secret(self, ref: SecretRef | None) -> Secret | None:
        if ref is None:
            return None
        return SecretRef(ref.source, self.workdir).read()


@dataclass(frozen=True)
class Command:
    """One openssl call of a step, as ``plan``, ``script`` and ``run`` see it.

    *args* follow ``openssl`` and name secrets only as ``env:CERTPIPE_PASSIN``
    or ``env:CERTPIPE_PASSOUT``; *passin* and *passout* name the sources of
    those values. *output* is the path in *args* that the call writes; ``run``
    swaps it for a temporary file and renames that into place. The call is
    skipped when every path in *unless_exists* existed before the step began.
    """

    args: tuple[str, ...]
    output: str | None = None
    output_mode: int = FILE_MODE
    passin: SecretRef | None = None
    passout: SecretRef | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    unless_exists: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ConfigFile:
    """A file a step writes before its openssl calls, such as an ``openssl req`` config.

    *text* is None when the content depends on an input read at run time.
    """

    path: str
    text: str | None
    mode: int = 0o600
    unless_exists: tuple[str, ...] = ()
    note: str = ""


Action = Union[Command, ConfigFile]


@dataclass
class StepResult:
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


class Step:
    """A step kind. Subclasses are dataclasses built from the step's validated settings."""

    kind: ClassVar[str]
    # Output setting names whose files are private keys: never replaced
    # silently, and a deleted one stops the run while files made from it exist.
    key_outputs: ClassVar[tuple[str, ...]] = ()
    # Input setting names whose files certify a key made earlier (a CA's
    # reply); while one exists, a missing key is not made again.
    key_bound_inputs: ClassVar[tuple[str, ...]] = ()
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

    def secret_refs(self) -> list[SecretRef]:
        """Return every secret source in the step's settings, nested ones included."""
        found: list[SecretRef] = []
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            _collect_secret_refs(getattr(self, item.name), found)
        return found

    def with_pipeline_secrets(self, env_names: frozenset[str]) -> "Step":
        """Return a copy that carries the names of the environment variables the pipeline reads secrets from.

        Steps that start programs other than openssl override this to keep
        those variables out of the program's environment.
        """
        return self

    def commands(self, paths: Mapping[str, str]) -> list[Action]:
        """Return the files and openssl calls the step makes, for the paths in *paths*.

        *paths* maps each input and output setting name (``key``, ``out``) and
        the step's documented helper files to concrete paths.
        """
        return []


def execute(ctx: StepContext, step: str, actions: list[Action],
            check: Callable[[Command, Path], None] | None = None) -> list[Any]:
    """Run *actions* in order and return the openssl outcomes.

    Each config file and each command output is written atomically. *check*
    is called with a command's output under its temporary name, before the
    rename, so a file that fails a check never replaces the previous one.
    """
    outcomes = []
    # Conditions are decided before the first action, so a file that an
    # earlier action makes does not skip a later one.
    skipped = [bool(a.unless_exists) and all(Path(p).exists() for p in a.unless_exists)
               for a in actions]
    for action, skip in zip(actions, skipped):
        if skip:
            continue
        if isinstance(action, ConfigFile):
            if action.text is None:
                raise ValueError(f"{action.path}: content unknown at run time")
            atomic_write(Path(action.path), action.text.encode("utf-8"), mode=action.mode)
            continue
        passin = ctx.secret(action.passin)
        passout = ctx.secret(action.passout)
        if action.output is None:
            outcomes.append(ctx.openssl.run(list(action.args), step=step, passin=passin,
                                            passout=passout, timeout=ctx.timeout,
                                            extra_env=action.extra_env or None))
            continue
        target = Path(action.output)
        with atomic_output(target, action.output_mode) as temp:
            args = [str(temp) if arg == action.output else arg for arg in action.args]
            outcomes.append(ctx.openssl.run(args, step=step, passin=passin, passout=passout,
                                            timeout=ctx.timeout,
                                            extra_env=action.extra_env or None))
            if temp.stat().st_size == 0:
                raise empty_output(target)  # before a check reports the temporary name
            if check is not None:
                check(action, temp)
    return outcomes


def _collect_secret_refs(value: Any, found: list[SecretRef]) -> None:
    if isinstance(value, SecretRef):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _collect_secret_refs(item, found)


def secret_ref(settings: dict[str, Any], key: str) -> SecretRef | None:
    value = settings.get(key)
    return None if value is None else SecretRef(value)


def reject_control_chars(value: str, what: str) -> None:
    bad = [c for c in value if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise PipelineError(f"{what} contains a control character ({bad[0]!r}); remove it")
