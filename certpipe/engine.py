"""Run a pipeline's steps in order, skipping those that are up to date.

A step runs when the manifest (see certpipe.state) has no record of it, or
when its settings, an input or an output changed since. A step that re-makes
a file changes the input hash of every step that reads it, so exactly the
steps downstream of a change run again. Private keys get extra care: one is
never replaced without ``--rekey`` or ``--force STEP``, and a missing key
whose CSR or certificate still exists stops the run.

The work directory is locked for the whole run, and the manifest is saved
after every step, so a run killed at any point loses at most the step it was
in. This module imports no third-party package: the fast path
(:func:`run_from_cache`) decides an unchanged re-run from hashes alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from certpipe import lazylog
from certpipe.errors import (
    EXIT_INTERRUPTED, CertpipeError, CheckFailed, OpenSSLNotUsable, Pending, PipelineError,
    StepFailed,
)
from certpipe.fsutil import STATE_DIR, TEMP_MARK, escape_reason, remove_stale_temps
from certpipe.lock import WorkdirLock, create_workdir
from certpipe.state import (
    State, StepRecord, file_sha256, path_digest, resolve_path, settings_sha256,
    stale_reasons,
)

if TYPE_CHECKING:
    from certpipe.openssl import OpenSSL
    from certpipe.pipeline.model import Pipeline
    from certpipe.steps.base import Step, StepContext, StepResult

log = lazylog.get_logger("certpipe.engine")

# Step statuses, as status lines and reports show them.
MADE = "made"
KEPT = "kept"
UP_TO_DATE = "up to date"
PENDING = "pending"
FAILED = "failed"
INTERRUPTED = "interrupted"
NOT_RUN = "not run"


# The report classes are plain classes rather than dataclasses: importing
# dataclasses imports inspect, about 5 ms of an up-to-date run's 70 ms.


class Check:
    """One check of a step and its result: passed, failed, or recorded (by an earlier run)."""

    def __init__(self, description: str, result: str):
        self.description = description
        self.result = result

    def __repr__(self) -> str:
        return f"Check({self.description!r}, {self.result!r})"


class StepReport:
    """The outcome of one step in a run."""

    def __init__(self, name: str, kind: str, status: str, duration: float = 0.0, *,
                 reasons: list[str] | None = None, made: list[str] | None = None,
                 kept: list[str] | None = None,
                 artifacts: dict[str, str | None] | None = None,
                 checks: list[Check] | None = None, notes: list[str] | None = None,
                 message: str = "", openssl_calls: int = 0,
                 error: CertpipeError | None = None):
        self.name = name
        self.kind = kind
        self.status = status
        self.duration = duration
        self.reasons = reasons if reasons is not None else []  # why the step ran
        self.made = made if made is not None else []
        self.kept = kept if kept is not None else []
        # Output file -> SHA-256, a folder output listed file by file.
        self.artifacts = artifacts if artifacts is not None else {}
        self.checks = checks if checks is not None else []
        self.notes = notes if notes is not None else []
        self.message = message
        self.openssl_calls = openssl_calls
        # The error that stopped the run here, when it is not a plain step failure.
        self.error = error

    def __repr__(self) -> str:
        return f"StepReport({self.name!r}, {self.kind!r}, {self.status!r})"

    @property
    def result(self) -> StepResult:
        """The step's outcome in the form steps return it: files, notes and passed checks."""
        from certpipe.steps.base import StepResult

        return StepResult(made=list(self.made), kept=list(self.kept), notes=list(self.notes),
                          checks=[c.description for c in self.checks if c.result == "passed"])


class RunReport:
    """The outcome of a run of one pipeline for one certificate."""

    def __init__(self, pipeline_name: str, pipeline_path: str, pipeline_sha256: str,
                 workdir: Path, *, started: dt.datetime | None = None, duration: float = 0.0,
                 steps: list[StepReport] | None = None, exit_code: int = 0,
                 error: CertpipeError | None = None, openssl: dict[str, str] | None = None,
                 from_cache: bool = False, certificate: str | None = None, label: str = "",
                 not_started: str = ""):
        self.pipeline_name = pipeline_name
        self.pipeline_path = pipeline_path
        self.pipeline_sha256 = pipeline_sha256
        self.workdir = workdir
        self.started = started or dt.datetime.now(dt.timezone.utc)
        self.duration = duration
        self.steps = steps if steps is not None else []
        self.exit_code = exit_code
        self.error = error
        self.openssl = openssl
        self.from_cache = from_cache  # decided from the manifest alone, pipeline not loaded
        # The certificate's name, for a pipeline with certificates:.
        self.certificate = certificate
        # Prefix of status lines: the certificate, after the pipeline file when several.
        self.label = label
        self.not_started = not_started  # why the certificate did not run (--fail-fast, Ctrl-C)

    def __repr__(self) -> str:
        return f"RunReport({self.pipeline_name!r}, {self.label!r}, exit_code={self.exit_code})"

    @property
    def interrupted(self) -> bool:
        return self.exit_code == EXIT_INTERRUPTED


class RunOptions:
    """How to run: forced steps, re-keying, lock wait, and what several certificates share."""

    def __init__(self, force: frozenset[str] = frozenset(), rekey: bool = False,
                 lock_wait: float = 0.0, cache_key: str | None = None, *,
                 cancel: threading.Event | None = None, idle_work: IdleWork | None = None):
        self.force = force
        self.rekey = rekey
        self.lock_wait = lock_wait
        self.cache_key = cache_key
        # Set when a worker process is interrupted: its certificate stops before
        # the next step, and a step whose openssl call was stopped counts as interrupted.
        self.cancel = cancel if cancel is not None else threading.Event()
        # Work done while openssl runs, when certificates run one at a time.
        self.idle_work = idle_work


class IdleWork:
    """Work that later steps need, done while the run waits for openssl.

    A run spends most of its time waiting for openssl processes. The first
    long call (usually key generation) leaves room to import cryptography and
    the certificate checks and to read the system trust store, work that
    would otherwise delay the calls. Only one thread may use it.
    """

    def __init__(self, tasks: list[Callable[[], object]]):
        self._tasks = deque(tasks)

    def run_while(self, busy: Callable[[], bool]) -> None:
        """Run tasks, one at a time, while *busy* returns True.

        Ctrl-C and SIGTERM are held back until the task at hand ends. A
        KeyboardInterrupt raised inside an import, or inside a finalizer that
        runs during one, can be lost, and the run then waited forever for the
        openssl call that the interrupt should have stopped.
        """
        if not self._tasks:
            return
        with _signals_held() as held:
            while self._tasks and not held and busy():
                task = self._tasks.popleft()
                try:
                    task()
                except Exception as exc:  # noqa: BLE001 - the step that needs it reports it
                    log.debug("preparing ahead failed, left to the step: %r", exc)

    def run_all(self) -> None:
        self.run_while(lambda: True)


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Record SIGINT and SIGTERM instead of acting on them, then raise KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    held: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda number, frame: held.append(number))
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        raise KeyboardInterrupt


# Modules the step kinds import when they run; all of them import cryptography.
RUNTIME_MODULES = (
    "cryptography.x509", "certpipe.artifacts.intake", "certpipe.artifacts.keys",
    "certpipe.artifacts.checks", "certpipe.artifacts.chain", "certpipe.artifacts.trust",
)


def idle_tasks(pipelines: Iterable[Pipeline]) -> list[Callable[[], object]]:
    """Return the imports and reads that running *pipelines* will need, cheapest first."""
    tasks: list[Callable[[], object]] = [
        lambda name=name: importlib.import_module(name) for name in RUNTIME_MODULES
    ]
    if any(getattr(step, "trust_anchors", None) == "system"
           for pipeline in pipelines for step in pipeline.steps):
        tasks.append(lambda: importlib.import_module("certpipe.artifacts.trust").system_anchors())
    return tasks


class OpenSSLProvider:
    """Locate openssl and learn its version once per run, for every certificate of the run.

    The version comes from the manifest when it recorded the same binary
    (see :meth:`State.known_openssl_version`); only otherwise is ``openssl
    version`` run. Each certificate gets its own :class:`OpenSSL` object, so
    that its call count is its own.
    """

    def __init__(self, explicit: str | None = None):
        self.explicit = explicit
        self.probes = 0  # how many times 'openssl version' ran
        self._lock = threading.Lock()
        self._found: tuple[str, Any, str] | None = None  # path, version, where the path came from
        self._error: CertpipeError | None = None

    def get(self, state: State | None = None) -> OpenSSL:
        from certpipe.openssl import OpenSSL, is_supported, locate, parse_version

        with self._lock:
            if self._error is not None:
                raise self._error  # an unusable openssl is reported by every certificate
            if self._found is None:
                try:
                    path, source = locate(self.explicit)
                    known = state.known_openssl_version(path) if state is not None else None
                    version = parse_version(known) if known else None
                    if version is None or not is_supported(version):
                        self.probes += 1
                        version = OpenSSL.probe_version(path, source)
                except CertpipeError as exc:
                    self._error = exc
                    raise
                self._found = (path, version, source)
                log.info("using openssl %s", OpenSSL(path, version, source).describe())
        path, version, source = self._found
        return OpenSSL(path, version, source)


StepCallback = Callable[[StepReport], None]


def _no_callback(report: StepReport) -> None:
    return None


# --- the graph of files between steps ---------------------------------------------------


def input_values(step: Step) -> list[str]:
    return [value for _, value in step.inputs()]


def output_values(step: Step) -> list[str]:
    return list(step.outputs().values())


def downstream_files(steps: list[Step], index: int, value: str, workdir: Path,
                     state: State) -> list[str]:
    """Return existing files that later steps made from, or got for, the file *value*.

    A step depends on *value* when it reads it, or a file made by such a step.
    When the manifest has a record of the step, the record's inputs decide
    instead, so that a file made from another key at the same path does not
    count. The files returned are such steps' output files, and the inputs
    they name in ``key_bound_inputs`` (a CA's reply), which certify the key.
    """
    tainted = {value}
    found: list[str] = []
    for step in steps[index + 1:]:
        record = state.steps.get(step.name)
        used = set(record.inputs) if record is not None else set(input_values(step))
        if not tainted.intersection(used) or not tainted.intersection(input_values(step)):
            continue
        bound = {step_value for key_path, step_value in step.inputs()
                 if key_path[0] in step.key_bound_inputs}
        for candidate in [*output_values(step), *sorted(bound)]:
            tainted.add(candidate)
            path = resolve_path(workdir, candidate)
            if path.is_file() and candidate not in found:
                found.append(candidate)
    return found


def missing_key_problem(steps: list[Step], index: int, workdir: Path,
                        state: State) -> str | None:
    """Explain why a missing key of ``steps[index]`` must not be made again, or return None."""
    step = steps[index]
    for setting in step.key_outputs:
        value = step.outputs()[setting]
        if resolve_path(workdir, value).exists():
            continue
        made_from = downstream_files(steps, index, value, workdir, state)
        if made_from:
            return (
                f"the private key {value} is missing, but {', '.join(made_from)} "
                f"{'was' if len(made_from) == 1 else 'were'} made from it or issued for it. "
                f"certpipe does not replace a missing key on its own: a new key would make "
                f"them useless, and a certificate the CA issued for the old key could never "
                f"be used again. Restore {value} from a backup and run again; or, to start "
                f"over with a new key (and send the new CSR to the CA), run with --force "
                f"{step.name} or --rekey"
            )
    return None


# --- deciding ----------------------------------------------------------------------------


class Decision:
    """The decision to run a step or not, with the reasons."""

    def __init__(self, run: bool, reasons: list[str]):
        self.run = run
        self.reasons = reasons


def decide(step: Step, state: State, workdir: Path, options: RunOptions) -> Decision:
    if step.name in options.force:
        return Decision(True, [f"--force {step.name}"])
    if options.rekey and step.key_outputs:
        return Decision(True, ["--rekey"])
    settings_hash = settings_sha256(step.kind, step.settings())
    reasons = stale_reasons(state.steps.get(step.name), step.kind, settings_hash,
                            input_values(step), output_values(step), workdir)
    return Decision(bool(reasons), reasons)


def record_for(step: Step, workdir: Path, inputs: dict[str, str | None],
               checks: list[str]) -> StepRecord:
    return StepRecord(
        kind=step.kind,
        settings_sha256=settings_sha256(step.kind, step.settings()),
        settings=step.settings(),
        inputs=inputs,
        outputs={value: path_digest(resolve_path(workdir, value))
                 for value in output_values(step)},
        checks=checks,
        finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def output_folders(workdir: Path, outputs: Iterable[str]) -> list[Path]:
    """Return the folders where outputs and their temporary files are written."""
    folders = [workdir, workdir / STATE_DIR]
    for value in outputs:
        path = resolve_path(workdir, value)
        folders.append(path.parent)
        try:
            if path.is_dir():
                folders.append(path)
        except OSError:
            pass  # a name too long and the like: the step that writes it reports it
    return folders


def check_state_dir(workdir: Path) -> None:
    reason = escape_reason(workdir, STATE_DIR)
    if reason:
        raise PipelineError(f"{workdir / STATE_DIR} {reason}")


def cache_entry(pipeline: Pipeline, key: str) -> dict[str, Any]:
    """Return what the fast path needs to know about *pipeline*, stored under *key*."""
    return {
        "cache_key": key,
        "certificate": pipeline.certificate,
        "name": pipeline.name,
        "path": str(pipeline.path),
        "sha256": pipeline.sha256,
        "steps": [
            {"name": step.name, "kind": step.kind,
             "settings_sha256": settings_sha256(step.kind, step.settings()),
             "inputs": input_values(step), "outputs": output_values(step)}
            for step in pipeline.steps
        ],
    }


# --- running -----------------------------------------------------------------------------


def check_forced_names(pipeline: Pipeline, forced: Iterable[str]) -> None:
    unknown = sorted(set(forced) - {step.name for step in pipeline.steps})
    if unknown:
        names = ", ".join(step.name for step in pipeline.steps)
        raise PipelineError(f"--force {unknown[0]}: no step of that name (steps: {names})")


def run_pipeline(pipeline: Pipeline, ctx: StepContext, options: RunOptions | None = None,
                 on_step: StepCallback = _no_callback) -> RunReport:
    """Run *pipeline* in ``ctx.workdir`` under the work directory's lock.

    When ``ctx.openssl_factory`` is an :class:`OpenSSLProvider`, the version
    recorded in the manifest for the same binary is used.
    """
    options = options or RunOptions()
    check_forced_names(pipeline, options.force)
    report = RunReport(pipeline.name, str(pipeline.path), pipeline.sha256, ctx.workdir,
                       certificate=pipeline.certificate)
    started = time.monotonic()
    create_workdir(ctx.workdir)
    check_state_dir(ctx.workdir)
    with WorkdirLock(ctx.workdir, options.lock_wait):
        outputs = [value for step in pipeline.steps for value in output_values(step)]
        for leftover in remove_stale_temps(output_folders(ctx.workdir, outputs)):
            log.info("removed %s, left by an interrupted run", leftover)
        state = State.load(ctx.workdir)
        with _openssl_for(ctx, state, options):
            try:
                _run_steps(pipeline, ctx, options, state, report, on_step)
                # Cache the pipeline only after a clean run, so that a failed or
                # invalid run leaves the manifest as it was.
                if options.cache_key and report.exit_code == 0:
                    state.pipeline = cache_entry(pipeline, options.cache_key)
            finally:
                if ctx._openssl is not None:
                    state.remember_openssl(ctx.openssl.path, str(ctx.openssl.version))
                report.openssl = state.openssl_summary()
                state.save()
    report.duration = time.monotonic() - started
    return report


@contextlib.contextmanager
def _openssl_for(ctx: StepContext, state: State, options: RunOptions) -> Iterator[None]:
    """Let the context's openssl use the manifest's version record and the run's idle work."""
    factory = ctx.openssl_factory

    def make() -> OpenSSL:
        openssl = factory.get(state) if isinstance(factory, OpenSSLProvider) else factory()
        openssl.while_waiting = waiting
        return openssl

    def waiting(process: Any) -> None:
        if options.idle_work is not None:
            options.idle_work.run_while(process.is_alive)

    ctx.openssl_factory = make
    try:
        yield
    finally:
        ctx.openssl_factory = factory


def _run_steps(pipeline: Pipeline, ctx: StepContext, options: RunOptions, state: State,
               report: RunReport, on_step: StepCallback) -> None:
    steps = pipeline.steps
    for index, step in enumerate(steps):
        if options.cancel.is_set():
            report.exit_code = EXIT_INTERRUPTED
            report.error = CertpipeError("interrupted")
            _skip_rest(steps[index:], "not run: the run was interrupted", report, on_step)
            return
        decision = decide(step, state, ctx.workdir, options)
        if not decision.run:
            step_report = up_to_date_report(step.name, step.kind, output_values(step),
                                            state.steps[step.name],
                                            ctx.workdir)
            log.info("step %s is up to date", step.name)
            report.steps.append(step_report)
            on_step(step_report)
            continue
        log.info("step %s runs: %s", step.name, "; ".join(decision.reasons))
        step_report = _run_one(steps, index, ctx, options, state, decision)
        report.steps.append(step_report)
        on_step(step_report)
        if step_report.status in (MADE, KEPT):
            continue
        report.error = _error_of(step_report)
        report.exit_code = report.error.exit_code if step_report.status != INTERRUPTED \
            else EXIT_INTERRUPTED
        _skip_rest(steps[index + 1:], f"not run: step '{step.name}' is {step_report.status}",
                   report, on_step)
        return


def _skip_rest(steps: list[Step], message: str, report: RunReport,
               on_step: StepCallback) -> None:
    for later in steps:
        skipped = StepReport(later.name, later.kind, NOT_RUN, message=message)
        report.steps.append(skipped)
        on_step(skipped)


def _error_of(step_report: StepReport) -> CertpipeError:
    if step_report.error is not None:
        return step_report.error
    if step_report.status == PENDING:
        return Pending(step_report.message)
    if step_report.status == INTERRUPTED:
        return CertpipeError(f"interrupted in step '{step_report.name}'")
    return StepFailed(step_report.name, step_report.message)


def _run_one(steps: list[Step], index: int, ctx: StepContext, options: RunOptions,
             state: State, decision: Decision) -> StepReport:
    step = steps[index]
    step_report = StepReport(step.name, step.kind, FAILED, reasons=decision.reasons)
    rekey = step.name in options.force or options.rekey
    ctx.rekey = rekey and bool(step.key_outputs)
    calls_before = ctx._openssl.calls if ctx._openssl is not None else 0
    started = time.monotonic()
    try:
        if not ctx.rekey:
            problem = missing_key_problem(steps, index, ctx.workdir, state)
            if problem:
                raise CheckFailed(problem)
        inputs = {value: path_digest(resolve_path(ctx.workdir, value))
                  for value in input_values(step)}
        result = step.run(ctx)
    except Pending as exc:
        step_report.status = PENDING
        step_report.message = str(exc)
    except OpenSSLNotUsable as exc:
        # Not the step's fault: no openssl call can run, a usage problem (exit 2).
        step_report.message = str(exc)
        step_report.error = exc
    except CertpipeError as exc:
        if options.cancel.is_set():
            # openssl was stopped because the run is being interrupted.
            step_report.status = INTERRUPTED
            step_report.message = "interrupted; files already made are kept"
        else:
            step_report.message = exc.detail if isinstance(exc, StepFailed) else str(exc)
            step_report.checks.append(Check(step_report.message, "failed"))
    except OSError as exc:
        # A file the step reads or writes: too long a name, no space, no permission.
        where = f"{exc.filename}: " if exc.filename else ""
        step_report.message = f"{where}{exc.strerror or exc}"
        step_report.checks.append(Check(step_report.message, "failed"))
    except KeyboardInterrupt:
        step_report.status = INTERRUPTED
        step_report.message = "interrupted; files already made are kept"
    else:
        step_report.status = MADE if result.made else KEPT
        step_report.made, step_report.kept = result.made, result.kept
        step_report.notes = result.notes + _replaced_key_notes(step, decision)
        step_report.checks = [Check(text, "passed") for text in result.checks]
        record = record_for(step, ctx.workdir, inputs, result.checks)
        state.steps[step.name] = record
        step_report.artifacts = artifact_digests(ctx.workdir, output_values(step))
        state.save()
    finally:
        ctx.rekey = options.rekey
        step_report.duration = time.monotonic() - started
        if ctx._openssl is not None:
            step_report.openssl_calls = ctx._openssl.calls - calls_before
    return step_report


def _replaced_key_notes(step: Step, decision: Decision) -> list[str]:
    """Point out a key file that changed by hand since the last run."""
    notes = []
    for setting in step.key_outputs:
        value = step.outputs()[setting]
        if f"output {value} was changed since it was made" in decision.reasons:
            notes.append(f"the key {value} is not the one recorded by the last run (edited or "
                         f"replaced by hand); it passed the key checks and is used, so the "
                         f"steps that use it run again")
    return notes


def up_to_date_report(name: str, kind: str, outputs: list[str], record: StepRecord,
                      workdir: Path) -> StepReport:
    return StepReport(
        name, kind, UP_TO_DATE,
        kept=list(outputs),
        artifacts=artifact_digests(workdir, outputs),
        checks=[Check("outputs, inputs and settings match the SHA-256 in the manifest",
                      "passed")]
               + [Check(text, "recorded") for text in record.checks],
    )


# --- the fast path -----------------------------------------------------------------------


def run_from_cache(workdir: Path, key: str, options: RunOptions,
                   on_step: StepCallback = _no_callback) -> RunReport | None:
    """Report every step up to date from the manifest alone, or return None.

    None means the full path must run: no manifest, a pipeline or ``--set``
    change, a forced step, or any file that differs from its recorded hash.
    Nothing is written except that temporary files of an interrupted run are
    removed, and no openssl, YAML or certificate code is loaded.
    """
    if options.force or options.rekey or not (workdir / STATE_DIR).is_dir():
        return None
    started = time.monotonic()
    if escape_reason(workdir, STATE_DIR):
        return None
    with WorkdirLock(workdir, options.lock_wait):
        state = State.load(workdir)
        cached = state.cached_steps(key)
        if not cached:
            return None
        reports = []
        for entry in cached:
            record = state.steps.get(entry["name"])
            if any(escape_reason(workdir, value) for value in entry["outputs"]):
                return None  # the full path reports it with the file's line and column
            if stale_reasons(record, entry["kind"], entry["settings_sha256"], entry["inputs"],
                             entry["outputs"], workdir):
                return None
            assert record is not None
            reports.append(up_to_date_report(entry["name"], entry["kind"], entry["outputs"],
                                             record, workdir))
        outputs = [value for entry in cached for value in entry["outputs"]]
        for leftover in remove_stale_temps(output_folders(workdir, outputs)):
            log.info("removed %s, left by an interrupted run", leftover)
    report = RunReport(str(state.pipeline.get("name", "")), str(state.pipeline.get("path", "")),
                       str(state.pipeline.get("sha256", "")), workdir, from_cache=True,
                       openssl=state.openssl_summary(),
                       certificate=state.pipeline.get("certificate"))
    for step_report in reports:
        report.steps.append(step_report)
        on_step(step_report)
    report.duration = time.monotonic() - started
    log.info("every step is up to date (decided from %s)", state.path)
    return report


def artifact_digests(workdir: Path, values: Iterable[str]) -> dict[str, str | None]:
    """Return the SHA-256 of each output file, listing a folder output file by file."""
    found: dict[str, str | None] = {}
    for value in values:
        path = resolve_path(workdir, value)
        if not path.is_dir():
            found[value] = file_sha256(path)
            continue
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.is_file() and TEMP_MARK not in entry.name:
                found[os.path.join(value, entry.name)] = file_sha256(Path(entry.path))
    return found
