"""Run a pipeline's steps in order, skipping those that are up to date.

The manifest in ``WORKDIR/.certpipe/state.json`` records, per step, a hash
of its settings and input files and the hashes of its outputs. A step runs
again when any of those differ; a step whose reply is missing stops the run
as pending.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from certpipe.errors import CertpipeError, CheckFailed, OpenSSLNotUsable, Pending, StepFailed
from certpipe.fsutil import atomic_write, remove_stale_temps
from certpipe.pipeline.model import Pipeline
from certpipe.steps.base import Step, StepContext, StepResult

log = logging.getLogger("certpipe.engine")

STATE_VERSION = 1


@dataclass
class StepReport:
    name: str
    kind: str
    status: str  # made, up to date, pending, failed
    duration: float = 0.0
    result: StepResult = field(default_factory=StepResult)
    message: str = ""


@dataclass
class RunReport:
    pipeline: Pipeline
    steps: list[StepReport] = field(default_factory=list)
    exit_code: int = 0
    error: CertpipeError | None = None


def file_sha256(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
            return digest.hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


class State:
    """The manifest of what each step last made."""

    def __init__(self, workdir: Path):
        self.path = workdir / ".certpipe" / "state.json"
        self.steps: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
            if data.get("version") == STATE_VERSION and isinstance(data.get("steps"), dict):
                self.steps = data["steps"]
        except (FileNotFoundError, ValueError, AttributeError):
            pass  # no or unreadable manifest: every step runs and checks its files

    def save(self) -> None:
        data = {"version": STATE_VERSION, "steps": self.steps}
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))


def step_fingerprint(step: Step, ctx: StepContext) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([step.kind, step.settings(), step.outputs()], sort_keys=True,
                             default=str).encode())
    for key_path, value in step.inputs():
        path = ctx.path(value)
        digest.update(json.dumps([list(key_path), value, file_sha256(path)]).encode())
    return digest.hexdigest()


def output_hashes(step: Step, ctx: StepContext) -> dict[str, str | None]:
    return {value: file_sha256(ctx.path(value)) for value in step.outputs().values()
            if not ctx.path(value).is_dir()}


def is_up_to_date(step: Step, ctx: StepContext, state: State, fingerprint: str) -> bool:
    entry = state.steps.get(step.name)
    if not entry or entry.get("fingerprint") != fingerprint:
        return False
    current = output_hashes(step, ctx)
    return all(h is not None for h in current.values()) and current == entry.get("outputs")


def _as_step_failure(name: str, exc: CertpipeError | OSError) -> StepFailed:
    if isinstance(exc, StepFailed):
        return exc
    if isinstance(exc, OSError):
        # A file the step reads or writes: too long a name, no space, no permission.
        where = f"{exc.filename}: " if exc.filename else ""
        return StepFailed(name, f"{where}{exc.strerror or exc}")
    failure = StepFailed(name, str(exc))
    failure.exit_code = exc.exit_code  # exit 2 for a missing or unusable openssl
    return failure


def run_pipeline(pipeline: Pipeline, ctx: StepContext,
                 on_step: Callable[[StepReport], None] = lambda report: None) -> RunReport:
    report = RunReport(pipeline)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    for leftover in remove_stale_temps(ctx.workdir):
        log.info("removed %s, left by an interrupted run", leftover)
    state = State(ctx.workdir)
    for step in pipeline.steps:
        fingerprint = step_fingerprint(step, ctx)
        if is_up_to_date(step, ctx, state, fingerprint):
            step_report = StepReport(step.name, step.kind, "up to date")
            step_report.result.kept = list(step.outputs().values())
            report.steps.append(step_report)
            on_step(step_report)
            continue
        started = time.monotonic()
        try:
            result = step.run(ctx)
        except Pending as exc:
            step_report = StepReport(step.name, step.kind, "pending",
                                     time.monotonic() - started, message=str(exc))
            report.steps.append(step_report)
            on_step(step_report)
            report.exit_code = exc.exit_code
            report.error = exc
            state.save()
            return report
        except OpenSSLNotUsable as exc:
            # Not the step's fault: the run cannot start any openssl call (exit 2).
            step_report = StepReport(step.name, step.kind, "failed",
                                     time.monotonic() - started, message=str(exc))
            report.steps.append(step_report)
            on_step(step_report)
            state.save()
            report.exit_code = exc.exit_code
            report.error = exc
            return report
        except (CertpipeError, OSError) as exc:
            failure = _as_step_failure(step.name, exc)
            step_report = StepReport(step.name, step.kind, "failed",
                                     time.monotonic() - started, message=failure.detail)
            report.steps.append(step_report)
            on_step(step_report)
            state.save()
            report.exit_code = failure.exit_code
            report.error = failure
            return report
        step_report = StepReport(step.name, step.kind, "made" if result.made else "kept",
                                 time.monotonic() - started, result)
        state.steps[step.name] = {
            # Inputs are hashed after the run, so a key the step just made counts.
            "fingerprint": step_fingerprint(step, ctx),
            "outputs": output_hashes(step, ctx),
        }
        state.save()
        report.steps.append(step_report)
        on_step(step_report)
    return report


__all__ = ["run_pipeline", "RunReport", "StepReport", "State", "CheckFailed"]
