"""Run several certificates: one or more pipeline files, each with one or many certificates.

A *unit* is one certificate of one pipeline file, with its own work
directory, lock and manifest:

- one file without ``certificates:``: the work directory itself;
- one file with ``certificates:``: ``WORKDIR/CERTIFICATE``;
- several files: each file gets ``WORKDIR/STEM`` (the file name without
  extension), and its certificates go below that as above.

Units run one after the other, or ``jobs`` at a time in threads: the work is
mostly waiting for openssl processes, which run in parallel. Every unit runs
to its end by default even when another fails; the exit code is the worst
one (see :func:`worst_exit_code`).

Like :mod:`certpipe.engine`, this module imports no third-party package and
no dataclasses (which import inspect), so an up-to-date run decided from the
manifests stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from certpipe import lazylog
from certpipe.engine import (
    INTERRUPTED, NOT_RUN, IdleWork, OpenSSLProvider, RunOptions, RunReport, StepReport,
    idle_tasks, run_from_cache, run_pipeline,
)
from certpipe.errors import (
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_PENDING, CertpipeError,
    PipelineError, UsageError,
)
from certpipe.fsutil import STATE_DIR, escape_reason
from certpipe.state import State, cache_key, file_sha256

if TYPE_CHECKING:
    from certpipe.pipeline.model import Pipeline

log = lazylog.get_logger("certpipe.batch")

# Exit codes from least to most severe: a run of several certificates exits
# with the most severe code any of them had.
SEVERITY = (EXIT_OK, EXIT_PENDING, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED)
INTERRUPTED_MESSAGE = "not run: the run was interrupted"
FAIL_FAST_MESSAGE = "not run: --fail-fast, and another certificate failed"
DIED_MESSAGE = "the worker process running this certificate stopped unexpectedly"


def worst_exit_code(codes: Sequence[int]) -> int:
    """Return the most severe exit code: 130, then 2, then 1, then 75, then 0."""
    rank = {code: index for index, code in enumerate(SEVERITY)}
    return max(codes, key=lambda code: rank.get(code, rank[EXIT_FAILED]), default=EXIT_OK)


def default_jobs() -> int:
    """Return the number of CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Source:
    """One pipeline file of the command line and where its files go."""

    def __init__(self, path: Path, workdir: Path, folder: str | None):
        self.path = path
        self.workdir = workdir
        self.folder = folder  # sub-folder of WORKDIR when several files are given
        self.key: str | None = None  # cache key of the file's bytes and the --set values
        self.pipelines: list[Pipeline] | None = None  # loaded and resolved, once needed

    def label(self, certificate: str | None) -> str:
        parts = [part for part in (self.folder, certificate) if part]
        return "/".join(parts)

    def unit_workdir(self, certificate: str | None) -> Path:
        return self.workdir / certificate if certificate else self.workdir


class Unit:
    """One certificate to run: its source file, name and work directory."""

    def __init__(self, source: Source, certificate: str | None, label: str, workdir: Path,
                 pipeline: Pipeline | None = None):
        self.source = source
        self.certificate = certificate
        self.label = label
        self.workdir = workdir
        # None while the unit may still be decided from its manifest.
        self.pipeline = pipeline


class BatchReport:
    """The outcome of a run of one or more pipeline files: one RunReport per certificate."""

    def __init__(self, sources: list[Source], workdir: Path,
                 error: CertpipeError | None = None):
        self.sources = sources
        self.workdir = workdir
        self.reports: list[RunReport] = []
        self.started_at = time.time()
        self.duration = 0.0
        self.error = error  # stopped before any certificate ran

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return worst_exit_code([report.exit_code for report in self.reports])

    @property
    def several(self) -> bool:
        """True when the run is more than one pipeline without certificates:."""
        return len(self.sources) > 1 or any(r.certificate for r in self.reports)


class Interrupted(CertpipeError):
    """Ctrl-C or SIGTERM stopped the run (exit 130)."""

    exit_code = EXIT_INTERRUPTED


# --- choosing the work directories -------------------------------------------------------


def make_sources(paths: Sequence[Path], workdir: Path) -> list[Source]:
    """Pair each pipeline file with its work directory; several files get a sub-folder each."""
    if len(paths) == 1:
        return [Source(paths[0], workdir, None)]
    sources: list[Source] = []
    seen: dict[str, Path] = {}
    for path in paths:
        folder = path.stem
        if not folder or folder.startswith("."):
            raise UsageError(f"{path}: with several pipeline files, each file's name (without "
                             f"extension) names its folder in the work directory, and "
                             f"{folder!r} cannot; rename the file")
        if folder in seen:
            raise UsageError(f"{path} and {seen[folder]} would both use the folder "
                             f"{workdir / folder}; rename one of them, or run them separately "
                             f"with different --workdir")
        seen[folder] = path
        sources.append(Source(path, workdir / folder, folder))
    return sources


def unit_cache_key(key: str, certificate: str | None) -> str:
    """Return the cache key of one certificate of a pipeline whose cache key is *key*."""
    if certificate is None:
        return key
    return hashlib.sha256(f"{key}\0{certificate}".encode()).hexdigest()


def cached_names(source: Source) -> list[str | None] | None:
    """Return the certificate names the manifest cached for the file, without loading it.

    [None] stands for a pipeline without certificates:. None means that
    nothing usable is cached, so the file must be loaded.
    """
    if source.key is None or not (source.workdir / STATE_DIR).is_dir():
        return None
    if escape_reason(source.workdir, STATE_DIR):
        return None
    state = State.load(source.workdir)
    if state.pipeline.get("cache_key") != source.key:
        return None
    names = state.pipeline.get("certificates")
    if names is None:
        return [None] if isinstance(state.pipeline.get("steps"), list) else None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def remember_names(source: Source) -> None:
    """Cache the certificate names of a file with certificates: in its work directory."""
    if source.key is None or not source.pipelines or source.pipelines[0].certificate is None:
        return
    names = [pipeline.certificate for pipeline in source.pipelines]
    state = State.load(source.workdir)
    entry = {"cache_key": source.key, "path": str(source.path), "certificates": names}
    if state.pipeline == entry:
        return
    source.workdir.mkdir(parents=True, exist_ok=True)
    state.pipeline = entry
    state.save()


# --- selecting certificates --------------------------------------------------------------


class Selection:
    """The certificates selected to run: ``--only`` patterns and ``--shard INDEX/TOTAL``."""

    def __init__(self, patterns: tuple[str, ...] = (), shard: tuple[int, int] | None = None):
        self.patterns = patterns
        self.shard = shard

    @classmethod
    def parse(cls, only: Sequence[str], shard: str | None) -> "Selection":
        patterns = tuple(p.strip() for value in only for p in value.split(",") if p.strip())
        if only and not patterns:
            raise UsageError("--only needs at least one certificate name")
        return cls(patterns, parse_shard(shard) if shard else None)

    @property
    def active(self) -> bool:
        return bool(self.patterns) or self.shard is not None

    def matches(self, unit: Unit, pattern: str) -> bool:
        import fnmatch

        names = [unit.label]
        if unit.certificate:
            names.append(unit.certificate)
        return any(fnmatch.fnmatchcase(name, pattern) for name in names)

    def apply(self, units: list[Unit]) -> list[Unit]:
        """Return the selected units, in order; raise UsageError for a pattern that matches none."""
        chosen = units
        if self.patterns:
            unmatched = [p for p in self.patterns if not any(self.matches(u, p) for u in units)]
            if unmatched:
                names = [u.label for u in units if u.label]
                known = ", ".join(names[:10]) + (f" and {len(names) - 10} more"
                                                 if len(names) > 10 else "")
                raise UsageError(f"--only {unmatched[0]}: no certificate of that name"
                                 f"{'; certificates: ' + known if known else ''}")
            chosen = [u for u in units if any(self.matches(u, p) for p in self.patterns)]
        if self.shard is not None:
            index, total = self.shard
            chosen = [u for u in chosen if shard_of(u.label, total) == index]
        return chosen


def parse_shard(text: str) -> tuple[int, int]:
    index_text, sep, total_text = text.partition("/")
    try:
        index, total = int(index_text), int(total_text)
    except ValueError:
        index = total = 0
    if not sep or total < 1 or not 1 <= index <= total:
        raise UsageError(f"--shard {text}: expected INDEX/TOTAL with 1 <= INDEX <= TOTAL, "
                         f"such as 2/4")
    return index, total


def shard_of(label: str, total: int) -> int:
    """Return the shard (1 to *total*) of a certificate, from its name alone.

    The name's CRC-32 decides, so adding or removing other certificates never
    moves a certificate to another shard.
    """
    import zlib

    return zlib.crc32(label.encode("utf-8")) % total + 1


# --- loading -----------------------------------------------------------------------------


def load_source(source: Source, overrides: dict[str, str]) -> list[Pipeline]:
    from certpipe.pipeline.model import load_pipelines

    lazylog.setup()  # the modules of the full path log through logging directly
    if source.pipelines is None:
        source.pipelines = load_pipelines(source.path, overrides)
    return source.pipelines


def plan_units(sources: list[Source], overrides: dict[str, str], selection: Selection,
               use_cache: bool) -> list[Unit]:
    """Return the selected units; files whose names the manifest caches are not loaded."""
    units: list[Unit] = []
    for source in sources:
        names = cached_names(source) if use_cache else None
        if names is None:
            pipelines = load_source(source, overrides)
            names = [pipeline.certificate for pipeline in pipelines]
        for index, name in enumerate(names):
            pipeline = source.pipelines[index] if source.pipelines is not None else None
            units.append(Unit(source, name, source.label(name), source.unit_workdir(name),
                              pipeline))
    return selection.apply(units)


def selected_units(paths: Sequence[Path], workdir: Path, overrides: dict[str, str],
                   only: Sequence[str], shard: str | None) -> list[Unit]:
    """Load every file and return the units that --only and --shard select, for plan and script."""
    sources = make_sources(paths, workdir)
    return plan_units(sources, overrides, Selection.parse(only, shard), use_cache=False)


def ensure_loaded(unit: Unit, overrides: dict[str, str]) -> Pipeline:
    if unit.pipeline is None:
        pipelines = load_source(unit.source, overrides)
        matching = [p for p in pipelines if p.certificate == unit.certificate]
        if not matching:
            # The file changed since its names were cached.
            raise PipelineError(f"{unit.source.path}: has no certificate '{unit.certificate}' "
                                f"any more; run without --only to see its certificates")
        unit.pipeline = matching[0]
    return unit.pipeline


# --- running -----------------------------------------------------------------------------


class BatchOptions:
    """How to run the certificates: variables, run options, openssl, jobs and selection."""

    def __init__(self, overrides: dict[str, str], options: RunOptions,
                 openssl: str | None = None, jobs: int = 1, fail_fast: bool = False,
                 selection: Selection | None = None, use_cache: bool = True,
                 timeout: float | None = None,
                 check_files: Callable[[Path, list[tuple[str, str]]], None] | None = None):
        self.overrides = overrides
        self.options = options
        self.openssl = openssl
        self.jobs = jobs
        self.fail_fast = fail_fast
        self.selection = selection or Selection()
        self.use_cache = use_cache  # False when a --set value is malformed: load, report it
        self.timeout = timeout  # seconds per openssl call; None: the pipeline's own
        # Called before anything runs with a work directory and the (step name,
        # path) pairs of the files a certificate's steps use. It raises to stop the run.
        self.check_files = check_files


StepPrinter = Callable[[StepReport, str], None]


def run_batch(paths: Sequence[Path], workdir: Path, batch: BatchOptions,
              on_step: StepPrinter) -> BatchReport:
    """Run the selected certificates of the pipeline files in *paths*.

    Raise CertpipeError for a problem found before any certificate runs (an
    invalid pipeline, an unknown --only name); each certificate's own
    failures are in its RunReport.
    """
    sources = make_sources(paths, workdir)
    result = BatchReport(sources, workdir)
    started = time.monotonic()
    if batch.use_cache:
        for source in sources:
            sha256 = file_sha256(source.path)
            if sha256 is not None:
                source.key = cache_key(sha256, batch.overrides)
    units = plan_units(sources, batch.overrides, batch.selection, batch.use_cache)
    if not units:
        # Only a shard can be empty: --only fails for a name that matches nothing.
        index, total = batch.selection.shard or (0, 0)
        log.warning("--shard %s/%s holds no certificate; nothing to do", index, total)
        result.duration = time.monotonic() - started
        return result
    pending = _decide_from_cache(units, batch, on_step, result)
    if pending:
        for unit in pending:
            ensure_loaded(unit, batch.overrides)
        _check_before_running(pending, batch)
        for source in sources:
            if source.pipelines is not None:
                remember_names(source)
        _run_units(pending, batch, on_step, result)
    order = {unit.label: index for index, unit in enumerate(units)}
    result.reports.sort(key=lambda report: order.get(report.label, 0))
    result.duration = time.monotonic() - started
    return result


def _decide_from_cache(units: list[Unit], batch: BatchOptions, on_step: StepPrinter,
                       result: BatchReport) -> list[Unit]:
    """Report units that are up to date from their manifests; return the others."""
    options = batch.options
    if not batch.use_cache or options.force or options.rekey:
        return units
    pending = []
    for unit in units:
        key = unit.source.key
        report = None
        if key is not None:
            unit_options = RunOptions(lock_wait=options.lock_wait)
            report = run_from_cache(unit.workdir, unit_cache_key(key, unit.certificate),
                                    unit_options,
                                    lambda step, label=unit.label: on_step(step, label))
        if report is None:
            pending.append(unit)
            continue
        report.pipeline_path = str(unit.source.path)
        report.label = unit.label
        if batch.check_files is not None:
            batch.check_files(unit.workdir, [(step.name, value) for step in report.steps
                                             for value in step.artifacts])
        result.reports.append(report)
    return pending


def _check_before_running(units: list[Unit], batch: BatchOptions) -> None:
    from certpipe.engine import check_forced_names, input_values, output_values

    for unit in units:
        assert unit.pipeline is not None
        check_forced_names(unit.pipeline, batch.options.force)
        if batch.check_files is not None:
            batch.check_files(unit.workdir, [
                (step.name, value) for step in unit.pipeline.steps
                for value in [*input_values(step), *output_values(step)]])


def _run_units(units: list[Unit], batch: BatchOptions, on_step: StepPrinter,
               result: BatchReport) -> None:
    provider = OpenSSLProvider(batch.openssl)
    jobs = max(1, min(batch.jobs, len(units)))
    options = batch.options
    pipelines = [unit.pipeline for unit in units if unit.pipeline is not None]
    if jobs == 1:
        options.idle_work = IdleWork(idle_tasks(pipelines))
        _run_in_turn(units, provider, batch, on_step, result)
        return
    from certpipe.workers import run_in_processes

    # Import and look up once here what every worker needs, before the fork.
    IdleWork([*idle_tasks(pipelines), _import_sh]).run_all()
    options.idle_work = None
    with contextlib.suppress(CertpipeError):  # each certificate reports an unusable openssl
        provider.get(State.load(units[0].workdir))
    result.reports += run_in_processes(
        len(units), jobs,
        run_one=lambda index, report_step: _run_unit(units[index], provider, batch,
                                                     report_step),
        on_step=on_step,
        skipped=lambda index, reason: _not_started(units[index], reason),
        cancel=options.cancel,
        fail_fast=batch.fail_fast,
        reasons=(INTERRUPTED_MESSAGE, FAIL_FAST_MESSAGE, DIED_MESSAGE),
    )


def _run_in_turn(units: list[Unit], provider: OpenSSLProvider, batch: BatchOptions,
                 on_step: StepPrinter, result: BatchReport) -> None:
    stopped = ""
    for unit in units:
        if stopped:
            result.reports.append(_not_started(unit, stopped))
            continue
        try:
            report = _run_unit(unit, provider, batch, on_step)
        except KeyboardInterrupt:
            # Between two steps: the steps inside a run report their own interruption.
            report = _not_started(unit, INTERRUPTED_MESSAGE)
        result.reports.append(report)
        if report.exit_code == EXIT_INTERRUPTED:
            stopped = INTERRUPTED_MESSAGE
        elif batch.fail_fast and report.exit_code in (EXIT_FAILED, EXIT_INVALID):
            stopped = FAIL_FAST_MESSAGE


def _import_sh() -> None:
    import sh  # noqa: F401 - imported once before the fork rather than in each worker


def _run_unit(unit: Unit, provider: OpenSSLProvider, batch: BatchOptions,
              on_step: StepPrinter) -> RunReport:
    from certpipe.pipeline.model import check_confinement
    from certpipe.steps.base import StepContext

    pipeline = unit.pipeline
    assert pipeline is not None
    options = batch.options
    unit_options = RunOptions(force=options.force, rekey=options.rekey,
                              lock_wait=options.lock_wait, cancel=options.cancel,
                              idle_work=options.idle_work)
    if unit.source.key is not None:
        unit_options.cache_key = unit_cache_key(unit.source.key, unit.certificate)
    try:
        check_confinement(pipeline, unit.workdir)
        ctx = StepContext(workdir=unit.workdir, openssl_factory=provider,
                          timeout=batch.timeout or pipeline.timeout, rekey=options.rekey)
        report = run_pipeline(pipeline, ctx, unit_options,
                              lambda step: on_step(step, unit.label))
    except CertpipeError as exc:
        report = RunReport(pipeline.name, str(pipeline.path), pipeline.sha256, unit.workdir,
                           exit_code=exc.exit_code, error=exc, certificate=unit.certificate)
    report.pipeline_path = str(unit.source.path)
    report.label = unit.label
    return report


def _not_started(unit: Unit, message: str) -> RunReport:
    """Return the report of a certificate that did not run: interrupted, --fail-fast or lost."""
    pipeline = unit.pipeline
    error: CertpipeError | None = None
    if message == INTERRUPTED_MESSAGE:
        error = Interrupted("interrupted")
    elif message == DIED_MESSAGE:
        error = CertpipeError(DIED_MESSAGE + "; run it again")
    report = RunReport(pipeline.name if pipeline else unit.source.path.stem,
                       str(unit.source.path), pipeline.sha256 if pipeline else "",
                       unit.workdir, certificate=unit.certificate, label=unit.label,
                       exit_code=error.exit_code if error else EXIT_OK, error=error)
    report.not_started = message
    if pipeline is not None:
        report.steps = [StepReport(step.name, step.kind, NOT_RUN, message=message)
                        for step in pipeline.steps]
    return report


def summary_counts(result: BatchReport) -> dict[str, list[str]]:
    """Group the certificates' labels by outcome: ok, pending, failed, invalid, interrupted, not run."""
    groups: dict[str, list[str]] = {}
    for report in result.reports:
        if report.not_started and report.exit_code == EXIT_OK:
            outcome = "not run"
        elif report.exit_code == EXIT_OK:
            outcome = "done"
        elif report.exit_code == EXIT_PENDING:
            outcome = "pending"
        elif report.exit_code == EXIT_INTERRUPTED or any(s.status == INTERRUPTED
                                                        for s in report.steps):
            outcome = "interrupted"
        elif report.exit_code == EXIT_INVALID:
            outcome = "invalid"
        else:
            outcome = "failed"
        groups.setdefault(outcome, []).append(report.label or report.pipeline_name)
    return groups


def describe_sources(result: BatchReport) -> list[dict[str, Any]]:
    """Return name, path and SHA-256 of each pipeline file, for reports."""
    found = []
    for source in result.sources:
        pipelines = source.pipelines or []
        reports = [r for r in result.reports if r.pipeline_path == str(source.path)]
        name = pipelines[0].name if pipelines else (reports[0].pipeline_name if reports
                                                    else source.path.stem)
        sha256 = file_sha256(source.path)
        found.append({"name": name, "path": str(source.path), "sha256": sha256})
    return found
