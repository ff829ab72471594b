"""Run output: status lines, a JSON report and a JUnit XML file.

The JSON report follows ``certpipe/report.schema.json``, shipped in the
package. Messages in reports come from certpipe's errors, which never hold a
secret. This module imports only the standard library.
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from certpipe import __version__
from certpipe.engine import NOT_RUN, PENDING, RunReport, StepReport
from certpipe.errors import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_PENDING
from certpipe.fsutil import atomic_write

WIDTH = 32
COLOURS = {"made": "32", "kept": "32", "up to date": "36", "pending": "33", "failed": "31",
           "interrupted": "31", "not run": "2"}
REPORT_VERSION = 1
RUN_STATUS = {EXIT_OK: "ok", EXIT_INVALID: "invalid", EXIT_PENDING: "pending",
              EXIT_INTERRUPTED: "interrupted"}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to a non-empty value."""
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class StatusPrinter:
    """One line per step on stdout, then a summary line."""

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
        if self.quiet and report.status not in ("failed", "pending", "interrupted"):
            return
        label = f"{report.name} ({report.kind}) "
        dots = "." * max(3, WIDTH - len(label))
        files = report.made or report.kept
        what = f" {', '.join(files)}" if files else ""
        timing = f" ({report.duration:.2f} s)" if report.status in ("made", "kept") else ""
        line = f"{label}{dots} {self._paint(report.status, report.status)}{what}{timing}"
        print(line, file=self.stream, flush=True)
        for note in report.notes:
            print(f"    note: {note}", file=self.stream)
        if self.verbose:
            for reason in report.reasons:
                print(f"    why: {reason}", file=self.stream)
            for check in report.checks:
                print(f"    check {check.result}: {check.description}", file=self.stream)

    def summary(self, report: RunReport) -> None:
        if self.quiet and report.exit_code == 0:
            return
        counts: dict[str, int] = {}
        for step in report.steps:
            counts[step.status] = counts.get(step.status, 0) + 1
        parts = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no step run"
        print(f"{report.pipeline_name}: {parts} in {report.duration:.2f} s", file=self.stream,
              flush=True)


# --- JSON --------------------------------------------------------------------------------


def run_status(report: RunReport) -> str:
    return RUN_STATUS.get(report.exit_code, "failed")


def report_data(report: RunReport) -> dict[str, Any]:
    """Return the JSON report of *report* as plain data."""
    return {
        "report_version": REPORT_VERSION,
        "certpipe_version": __version__,
        "pipeline": {"name": report.pipeline_name, "path": report.pipeline_path,
                     "sha256": report.pipeline_sha256 or None},
        "workdir": str(report.workdir),
        "started": report.started.isoformat(timespec="seconds"),
        "duration_seconds": round(report.duration, 6),
        "status": run_status(report),
        "exit_code": report.exit_code,
        "error": None if report.error is None else str(report.error),
        "openssl": report.openssl,
        "decided_from_manifest": report.from_cache,
        "steps": [_step_data(step) for step in report.steps],
    }


def _step_data(step: StepReport) -> dict[str, Any]:
    made = set(step.made)
    return {
        "name": step.name,
        "kind": step.kind,
        "status": step.status,
        "duration_seconds": round(step.duration, 6),
        "reasons": step.reasons,
        "message": step.message or None,
        "openssl_calls": step.openssl_calls,
        "artifacts": [{"path": path, "sha256": digest, "made": path in made}
                      for path, digest in step.artifacts.items()],
        "checks": [{"description": c.description, "result": c.result} for c in step.checks],
        "notes": step.notes,
    }


def write_json_report(report: RunReport, path: Path) -> None:
    text = json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), create_folders=False)


def load_report_schema() -> dict[str, Any]:
    """Return the JSON Schema that every JSON report validates against."""
    text = resources.files("certpipe").joinpath("report.schema.json").read_text("utf-8")
    return json.loads(text)


# --- JUnit XML ---------------------------------------------------------------------------


def junit_tree(report: RunReport) -> ET.ElementTree:
    """Return a JUnit XML tree: one test suite for the pipeline, one test case per step.

    A failed or interrupted step is a failure; pending and not-run steps are
    skipped; an invalid pipeline, which has no steps, is one failed case.
    """
    name = report.pipeline_name or Path(report.pipeline_path).stem or "pipeline"
    suites = ET.Element("testsuites", name="certpipe")
    suite = ET.SubElement(suites, "testsuite", name=name,
                          timestamp=report.started.isoformat(timespec="seconds"),
                          time=f"{report.duration:.3f}")
    properties = ET.SubElement(suite, "properties")
    for key, value in [("certpipe_version", __version__), ("workdir", str(report.workdir)),
                       ("openssl", (report.openssl or {}).get("version", "not used"))]:
        ET.SubElement(properties, "property", name=key, value=value)
    failures = skipped = 0
    cases = list(report.steps)
    for step in cases:
        case = ET.SubElement(suite, "testcase", classname=f"certpipe.{name}",
                             name=f"{step.name} ({step.kind})", time=f"{step.duration:.3f}")
        if step.status in ("failed", "interrupted"):
            failures += 1
            failure = ET.SubElement(case, "failure", type=step.status,
                                    message=_first_line(step.message))
            failure.text = step.message
        elif step.status in (PENDING, NOT_RUN):
            skipped += 1
            ET.SubElement(case, "skipped", message=_first_line(step.message or step.status))
        ET.SubElement(case, "system-out").text = _step_text(step)
    if not cases and report.error is not None:
        failures += 1
        case = ET.SubElement(suite, "testcase", classname=f"certpipe.{name}", name="pipeline",
                             time="0.000")
        failure = ET.SubElement(case, "failure", type=run_status(report),
                                message=_first_line(str(report.error)))
        failure.text = str(report.error)
        cases.append(None)  # type: ignore[arg-type]
    for element in (suites, suite):
        element.set("tests", str(len(cases)))
        element.set("failures", str(failures))
        element.set("errors", "0")
        element.set("skipped", str(skipped))
    suites.set("time", f"{report.duration:.3f}")
    return ET.ElementTree(suites)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _step_text(step: StepReport) -> str:
    lines = [f"status: {step.status}"]
    lines += [f"why: {reason}" for reason in step.reasons]
    lines += [f"artifact: {path} sha256:{digest}" for path, digest in step.artifacts.items()]
    lines += [f"check {c.result}: {c.description}" for c in step.checks]
    lines += [f"note: {note}" for note in step.notes]
    return "\n".join(lines) + "\n"


def write_junit(report: RunReport, path: Path) -> None:
    tree = junit_tree(report)
    ET.indent(tree)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True) + b"\n"
    atomic_write(path, data, create_folders=False)
