"""Checks on the ``--report`` and ``--junit`` paths of ``certpipe run``.

A report is written after the run, over whatever is at its path, so a
mistyped path could replace a private key, the pipeline or the manifest.
These checks run before any step does: a report path may be a new file in
an existing folder, or an earlier report of the same kind, and nothing else.
This module imports only the standard library.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

from certpipe.errors import UsageError
from certpipe.fsutil import STATE_DIR, FileRejected, read_limited

JSON_REPORT = "JSON report"
JUNIT_REPORT = "JUnit XML file"
# An earlier report larger than this is not one that certpipe wrote.
MAX_REPORT_BYTES = 50_000_000
PRIVATE_KEY_MARKS = (b"PRIVATE KEY-----", b"PuTTY-User-Key-File", b"PRIVATE KEY BLOCK")


class ReportPathError(UsageError):
    """A ``--report`` or ``--junit`` path that certpipe must not write to (exit 2)."""


def check_report_path(option: str, path: Path, kind: str, pipeline_path: Path,
                      workdir: Path) -> None:
    """Raise ReportPathError unless a *kind* report can safely be written at *path*."""
    where = f"{option} {path}"
    _check_parent(where, path)
    real = os.path.realpath(path)
    if real == os.path.realpath(pipeline_path):
        raise ReportPathError(f"{where}: is the pipeline file; give another path for the "
                              f"report")
    state_dir = os.path.realpath(workdir / STATE_DIR)
    if os.path.commonpath([state_dir, real]) == state_dir:
        raise ReportPathError(f"{where}: is inside {workdir / STATE_DIR}, where certpipe keeps "
                              f"its manifest; give a path outside that folder")
    if os.path.lexists(path):
        _check_existing(where, path, kind)


def check_not_pipeline_file(option: str, path: Path, workdir: Path,
                            files: Iterable[tuple[str, str]]) -> None:
    """Raise ReportPathError when *path* is one of *files*, (step name, path value) pairs
    that a pipeline reads or writes, compared after resolving symlinks.
    """
    real = os.path.realpath(path)
    for step_name, value in files:
        target = Path(value).expanduser()
        target = target if target.is_absolute() else workdir / target
        if os.path.realpath(target) == real:
            raise ReportPathError(f"{option} {path}: is {value}, a file of step '{step_name}' "
                                  f"in the pipeline; give another path for the report")


def _check_parent(where: str, path: Path) -> None:
    parent = path.parent
    if parent.is_dir():
        return
    existing = parent
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if os.path.lexists(existing) and not existing.is_dir():
        raise ReportPathError(f"{where}: {existing} is a file, not a folder; give a path in "
                              f"an existing folder")
    raise ReportPathError(f"{where}: the folder {parent} does not exist; create it first or "
                          f"give a path in an existing folder")


def _check_existing(where: str, path: Path, kind: str) -> None:
    if path.is_dir():
        raise ReportPathError(f"{where}: is a folder; give a file name for the report")
    try:
        data = read_limited(path, MAX_REPORT_BYTES)
    except FileRejected as exc:
        raise ReportPathError(f"{where}: {exc.reason}; give the path of a new file or of "
                              f"an earlier {kind}") from None
    except OSError as exc:
        raise ReportPathError(f"{where}: cannot read the existing file: {exc.strerror}") from None
    if any(mark in data for mark in PRIVATE_KEY_MARKS):
        raise ReportPathError(f"{where}: the file contains a private key; give another path "
                              f"for the report")
    is_report = _is_json_report(data) if kind == JSON_REPORT else _is_junit(data)
    if not is_report:
        raise ReportPathError(f"{where}: the file exists and is not an earlier {kind}; "
                              f"certpipe replaces only its own reports. Remove the file or "
                              f"give another path")


def _is_json_report(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and "report_version" in document \
        and "certpipe_version" in document


def _is_junit(data: bytes) -> bool:
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return False
    return root.tag in ("testsuites", "testsuite")
