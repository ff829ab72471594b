"""``certpipe plan``: list the steps, their openssl command lines, and what a run would do.

Nothing is run and nothing is written. Command lines come from each step's
``commands`` method, the one ``run`` executes, and show paths relative to
the work directory: the certificate's folder for a pipeline with
``certificates:``, one plan per certificate. A password shows as the source it is read from
(``env:NAME`` or ``file:PATH``), never as its value.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from certpipe.commands.run import add_pipeline_options, add_selection_options, workdir_of

WORK_FOLDER = ".certpipe"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipelines", type=Path, nargs="+", metavar="PIPELINE",
                        help="pipeline YAML file; several are planned as 'run' would run them")
    add_pipeline_options(parser)
    add_selection_options(parser)


@dataclass
class PlannedStep:
    step: Any
    status: str  # "up to date", "would run", "pending", "blocked"
    reasons: list[str] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)


def step_paths(step: Any, resolve: Callable[[str], str], work: str) -> dict[str, str]:
    """Map a step's input and output setting names, and ``work``, to paths."""
    paths = {key_path[0]: resolve(value) for key_path, value in step.inputs()
             if len(key_path) == 1}
    paths.update({name: resolve(value) for name, value in step.outputs().items()})
    paths["work"] = work
    return paths


def command_words(command: Any, secret_word: Callable[[Any, str], str],
                  quote: Callable[[str], str] = shlex.quote) -> list[str]:
    """Return the shell words of *command*: environment prefix, ``openssl``, arguments.

    *secret_word* gets a SecretRef and the variable certpipe would pass it in,
    and returns the word to print in place of ``env:CERTPIPE_PASSIN`` or
    ``env:CERTPIPE_PASSOUT``.
    """
    from certpipe.openssl import PASSIN_VAR, PASSOUT_VAR

    words = [f"{name}={shlex.quote(value)}" for name, value in command.extra_env.items()]
    words.append("openssl")
    for arg in command.args:
        if arg == f"env:{PASSIN_VAR}" and command.passin is not None:
            words.append(secret_word(command.passin, PASSIN_VAR))
        elif arg == f"env:{PASSOUT_VAR}" and command.passout is not None:
            words.append(secret_word(command.passout, PASSOUT_VAR))
        else:
            words.append(quote(arg))
    return words


def plan_steps(pipeline: Any, workdir: Path, options: Any) -> list[PlannedStep]:
    """Decide for each step what ``run`` would do, without running or writing anything."""
    from certpipe.engine import decide, input_values, missing_key_problem, output_values
    from certpipe.state import State, resolve_path

    state = State.load(workdir)
    changing: dict[str, str] = {}  # output that a step before would write -> that step
    produced: set[str] = set()
    planned: list[PlannedStep] = []
    stopper: PlannedStep | None = None
    for index, step in enumerate(pipeline.steps):
        if stopper is not None:
            planned.append(PlannedStep(step, "not reached",
                                       [f"step '{stopper.step.name}' is {stopper.status}"]))
            continue
        decision = decide(step, state, workdir, options)
        upstream = [f"step '{changing[value]}' would make {value} again"
                    for value in input_values(step) if value in changing]
        forced = step.name in options.force or (options.rekey and bool(step.key_outputs))
        missing = [value for value in input_values(step)
                   if value not in produced and not resolve_path(workdir, value).exists()]
        entry = PlannedStep(step, "would run", decision.reasons + upstream)
        if not decision.run and not upstream:
            entry.status = "up to date"
        elif missing and hasattr(step, "pending_message"):
            entry.status = "pending"
            entry.reasons = [f"{', '.join(missing)} is not there yet"]
        elif missing:
            entry.status = "would fail"
            entry.reasons = [f"input {value} is missing" for value in missing]
        elif step.key_outputs and not forced:
            problem = missing_key_problem(pipeline.steps, index, workdir, state)
            if problem:
                entry.status, entry.reasons = "blocked", [problem]
            elif all(resolve_path(workdir, v).exists() for v in output_values(step)):
                entry.status = "would check and keep the existing key"
        if entry.status == "would run":
            changing.update({value: step.name for value in output_values(step)})
        elif entry.status in ("pending", "would fail", "blocked"):
            stopper = entry
        produced.update(output_values(step))
        planned.append(entry)
    return planned


def display_path(workdir: Path) -> Callable[[str], str]:
    """Return a function that shows a pipeline path as a command run in *workdir* needs it."""

    def show(value: str) -> str:
        path = Path(value).expanduser()
        return str(path) if path.is_absolute() else os.path.normpath(value)

    return show


def _read_head(path: Path, size: int = 65536) -> bytes | None:
    """Return the first *size* bytes of the regular file *path*, or None when it cannot
    be read. A FIFO or a device is never opened, because reading one can block forever.
    """
    from certpipe.artifacts.intake import MAX_ARTIFACT_BYTES
    from certpipe.fsutil import FileRejected, check_regular_file

    try:
        check_regular_file(path, MAX_ARTIFACT_BYTES)
        with path.open("rb") as handle:
            return handle.read(size)
    except (OSError, FileRejected):
        return None


def actions_for(step: Any, workdir: Path) -> list[Any]:
    paths = step_paths(step, display_path(workdir), WORK_FOLDER)
    if step.kind == "ca_reply":
        from certpipe.steps.ca_reply import sniff_reply

        head = _read_head(workdir / paths["reply"])
        reply_format = None if head is None else sniff_reply(head)
        if reply_format == "other":
            reply_format = None
        return step.commands(paths, reply_format)
    return step.commands(paths)


def format_plan(pipeline: Any, workdir: Path, planned: list[PlannedStep],
                label: str = "") -> str:
    from certpipe.steps.base import ConfigFile

    what = f"{pipeline.name}, certificate {label}" if label else pipeline.name
    lines = [f"Plan for {what} ({pipeline.path}); commands run in {workdir}:", ""]
    for number, entry in enumerate(planned, 1):
        step = entry.step
        why = f" ({'; '.join(entry.reasons)})" if entry.reasons else ""
        lines.append(f"{number}. {step.name} ({step.kind}): {entry.status}{why}")
        if entry.status.startswith("would check and keep"):
            lines.append("     (the key file exists, so this call is skipped)")
        for action in actions_for(step, workdir):
            condition = ""
            if action.unless_exists:
                condition = f"  # only when {' or '.join(action.unless_exists)} is missing"
            if isinstance(action, ConfigFile):
                what = f" ({action.note})" if action.note else ""
                lines.append(f"     write {action.path}{what}:{condition}")
                text = action.text if action.text is not None else "<made from the input at run time>\n"
                lines += [f"       | {line}" for line in text.splitlines()]
                continue
            words = command_words(action, lambda ref, var: shlex.quote(ref.source))
            note = f"  # {action.note}" if action.note and not condition else condition
            lines.append("     " + " ".join(words) + note)
        if step.kind == "ca_reply":
            lines.append(f"     certpipe writes {', '.join(step.outputs().values())} "
                         f"(leaf, then chain from its issuer up)")
        lines.append("")
    counts: dict[str, int] = {}
    for entry in planned:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    from certpipe.batch import selected_units
    from certpipe.engine import RunOptions, check_forced_names
    from certpipe.pipeline.model import check_confinement, parse_assignments

    workdir = workdir_of(args)
    units = selected_units(args.pipelines, workdir, parse_assignments(args.assignments),
                           args.only, args.shard)
    options = RunOptions(force=frozenset(args.force), rekey=args.rekey)
    for unit in units:
        check_confinement(unit.pipeline, unit.workdir)
        check_forced_names(unit.pipeline, args.force)
    for number, unit in enumerate(units):
        if number:
            sys.stdout.write("\n")
        planned = plan_steps(unit.pipeline, unit.workdir, options)
        sys.stdout.write(format_plan(unit.pipeline, unit.workdir, planned, unit.label))
    return 0
