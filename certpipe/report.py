"""Run output: status lines, a JSON report and a JUnit XML file.

The JSON report follows ``certpipe/report.schema.json``, shipped in the
package. Messages in reports come from certpipe's errors, which never hold a
secret. This module imports only the standard library.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from certpipe import __version__
from certpipe.batch import BatchReport, describe_sources, summary_counts
from certpipe.engine import NOT_RUN, PENDING, RunReport, StepReport
from certpipe.errors import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_PENDING
from certpipe.fsutil import atomic_write

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

WIDTH = 32
COLOURS = {"made": "32", "kept": "32", "up to date": "36", "pending": "33", "failed": "31",
           "interrupted": "31", "not run": "2"}
REPORT_VERSION = 2
RUN_STATUS = {EXIT_OK: "ok", EXIT_INVALID: "invalid", EXIT_PENDING: "pending",
              EXIT_INTERRUPTED: "interrupted"}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to a non-empty value."""
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class StatusPrinter:
    """One line per step on stdout, then a summary line.

    Lines of several certificates start with the certificate's label. Each
    line is written whole under a lock, so threads never interleave parts
    of lines.
    """

    def __init__(self, stream: TextIO = sys.stdout, quiet: bool = False, verbose: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.verbose = verbose
        self.colour = use_colour(stream)
        self._lock = threading.Lock()

    def _paint(self, text: str, status: str) -> str:
        if not self.colour:
            return text
        return f"\033[{COLOURS.get(status, '0')}m{text}\033[0m"

    def _write(self, lines: list[str]) -> None:
        with self._lock:
            self.stream.write("".join(line + "\n" for line in lines))
            self.stream.flush()

    def step(self, report: StepReport, label: str = "") -> None:
        if self.quiet and report.status not in ("failed", "pending", "interrupted"):
            return
        prefix = f"{label}: " if label else ""
        name = f"{report.name} ({report.kind}) "
        dots = "." * max(3, WIDTH - len(name))
        files = report.made or report.kept
        what = f" {', '.join(files)}" if files else ""
        timing = f" ({report.duration:.2f} s)" if report.status in ("made", "kept") else ""
        lines = [f"{prefix}{name}{dots} {self._paint(report.status, report.status)}{what}"
                 f"{timing}"]
        lines += [f"{prefix}    note: {note}" for note in report.notes]
        if self.verbose:
            lines += [f"{prefix}    why: {reason}" for reason in report.reasons]
            lines += [f"{prefix}    check {check.result}: {check.description}"
                      for check in report.checks]
        self._write(lines)

    def summary(self, report: RunReport) -> None:
        if self.quiet and report.exit_code == 0:
            return
        self._write([f"{report.pipeline_name}: {_count_steps(report.steps)} in "
                     f"{report.duration:.2f} s"])

    def batch_summary(self, result: BatchReport) -> None:
        """Print the summary of a run: as :meth:`summary` for one plain pipeline."""
        if not result.several and len(result.reports) == 1:
            self.summary(result.reports[0])
            return
        if (self.quiet and result.exit_code == 0) or not result.reports:
            return
        groups = summary_counts(result)
        parts = []
        for outcome in ("done", "pending", "failed", "invalid", "interrupted", "not run"):
            labels = groups.get(outcome, [])
            if not labels:
                continue
            shown = "" if outcome == "done" else " (" + _some(labels) + ")"
            parts.append(f"{len(labels)} {outcome}{shown}")
        total = len(result.reports)
        self._write([f"{total} certificate{'s' if total != 1 else ''}: {', '.join(parts)} "
                     f"in {result.duration:.2f} s"])


def _count_steps(steps: list[StepReport]) -> str:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "no step run"


def _some(labels: list[str], limit: int = 10) -> str:
    more = len(labels) - limit
    return ", ".join(labels[:limit]) + (f" and {more} more" if more > 0 else "")


# --- JSON --------------------------------------------------------------------------------


def run_status(report: RunReport) -> str:
    if report.not_started and report.exit_code == EXIT_OK:
        return "not run"
    return RUN_STATUS.get(report.exit_code, "failed")


def report_data(result: BatchReport) -> dict[str, Any]:
    """Return the JSON report of a run as plain data: one entry per certificate and step."""
    reports = result.reports
    pipelines = describe_sources(result)
    openssl = next((r.openssl for r in reports if r.openssl), None)
    started = (reports[0].started if len(reports) == 1 and not result.several
               else dt.datetime.fromtimestamp(result.started_at, dt.timezone.utc))
    status = RUN_STATUS.get(result.exit_code, "failed")
    return {
        "report_version": REPORT_VERSION,
        "certpipe_version": __version__,
        "pipeline": pipelines[0] if len(pipelines) == 1 else None,
        "pipelines": pipelines,
        "workdir": str(result.workdir),
        "started": started.isoformat(timespec="seconds"),
        "duration_seconds": round(result.duration, 6),
        "status": status,
        "exit_code": result.exit_code,
        "error": _run_error(result),
        "openssl": openssl,
        "decided_from_manifest": bool(reports) and all(r.from_cache for r in reports),
        "certificates": [_certificate_data(report) for report in reports],
        "steps": [{"certificate": report.label or None, **_step_data(step)}
                  for report in reports for step in report.steps],
    }


def _run_error(result: BatchReport) -> str | None:
    if result.error is not None:
        return str(result.error)
    if not result.several and len(result.reports) == 1:
        error = result.reports[0].error
        return None if error is None else str(error)
    failed = [r for r in result.reports if r.exit_code != EXIT_OK]
    if not failed:
        return None
    return f"{len(failed)} of {len(result.reports)} certificates did not finish: " + _some(
        [f"{r.label} ({run_status(r)})" for r in failed])


def _certificate_data(report: RunReport) -> dict[str, Any]:
    return {
        "name": report.certificate,
        "label": report.label or None,
        "pipeline": report.pipeline_path,
        "workdir": str(report.workdir),
        "status": run_status(report),
        "exit_code": report.exit_code,
        "error": str(report.error) if report.error is not None else (report.not_started or None),
        "duration_seconds": round(report.duration, 6),
        "decided_from_manifest": report.from_cache,
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


def write_json_report(result: BatchReport, path: Path) -> None:
    text = json.dumps(report_data(result), indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), create_folders=False)


def load_report_schema() -> dict[str, Any]:
    """Return the JSON Schema that every JSON report validates against."""
    from importlib import resources

    text = resources.files("certpipe").joinpath("report.schema.json").read_text("utf-8")
    return json.loads(text)


# --- JUnit XML ---------------------------------------------------------------------------


def junit_tree(result: BatchReport) -> ET.ElementTree:
    """Return a JUnit XML tree: one test suite per certificate, one test case per step.

    A failed or interrupted step is a failure; pending and not-run steps are
    skipped; a run stopped before any step (an invalid pipeline) is one
    failed case.
    """
    import xml.etree.ElementTree as ET

    suites = ET.Element("testsuites", name="certpipe")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for report in result.reports:
        counts = _junit_suite(suites, report)
        for key in totals:
            totals[key] += counts[key]
    if not result.reports:
        path = result.sources[0].path if result.sources else Path("pipeline")
        report = RunReport(path.stem, str(path), "", result.workdir, exit_code=result.exit_code,
                           error=result.error)
        counts = _junit_suite(suites, report)
        for key in totals:
            totals[key] += counts[key]
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("errors", "0")
    suites.set("time", f"{result.duration:.3f}")
    return ET.ElementTree(suites)


def _junit_suite(suites: ET.Element, report: RunReport) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    name = report.label or report.pipeline_name or Path(report.pipeline_path).stem or "pipeline"
    classname = f"certpipe.{name}"
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
        case = ET.SubElement(suite, "testcase", classname=classname,
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
        case = ET.SubElement(suite, "testcase", classname=classname, name="pipeline",
                             time="0.000")
        failure = ET.SubElement(case, "failure", type=run_status(report),
                                message=_first_line(str(report.error)))
        failure.text = str(report.error)
        cases.append(None)  # type: ignore[arg-type]
    counts = {"tests": len(cases), "failures": failures, "skipped": skipped}
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    return counts


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _step_text(step: StepReport) -> str:
    lines = [f"status: {step.status}"]
    lines += [f"why: {reason}" for reason in step.reasons]
    lines += [f"artifact: {path} sha256:{digest}" for path, digest in step.artifacts.items()]
    lines += [f"check {c.result}: {c.description}" for c in step.checks]
    lines += [f"note: {note}" for note in step.notes]
    return "\n".join(lines) + "\n"


def write_junit(result: BatchReport, path: Path) -> None:
    import xml.etree.ElementTree as ET

    tree = junit_tree(result)
    ET.indent(tree)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True) + b"\n"
    atomic_write(path, data, create_folders=False)
