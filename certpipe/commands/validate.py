"""``certpipe validate``: load and check pipeline files without running anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certpipe.errors import EXIT_INVALID, EXIT_OK, PipelineError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipelines", type=Path, nargs="+", help="pipeline YAML files")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        metavar="NAME=VALUE", help="override a pipeline variable (repeatable)")


def main(args: argparse.Namespace) -> int:
    from certpipe.pipeline.model import load_pipelines, parse_assignments

    overrides = parse_assignments(args.assignments)
    status = EXIT_OK
    for path in args.pipelines:
        try:
            pipelines = load_pipelines(path, overrides)
        except PipelineError as exc:
            print(f"certpipe: {exc}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        certificates = ""
        if pipelines[0].certificate is not None:
            certificates = f", {len(pipelines)} certificates"
        print(f"{path}: valid ({len(pipelines[0].steps)} steps{certificates})")
    return status
