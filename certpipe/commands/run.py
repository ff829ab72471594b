"""``certpipe run``: run a pipeline's steps, skipping those that are up to date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certpipe.errors import UsageError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="pipeline YAML file")
    parser.add_argument("--workdir", type=Path, default=Path("."),
                        help="folder for every file the pipeline makes (default: current folder)")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        metavar="NAME=VALUE", help="override a pipeline variable (repeatable)")
    parser.add_argument("--rekey", action="store_true",
                        help="replace existing private keys (the old file is kept as a backup)")
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


def main(args: argparse.Namespace) -> int:
    from certpipe.engine import run_pipeline
    from certpipe.openssl import OpenSSL
    from certpipe.pipeline.model import load_pipeline, parse_assignments
    from certpipe.report import StatusPrinter
    from certpipe.steps.base import StepContext

    pipeline = load_pipeline(args.pipeline, parse_assignments(args.assignments))
    workdir = args.workdir.expanduser()
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} exists and is not a folder")
    ctx = StepContext(
        workdir=workdir,
        openssl_factory=lambda: OpenSSL.discover(args.openssl),
        timeout=args.timeout or pipeline.timeout,
        rekey=args.rekey,
    )
    printer = StatusPrinter(sys.stdout, quiet=args.quiet, verbose=args.verbose)
    report = run_pipeline(pipeline, ctx, printer.step)
    printer.summary(report)
    if report.error is not None:
        print(f"certpipe: {report.error}", file=sys.stderr)
    return report.exit_code
