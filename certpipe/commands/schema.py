"""``certpipe schema``: print the pipeline JSON Schema, or the reference made from it."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("json", "markdown"), default="json",
        help="json: the JSON Schema for editors and validators (default); markdown: the "
             "pipeline reference made from it, as in docs/pipeline-reference.md",
    )


def schema_text() -> str:
    """Return the schema file shipped in the package, exactly as stored."""
    return resources.files("certpipe.pipeline").joinpath("schema.json").read_text("utf-8")


def main(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.format == "markdown":
        from certpipe.pipeline.reference import render_reference

        text = render_reference(json.loads(text))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
