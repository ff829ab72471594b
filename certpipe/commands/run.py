"""``certpipe run``: run pipelines' steps for each certificate, skipping what is up to date.

An unchanged re-run is decided from the manifests' hashes before any
pipeline is loaded, so it imports neither jsonschema, cryptography nor sh.
Any difference falls back to the full path for that file, which loads and
validates the pipeline and runs what changed. Several pipeline files, and
pipelines with ``certificates:``, run certificate by certificate, ``--jobs``
at a time (see certpipe.batch).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

from certpipe.errors import CertpipeError, UsageError

# The names parse_assignments accepts for --set.
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipelines", type=Path, nargs="+", metavar="PIPELINE",
                        help="pipeline YAML file; with several, each file's files go into "
                             "WORKDIR/NAME, NAME being the file name without extension")
    add_pipeline_options(parser)
    add_selection_options(parser)
    parser.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                        help="run up to N certificates at a time (default: the number of "
                             "CPUs)")
    parser.add_argument("--fail-fast", action="store_true",
                        help="start no further certificate once one has failed (default: "
                             "run every certificate; the exit code is the worst one)")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="write a JSON report of the run to FILE, one entry per "
                             "certificate and step (schema: certpipe/report.schema.json in "
                             "the package)")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="write a JUnit XML file to FILE: one test suite per certificate, "
                             "one test case per step")
    parser.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                        help="when another run is using a work directory, wait up to "
                             "SECONDS for it (default: 0, fail at once)")


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--only`` and ``--shard``, which ``run``, ``plan`` and ``script`` share."""
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only the certificate NAME (repeatable, or comma-separated; "
                             "shell-style wildcards such as 'shop-*' work; with several "
                             "pipeline files also FILE-NAME/CERTIFICATE)")
    parser.add_argument("--shard", metavar="INDEX/TOTAL",
                        help="run only the certificates of shard INDEX out of TOTAL, such as "
                             "2/4; each certificate's shard follows from its name alone, so "
                             "CI jobs can split a large set")


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
    """Return ``--set`` values as parse_assignments would, or None when one is malformed.

    parse_assignments itself reports the malformed value, but it lives with
    the pipeline loader, which an up-to-date run does not import.
    """
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _VAR_NAME_RE.match(name):
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
    from certpipe.batch import BatchOptions, BatchReport, Interrupted, Selection, default_jobs
    from certpipe.batch import run_batch
    from certpipe.engine import RunOptions
    from certpipe.report import StatusPrinter

    if args.wait_lock < 0:
        raise UsageError(f"--wait-lock {args.wait_lock:g}: give 0 or more seconds")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: give 1 or more")
    workdir = workdir_of(args)
    _check_report_paths(args, workdir)
    printer = StatusPrinter(sys.stdout, quiet=args.quiet, verbose=args.verbose)
    overrides = raw_overrides(args.assignments)
    if overrides is None:
        from certpipe.pipeline.model import parse_assignments

        overrides = parse_assignments(args.assignments)  # raises, naming the bad value
    batch = BatchOptions(
        overrides=overrides,
        options=RunOptions(force=frozenset(args.force), rekey=args.rekey,
                           lock_wait=args.wait_lock),
        openssl=args.openssl,
        jobs=args.jobs or default_jobs(),
        fail_fast=args.fail_fast,
        selection=Selection.parse(args.only, args.shard),
        timeout=args.timeout,
        check_files=(lambda folder, files: _check_reports_against(args, folder, files))
        if args.report is not None or args.junit is not None else None,
    )
    try:
        with sigterm_as_interrupt():
            result = run_batch(args.pipelines, workdir, batch, printer.step)
    except CertpipeError as exc:
        if not _is_report_path_error(exc):
            _write_reports(args, _stopped(args, workdir, exc))
        raise
    except KeyboardInterrupt:
        _write_reports(args, _stopped(args, workdir, Interrupted("interrupted")))
        raise
    printer.batch_summary(result)
    _write_reports(args, result)
    if result.exit_code == Interrupted.exit_code:
        raise KeyboardInterrupt
    for report in result.reports:
        if report.error is None or report.not_started:
            continue
        prefix = f"{report.label}: " if report.label else ""
        print(f"certpipe: {prefix}{report.error}", file=sys.stderr)
    return result.exit_code


def _is_report_path_error(exc: CertpipeError) -> bool:
    """Tell whether *exc* rejects a report path, in which case no report may be written."""
    if "certpipe.report_targets" not in sys.modules:
        return False  # imported only to check --report and --junit paths
    from certpipe.report_targets import ReportPathError

    return isinstance(exc, ReportPathError)


def _stopped(args: argparse.Namespace, workdir: Path, error: CertpipeError) -> Any:
    """Return the report of a run that stopped before any certificate ran."""
    from certpipe.batch import BatchReport, Source

    sources = [Source(path, workdir, None) for path in args.pipelines]
    return BatchReport(sources, workdir, error=error)


def _check_report_paths(args: argparse.Namespace, workdir: Path) -> None:
    if args.report is None and args.junit is None:
        return
    from certpipe.report_targets import (
        JSON_REPORT, JUNIT_REPORT, ReportPathError, check_report_path,
    )

    if args.report is not None and args.junit is not None \
            and os.path.realpath(args.report) == os.path.realpath(args.junit):
        raise ReportPathError(f"--report and --junit both name {args.report}; give each "
                              f"its own file")
    for pipeline in args.pipelines:
        if args.report is not None:
            check_report_path("--report", args.report, JSON_REPORT, pipeline, workdir)
        if args.junit is not None:
            check_report_path("--junit", args.junit, JUNIT_REPORT, pipeline, workdir)


def _check_reports_against(args: argparse.Namespace, workdir: Path,
                           files: list[tuple[str, str]]) -> None:
    """Raise ReportPathError when --report or --junit names a file that a step reads or writes."""
    from certpipe.report_targets import check_not_pipeline_file

    for option, path in (("--report", args.report), ("--junit", args.junit)):
        if path is not None:
            check_not_pipeline_file(option, path, workdir, files)


def _write_reports(args: argparse.Namespace, result: Any) -> None:
    from certpipe.report import write_json_report, write_junit

    for path, writer in ((args.report, write_json_report), (args.junit, write_junit)):
        if path is None:
            continue
        try:
            writer(result, path)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}; check the folder "
                             f"exists and is writable") from None
