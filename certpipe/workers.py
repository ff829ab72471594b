"""Run certificates in forked worker processes, ``jobs`` at a time.

Threads would share one interpreter lock, and cryptography holds it while it
parses and checks keys and PKCS#12 files (about 80 ms per certificate of the
RSA-2048 IIS flow). Measured with 40 certificates on 2 cores, two threads
took 0.72 times as long as one; forked workers do not wait for each other.
They are forked after the pipelines are loaded and the step modules imported,
so they start at once and share those pages with the parent.

Workers send ("step", label, StepReport) as each step ends, so the parent
prints whole lines as they come, and ("done", index, RunReport) at the end
of each certificate. Errors travel as :class:`CarriedError`, which keeps
the message and the exit code.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
from typing import Any, Callable

from certpipe.errors import EXIT_FAILED, EXIT_INVALID, CertpipeError

# How long the parent waits for a message before it checks that workers live.
POLL_SECONDS = 0.2
JOIN_SECONDS = 5.0

StepCallback = Callable[[Any, str], None]  # (StepReport, label)
RunOne = Callable[[int, StepCallback], Any]  # (index, on_step) -> RunReport
Skipped = Callable[[int, str], Any]  # (index, reason) -> RunReport of a certificate not run


class CarriedError(CertpipeError):
    """An error that happened in a worker process: its message and exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (CarriedError, (str(self), self.exit_code))

    @classmethod
    def of(cls, error: CertpipeError | None) -> CarriedError | None:
        return None if error is None else cls(str(error), error.exit_code)


def portable(report: Any) -> Any:
    """Make a StepReport or RunReport safe to pickle: errors become CarriedError."""
    report.error = CarriedError.of(report.error)
    for step in getattr(report, "steps", []):
        step.error = CarriedError.of(step.error)
    return report


def run_in_processes(count: int, jobs: int, run_one: RunOne, on_step: StepCallback,
                     skipped: Skipped, cancel: threading.Event, fail_fast: bool,
                     reasons: tuple[str, str, str]) -> list[Any]:
    """Run items ``0 .. count-1`` with ``run_one`` in *jobs* forked workers; return their reports.

    *reasons* are the messages for items not started because of an
    interruption, of ``--fail-fast``, and of a worker that died. After a
    failure with *fail_fast*, no further item starts. Ctrl-C or SIGTERM
    stops the workers' current steps (each reports it) and starts no more.
    """
    interrupted_reason, fail_fast_reason, died_reason = reasons
    context = multiprocessing.get_context("fork")
    tasks = context.Queue()
    results = context.Queue()
    workers = [context.Process(target=_work, args=(tasks, results, run_one, cancel),
                               name=f"certpipe-worker-{number}", daemon=True)
               for number in range(min(jobs, count))]
    for worker in workers:
        worker.start()
    reports: dict[int, Any] = {}
    started = 0
    stopping = ""
    for _ in workers:
        tasks.put(started)
        started += 1
    while len(reports) < started:
        try:
            message = results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not any(worker.is_alive() for worker in workers):
                break  # a worker died without reporting: its items are marked below
            continue
        except KeyboardInterrupt:
            stopping = interrupted_reason
            _signal_all(workers, signal.SIGTERM)
            continue
        kind, key, payload = message
        if kind == "step":
            on_step(payload, key)
            continue
        reports[key] = payload if payload is not None else skipped(key, interrupted_reason)
        if fail_fast and reports[key].exit_code in (EXIT_FAILED, EXIT_INVALID):
            stopping = stopping or fail_fast_reason
        if not stopping and started < count:
            tasks.put(started)
            started += 1
    for _ in workers:
        tasks.put(None)
    for worker in workers:
        worker.join(JOIN_SECONDS)
        if worker.is_alive():
            worker.kill()
    ordered = []
    for index in range(count):
        if index in reports:
            ordered.append(reports[index])
        elif index < started:
            ordered.append(skipped(index, died_reason))
        else:
            ordered.append(skipped(index, stopping or interrupted_reason))
    return ordered


def _signal_all(workers: list[Any], signum: int) -> None:
    for worker in workers:
        if worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signum)


def _work(tasks: Any, results: Any, run_one: RunOne, cancel: threading.Event) -> None:
    """Worker process: run items from *tasks* until it gets None."""

    def interrupt(signum: int, frame: Any) -> None:
        if cancel.is_set():
            return  # the first signal already stops this worker
        cancel.set()
        raise KeyboardInterrupt

    # Ctrl-C reaches the whole process group; the parent also sends SIGTERM.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    while True:
        try:
            index = tasks.get()
        except KeyboardInterrupt:
            continue
        if index is None:
            break
        report = None
        try:
            report = run_one(index, lambda step, label: results.put(
                ("step", label, portable(step))))
        except KeyboardInterrupt:
            pass  # reported by the parent as interrupted
        results.put(("done", index, portable(report) if report is not None else None))
    results.close()
    results.join_thread()
