"""``certpipe run``: run a pipeline's steps, skipping those that are up to date.

An unchanged re-run is decided from the manifest's hashes before the
pipeline is even loaded, so it imports neither jsonschema, cryptography nor
sh. Any difference falls back to the full path, which loads and validates
the pipeline and runs what changed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

from certpipe.errors import CertpipeError, UsageError
from certpipe.report_targets import ReportPathError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="pipeline YAML file")
    add_pipeline_options(parser)
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="write a JSON report of the run to FILE (schema: "
                             "certpipe/report.schema.json in the package)")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="write a JUnit XML file with one test case per step to FILE")
    parser.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                        help="when another run is using the work directory, wait up to "
                             "SECONDS for it (default: 0, fail at once)")


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that ``run`` and ``plan`` share."""
    parser.add_argument("--workdir", type=Path, default=Path("."),
                        help="folder for every file the pipeline makes (default: current folder)")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        metavar="NAME=VALUE", help="override a pipeline variable (repeatable)")
    parser.add_argument("--rekey", action="store_true",
                        help="make new private keys; each old key is kept as "
                             "KEY.replaced-TIMESTAMP")
    parser.add_argument("--force", action="append", default=[], metavar="STEP",
                        help="run STEP even when it is up to date (repeatable); a forced "
                             "private_key step makes a new key, keeping the old one as a backup")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        help="seconds each openssl call may take before it is stopped "
                             "(default: the pipeline's 'timeout', else 300)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range; give more than 0 and at most 86400 seconds")
    return value


def raw_overrides(pairs: list[str]) -> dict[str, str] | None:
    """Return ``--set`` values as parse_assignments would, or None when one is malformed."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            return None
        result[name] = value
    return result


def workdir_of(args: argparse.Namespace) -> Path:
    from certpipe.fsutil import blocked_folder_reason

    workdir = args.workdir.expanduser()
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} exists and is not a folder; give a folder")
    reason = blocked_folder_reason(workdir)
    if reason:
        raise UsageError(f"--workdir {workdir} cannot be created: {reason}; give a folder")
    return workdir


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a CI job cancelled) like Ctrl-C while the run is going on."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(args: argparse.Namespace) -> int:
    from certpipe.engine import RunOptions, RunReport, run_from_cache
    from certpipe.report import StatusPrinter
    from certpipe.state import cache_key, file_sha256

    if args.wait_lock < 0:
        raise UsageError(f"--wait-lock {args.wait_lock:g}: give 0 or more seconds")
    workdir = workdir_of(args)
    _check_report_paths(args, workdir)
    printer = StatusPrinter(sys.stdout, quiet=args.quiet, verbose=args.verbose)
    options = RunOptions(force=frozenset(args.force), rekey=args.rekey,
                         lock_wait=args.wait_lock)
    report: RunReport | None = None
    try:
        with sigterm_as_interrupt():
            overrides = raw_overrides(args.assignments)
            pipeline_sha256 = file_sha256(args.pipeline)
            if overrides is not None and pipeline_sha256 is not None:
                options.cache_key = cache_key(pipeline_sha256, overrides)
                report = run_from_cache(workdir, options.cache_key, options, printer.step)
            if report is None:
                # NOTE: any change, even to the last step alone, loads and validates the
                # whole pipeline (YAML, jsonschema, the step modules and so cryptography).
                # Building steps from the cached resolved settings would avoid the
                # schema check, but the step modules import cryptography at load time.
                report = _run_full(args, workdir, options, printer)
            else:
                report.pipeline_path = str(args.pipeline)
                _check_reports_against(args, workdir, [
                    (step.name, value) for step in report.steps for value in step.artifacts])
    except CertpipeError as exc:
        if not isinstance(exc, ReportPathError):
            failed = RunReport(args.pipeline.stem, str(args.pipeline), "", workdir,
                               exit_code=exc.exit_code, error=exc)
            _write_reports(args, failed)
        raise
    except KeyboardInterrupt:
        interrupted = RunReport(args.pipeline.stem, str(args.pipeline), "", workdir,
                                exit_code=130, error=CertpipeError("interrupted"))
        _write_reports(args, report or interrupted)
        raise
    printer.summary(report)
    _write_reports(args, report)
    if report.interrupted:
        raise KeyboardInterrupt
    if report.error is not None:
        print(f"certpipe: {report.error}", file=sys.stderr)
    return report.exit_code


def _run_full(args: argparse.Namespace, workdir: Path, options: Any, printer: Any) -> Any:
    from certpipe.engine import input_values, output_values, run_pipeline
    from certpipe.openssl import OpenSSL
    from certpipe.pipeline.model import check_confinement, load_pipeline, parse_assignments
    from certpipe.steps.base import StepContext

    pipeline = load_pipeline(args.pipeline, parse_assignments(args.assignments))
    check_confinement(pipeline, workdir)
    _check_reports_against(args, workdir, [
        (step.name, value) for step in pipeline.steps
        for value in [*input_values(step), *output_values(step)]])
    ctx = StepContext(
        workdir=workdir,
        openssl_factory=lambda: OpenSSL.discover(args.openssl),
        timeout=args.timeout or pipeline.timeout,
        rekey=args.rekey,
    )
    return run_pipeline(pipeline, ctx, options, printer.step)


def _check_report_paths(args: argparse.Namespace, workdir: Path) -> None:
    from certpipe.report_targets import JSON_REPORT, JUNIT_REPORT, check_report_path

    if args.report is not None and args.junit is not None \
            and os.path.realpath(args.report) == os.path.realpath(args.junit):
        raise ReportPathError(f"--report and --junit both name {args.report}; give each "
                              f"its own file")
    if args.report is not None:
        check_report_path("--report", args.report, JSON_REPORT, args.pipeline, workdir)
    if args.junit is not None:
        check_report_path("--junit", args.junit, JUNIT_REPORT, args.pipeline, workdir)


def _check_reports_against(args: argparse.Namespace, workdir: Path,
                           files: list[tuple[str, str]]) -> None:
    from certpipe.report_targets import check_not_pipeline_file

    for option, path in (("--report", args.report), ("--junit", args.junit)):
        if path is not None:
            check_not_pipeline_file(option, path, workdir, files)


def _write_reports(args: argparse.Namespace, report: Any) -> None:
    from certpipe.report import write_json_report, write_junit

    for path, writer in ((args.report, write_json_report), (args.junit, write_junit)):
        if path is None:
            continue
        try:
            writer(report, path)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}; check the folder "
                             f"exists and is writable") from None
