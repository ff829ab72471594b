"""Run certpipe in-process against a work directory and tally how each run ended.

The tally feeds the summary line that the reliability conftest prints at the
end of a pytest run, so the counts in docs/reliability.md can be checked
with ``python -m pytest tests/reliability -q``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from certpipe.cli import main

TRACEBACK_MARK = "Traceback (most recent call last)"
TEMP_MARK = ".certpipe-tmp-"


@dataclass
class Outcome:
    """How one in-process ``certpipe`` run ended."""

    exit_code: int | None
    out: str
    err: str
    crash: str = ""  # formatted traceback of an exception that escaped main()

    @property
    def text(self) -> str:
        return self.out + self.err


def run_certpipe(*args: str | Path) -> Outcome:
    """Run ``certpipe ARGS`` in-process; an exception escaping main() is kept, not raised."""
    out, err = io.StringIO(), io.StringIO()
    crash = ""
    code: int | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:  # main() should return, but count an exit as its code
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - any escape is the failure being counted
            crash = traceback.format_exc()
    return Outcome(code, out.getvalue(), err.getvalue(), crash)


# --- work directory snapshots -------------------------------------------------

Entry = tuple[str, int, bytes]  # kind ("file", "dir", "link"), mode bits, content or target


def snapshot(root: Path) -> dict[str, Entry]:
    """Record every file, folder and symlink under *root*: kind, mode bits and bytes."""
    entries: dict[str, Entry] = {".": ("dir", stat.S_IMODE(root.lstat().st_mode), b"")}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = ("dir", mode, b"")
            else:
                entries[rel] = ("file", mode, path.read_bytes())
    return entries


def describe_changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """List what differs between two snapshots, one line per path."""
    changes = []
    for rel in sorted(set(before) | set(after)):
        old, new = before.get(rel), after.get(rel)
        if old == new:
            continue
        if old is None:
            changes.append(f"added {rel}")
        elif new is None:
            changes.append(f"lost {rel}")
        elif old[0] != new[0]:
            changes.append(f"{rel}: {old[0]} became {new[0]}")
        elif old[1] != new[1]:
            changes.append(f"{rel}: mode {old[1]:o} became {new[1]:o}")
        else:
            changes.append(f"{rel}: content changed")
    return changes


def temp_files(root: Path) -> list[str]:
    """Temporary files of certpipe's atomic writes that are still under *root*."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"*{TEMP_MARK}*"))


def copy_tree(source: Path, target: Path) -> Path:
    """Copy a work directory with its modes and symlinks, as a fresh case for one run."""
    shutil.copytree(source, target, symlinks=True)
    shutil.copystat(source, target)
    return target


# --- counts for the summary ---------------------------------------------------


@dataclass
class Tally:
    """Counts of one family of inputs, printed in the pytest terminal summary."""

    title: str
    tried: int = 0
    clean: int = 0
    tracebacks: int = 0
    wrong_exit: int = 0
    changed_workdirs: int = 0
    exit_codes: Counter[int] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)

    def record(self, outcome: Outcome, expected_code: int | None, changed: bool) -> None:
        self.tried += 1
        crashed = bool(outcome.crash) or TRACEBACK_MARK in outcome.text
        if crashed:
            self.tracebacks += 1
        if outcome.exit_code is not None:
            self.exit_codes[outcome.exit_code] += 1
        wrong = expected_code is not None and outcome.exit_code != expected_code
        if wrong:
            self.wrong_exit += 1
        if changed:
            self.changed_workdirs += 1
        if not crashed and not wrong and outcome.exit_code not in (None, 0):
            self.clean += 1

    def line(self) -> str:
        clean = f"{self.clean} clean errors"
        if self.exit_codes:
            codes = ", ".join(f"exit {code}: {n}" for code, n in sorted(self.exit_codes.items()))
            clean += f" ({codes})"
        parts = [f"{self.tried} tried", clean, f"{self.tracebacks} tracebacks"]
        if self.exit_codes:  # runs of the CLI, as opposed to calls of the loader
            parts += [f"{self.wrong_exit} wrong exit codes",
                      f"{self.changed_workdirs} work directories changed"]
        parts += [f"{n} {what}" for what, n in sorted(self.extra.items())]
        return f"{self.title}: " + ", ".join(parts)


TALLIES: dict[str, Tally] = {}


def tally(title: str) -> Tally:
    """Return the tally named *title*, creating it on first use."""
    if title not in TALLIES:
        TALLIES[title] = Tally(title)
    return TALLIES[title]


def summary_lines() -> Iterable[str]:
    return [t.line() for t in TALLIES.values() if t.tried or t.extra]
