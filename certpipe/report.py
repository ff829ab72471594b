"""Status lines on the terminal: one per step, then a summary."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from certpipe.engine import RunReport, StepReport

WIDTH = 32
COLOURS = {"made": "32", "kept": "32", "up to date": "36", "pending": "33", "failed": "31"}


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class StatusPrinter:
    def __init__(self, stream: TextIO = sys.stdout, quiet: bool = False, verbose: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.verbose = verbose
        self.colour = use_colour(stream)

    def _paint(self, text: str, status: str) -> str:
        if not self.colour:
            return text
        return f"\033[{COLOURS.get(status, '0')}m{text}\033[0m"

    def step(self, report: StepReport) -> None:
        if self.quiet and report.status not in ("failed", "pending"):
            return
        label = f"{report.name} ({report.kind}) "
        dots = "." * max(3, WIDTH - len(label))
        files = report.result.made or report.result.kept
        what = f" {', '.join(files)}" if files else ""
        timing = f" ({report.duration:.2f} s)" if report.status in ("made", "kept") else ""
        line = f"{label}{dots} {self._paint(report.status, report.status)}{what}{timing}"
        print(line, file=self.stream, flush=True)
        for note in report.result.notes:
            print(f"    note: {note}", file=self.stream)
        if self.verbose:
            for check in report.result.checks:
                print(f"    check: {check}", file=self.stream)

    def summary(self, report: RunReport) -> None:
        if self.quiet and report.exit_code == 0:
            return
        counts: dict[str, int] = {}
        for step in report.steps:
            counts[step.status] = counts.get(step.status, 0) + 1
        total = sum(step.duration for step in report.steps)
        parts = ", ".join(f"{n} {status}" for status, n in counts.items())
        print(f"{report.pipeline.name}: {parts} in {total:.2f} s", file=self.stream)
