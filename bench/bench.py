#!/usr/bin/env python3
"""Benchmark certpipe against the plain openssl script it exports.

Each comparison runs both sides alternately, many times, in fresh folders,
and prints the median, the interquartile range and the extremes of each, and
the ratio of the medians. The limits below are checked here and nowhere
else. The script exits 1 when one is missed, so it can run as a scheduled
CI job.

    python bench/bench.py                        # everything, default run counts
    python bench/bench.py --runs 41 --scale ""   # single certificate only
    python bench/bench.py --certpipe /opt/venv/bin/certpipe --scale 10,200

Parts:
  fresh       certpipe run vs 'sh SCRIPT' from 'certpipe script', new folder each time
  premade     the same, starting from an existing RSA key (no key generation, less noise)
  up-to-date  a re-run that finds everything up to date vs python -c "import yaml"
  help        certpipe --help
  calls       openssl processes per fresh run on each side (one untimed run)
  scale       one pipeline with N certificates, run with -j 1 and -j 2

Timings depend on the machine; compare ratios, not seconds. The Python that
runs this script must have PyYAML (it writes the scale pipelines).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "iis-local-ca.yaml"
KEY_FILE = "www.example.test.key"  # the key the pipeline makes, by its ${host}
PARTS = ("fresh", "premade", "up-to-date", "help", "calls", "scale")

# The targets. A fresh run costs at most 10% more than the exported script,
# and an up-to-date re-run at most twice `python -c "import yaml"`. With many
# certificates, two jobs take at most 0.6 times as long as one, and the cost
# per certificate grows by at most 10% from the smallest to the largest set.
# certpipe's processes together stay under 150 MB (PSS, sampled).
MAX_FRESH_RATIO = 1.10
MAX_UP_TO_DATE_RATIO = 2.0
MAX_J2_OVER_J1 = 0.6
MAX_PER_CERT_GROWTH = 1.10
MAX_PEAK_MB = 150


def find_certpipe(given: str | None) -> list[str]:
    if given:
        return [given]
    beside = Path(sys.executable).with_name("certpipe")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("certpipe")
    return [found] if found else [sys.executable, "-m", "certpipe"]


def interpreter_of(certpipe: list[str]) -> str:
    """Return the Python that runs *certpipe*, so the baseline uses the same one."""
    if len(certpipe) > 1:
        return certpipe[0]
    first = Path(certpipe[0]).read_bytes().split(b"\n", 1)[0]
    if first.startswith(b"#!"):
        return first[2:].decode().strip().split()[0]
    return sys.executable


def tree_pss_mb(root: int) -> float:
    """Return the proportional set size of *root* and its descendants, in MB.

    PSS splits each shared page among the processes that share it, so forked
    workers are not counted as if each had its own copy of the parent.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total_kb = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
                total_kb += next(int(line.split()[1]) for line in rollup
                                 if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total_kb / 1024


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str],
                 sample: bool = False) -> tuple[float, float]:
    """Run *cmd*; return its wall-clock seconds and its peak memory in MB.

    The memory is the largest resident set of any one process, or with
    *sample* the largest total PSS of the process tree, read every 0.2 s.
    """
    started = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    peak_tree = 0.0
    if sample:
        while process.poll() is None:
            peak_tree = max(peak_tree, tree_pss_mb(process.pid))
            time.sleep(0.2)
    stderr = process.stderr.read() if process.stderr else b""
    if process.returncode is None:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / 1024
    else:
        peak = 0.0
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd} (exit {process.returncode}):\n"
                         f"{stderr.decode(errors='replace')}")
    return elapsed, max(peak, peak_tree)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    return run_measured(cmd, cwd, env)[0]


class Series:
    """Timings of one side of a comparison, in seconds."""

    def __init__(self, name: str):
        self.name = name
        self.values: list[float] = []

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def describe(self) -> str:
        ms = sorted(v * 1000 for v in self.values)
        quartiles = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
        return (f"{self.name}: median {statistics.median(ms):.0f} ms, middle half "
                f"{quartiles[0]:.0f}-{quartiles[2]:.0f} ms, range {ms[0]:.0f}-{ms[-1]:.0f} ms "
                f"({len(ms)} runs)")


def paired_ratio(ours: Series, theirs: Series) -> str:
    """Describe the ratios of runs made next to each other, which a slow spell affects alike."""
    ratios = sorted(a / b for a, b in zip(ours.values, theirs.values))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return (f"per pair of neighbouring runs: median {statistics.median(ratios):.2f}, middle "
            f"half {quartiles[0]:.2f}-{quartiles[2]:.2f}")


class OtherLoad:
    """How much CPU time processes other than the benchmark's used while a part ran.

    Other programs on the machine (a test suite, a build) slow both sides
    of a comparison, and unevenly, so the benchmark prints how busy they
    kept it. Linux only: it reads /proc/stat.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.busy = self._busy_seconds()
        self.ours = self._our_seconds()

    @staticmethod
    def _busy_seconds() -> float:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _our_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime + own.ru_utime + own.ru_stime

    def describe(self) -> str:
        elapsed = time.monotonic() - self.started
        other = (self._busy_seconds() - self.busy) - (self._our_seconds() - self.ours)
        share = max(0.0, other) / (elapsed * (os.cpu_count() or 1))
        warning = " (busy: the timings are disturbed)" if share > 0.05 else ""
        return f"  other processes used {share:.0%} of the machine meanwhile{warning}"


def export_script(certpipe: list[str], env: dict[str, str], scratch: Path) -> Path:
    script = scratch / "flow.sh"
    script.write_bytes(subprocess.run(certpipe + ["script", str(PIPELINE)], env=env,
                                      check=True, capture_output=True).stdout)
    return script


def bench_fresh(runs: int, certpipe: list[str], env: dict[str, str], scratch: Path,
                key: bytes | None) -> tuple[Series, Series]:
    """Alternate certpipe and the script, each in a new folder (with *key* in it, if given)."""
    script = export_script(certpipe, env, scratch)
    ours, plain = Series("certpipe run"), Series("exported script")
    for index in range(runs + 1):
        order = ("certpipe", "script") if index % 2 == 0 else ("script", "certpipe")
        for side in order:
            folder = scratch / f"{side}-{index}"
            folder.mkdir()
            if key is not None:
                (folder / KEY_FILE).write_bytes(key)
                (folder / KEY_FILE).chmod(0o600)
            if side == "certpipe":
                seconds = timed(certpipe + ["run", str(PIPELINE), "--workdir", str(folder),
                                            "-q"], folder, env)
            else:
                seconds = timed(["sh", str(script)], folder, env)
            if index > 0:  # the first round warms caches and is not counted
                (ours if side == "certpipe" else plain).values.append(seconds)
            shutil.rmtree(folder)
    return ours, plain


def bench_up_to_date(runs: int, certpipe: list[str], python: str, env: dict[str, str],
                     scratch: Path) -> tuple[Series, Series]:
    folder = scratch / "up-to-date"
    folder.mkdir()
    run = certpipe + ["run", str(PIPELINE), "--workdir", str(folder), "-q"]
    timed(run, folder, env)
    ours, baseline = Series("certpipe run, up to date"), Series("python -c 'import yaml'")
    for index in range(runs + 1):
        pair = [(ours, run), (baseline, [python, "-c", "import yaml"])]
        for series, cmd in pair if index % 2 == 0 else reversed(pair):
            seconds = timed(cmd, folder, env)
            if index > 0:
                series.values.append(seconds)
    shutil.rmtree(folder)
    return ours, baseline


def bench_help(runs: int, certpipe: list[str], env: dict[str, str], scratch: Path) -> Series:
    series = Series("certpipe --help")
    timed(certpipe + ["--help"], scratch, env)
    series.values = [timed(certpipe + ["--help"], scratch, env) for _ in range(runs)]
    return series


def count_openssl_calls(certpipe: list[str], env: dict[str, str],
                        scratch: Path) -> tuple[int, int]:
    """Run each side once through an openssl that logs its calls; return both counts."""
    real = shutil.which("openssl", path=env.get("PATH"))
    shim_dir = scratch / "shim"
    shim_dir.mkdir()
    log = scratch / "calls.log"
    shim = shim_dir / "openssl"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    counting = {**env, "PATH": f"{shim_dir}:{env.get('PATH', '')}"}
    counting.pop("CERTPIPE_OPENSSL", None)
    script = export_script(certpipe, env, scratch)
    counts = []
    for cmd in (certpipe + ["run", str(PIPELINE), "--workdir", ".", "-q"], ["sh", str(script)]):
        folder = scratch / "count"
        folder.mkdir()
        log.write_text("")
        timed(cmd, folder, counting)
        counts.append(len(log.read_text().splitlines()))
        shutil.rmtree(folder)
    return counts[0], counts[1]


def many_certificates_pipeline(path: Path, count: int) -> None:
    """Write the benchmark pipeline's steps for *count* certificates, each its own host."""
    import yaml

    data = yaml.safe_load(PIPELINE.read_text())
    data["name"] = f"bench-{count}"
    data["certificates"] = [{"name": f"site{i:04d}", "vars": {"host": f"site{i:04d}.example.test"}}
                            for i in range(count)]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def bench_scale(counts: list[int], jobs: list[int], runs: int, certpipe: list[str],
                env: dict[str, str], scratch: Path) -> dict[tuple[int, int], tuple[float, float]]:
    """Return (median seconds, peak MB) per (certificates, jobs).

    The timed runs report the largest single process. Sampling the PSS of
    the whole process tree takes CPU time that a run with as many jobs as
    CPUs would miss, so it happens in one more, untimed run per job count.
    """
    results: dict[tuple[int, int], tuple[float, float]] = {}
    for count in counts:
        pipeline = scratch / f"many-{count}.yaml"
        many_certificates_pipeline(pipeline, count)
        samples: dict[int, list[tuple[float, float]]] = {j: [] for j in jobs}
        for index in range(runs + 1):
            for job in jobs if index % 2 == 0 else list(reversed(jobs)):
                folder = scratch / f"scale-{count}-{job}-{index}"
                folder.mkdir()
                command = certpipe + ["run", str(pipeline), "--workdir", str(folder), "-q",
                                      "-j", str(job)]
                # The last round only samples memory.
                samples[job].append(run_measured(command, folder, env, sample=index == runs))
                shutil.rmtree(folder)
        for job, values in samples.items():
            results[(count, job)] = (statistics.median(v[0] for v in values[:-1]),
                                     max(v[1] for v in values))
    return results


def machine_line(env: dict[str, str]) -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                             env=env).stdout.strip()
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"machine: {platform.machine()} {model}, {os.cpu_count()} CPUs, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"{openssl}")


class Context:
    """What every part needs: the command measured, its Python, the environment, a folder."""

    def __init__(self, args: argparse.Namespace, scratch: Path):
        self.args = args
        self.scratch = scratch
        self.certpipe = find_certpipe(args.certpipe)
        self.python = interpreter_of(self.certpipe)
        self.env = {**os.environ, "PFX_PASSWORD": "bench-password", "NO_COLOR": "1"}
        # Users' Pythons cache bytecode; without it every run would compile certpipe anew.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)


def part_fresh(ctx: Context, failures: list[str]) -> None:
    load = OtherLoad()
    ours, plain = bench_fresh(ctx.args.runs, ctx.certpipe, ctx.env, ctx.scratch, None)
    ratio = ours.median / plain.median
    print("fresh run (RSA-2048 key, local CA, .p7b, chain, PFX):")
    print(f"  {ours.describe()}\n  {plain.describe()}")
    print(f"  ratio of the medians {ratio:.2f} (limit {MAX_FRESH_RATIO}); "
          f"{paired_ratio(ours, plain)}")
    print(load.describe())
    if ratio > MAX_FRESH_RATIO:
        failures.append("fresh run")


def part_premade(ctx: Context, failures: list[str]) -> None:
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          "rsa_keygen_bits:2048"], check=True, capture_output=True).stdout
    load = OtherLoad()
    ours, plain = bench_fresh(ctx.args.runs, ctx.certpipe, ctx.env, ctx.scratch, key)
    print("fresh run with an existing key (no key generation; for information):")
    print(f"  {ours.describe()}\n  {plain.describe()}")
    print(f"  ratio of the medians {ours.median / plain.median:.2f}; "
          f"{paired_ratio(ours, plain)}")
    print(load.describe())


def part_up_to_date(ctx: Context, failures: list[str]) -> None:
    load = OtherLoad()
    ours, baseline = bench_up_to_date(ctx.args.runs, ctx.certpipe, ctx.python, ctx.env,
                                      ctx.scratch)
    ratio = ours.median / baseline.median
    print("up-to-date re-run:")
    print(f"  {ours.describe()}\n  {baseline.describe()}")
    print(f"  ratio of the medians {ratio:.2f} (limit {MAX_UP_TO_DATE_RATIO}); "
          f"{paired_ratio(ours, baseline)}")
    print(load.describe())
    if ratio > MAX_UP_TO_DATE_RATIO:
        failures.append("up-to-date re-run")


def part_help(ctx: Context, failures: list[str]) -> None:
    print(bench_help(ctx.args.runs, ctx.certpipe, ctx.env, ctx.scratch).describe())


def part_calls(ctx: Context, failures: list[str]) -> None:
    ours_calls, script_calls = count_openssl_calls(ctx.certpipe, ctx.env, ctx.scratch)
    print(f"openssl processes per fresh run: certpipe {ours_calls}, exported script "
          f"{script_calls}")


def part_scale(ctx: Context, failures: list[str]) -> None:
    counts = sorted(int(c) for c in ctx.args.scale.split(",") if c)
    load = OtherLoad()
    results = bench_scale(counts, [1, 2], ctx.args.scale_runs, ctx.certpipe, ctx.env,
                          ctx.scratch)
    print("certificates  jobs  seconds  per certificate  peak MB (PSS of all its processes)")
    for (count, job), (seconds, peak) in sorted(results.items()):
        print(f"{count:12d}  {job:4d}  {seconds:7.2f}  {seconds / count * 1000:12.0f} ms"
              f"  {peak:7.0f}")
    largest, smallest = counts[-1], counts[0]
    speedup = results[(largest, 2)][0] / results[(largest, 1)][0]
    growth = (results[(largest, 1)][0] / largest) / (results[(smallest, 1)][0] / smallest)
    peak = max(value[1] for value in results.values())
    print(f"  {largest} certificates: -j 2 / -j 1 = {speedup:.2f} (limit {MAX_J2_OVER_J1})")
    print(f"  cost per certificate at {largest} / at {smallest} = {growth:.2f} "
          f"(limit {MAX_PER_CERT_GROWTH})")
    print(f"  peak memory {peak:.0f} MB (limit {MAX_PEAK_MB})")
    print(load.describe())
    if speedup > MAX_J2_OVER_J1:
        failures.append("-j 2 speed-up")
    if growth > MAX_PER_CERT_GROWTH:
        failures.append("per-certificate cost growth")
    if peak > MAX_PEAK_MB:
        failures.append("peak memory")


PART_RUNNERS = {"fresh": part_fresh, "premade": part_premade, "up-to-date": part_up_to_date,
                "help": part_help, "calls": part_calls, "scale": part_scale}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21,
                        help="timed runs per side of each comparison (default 21)")
    parser.add_argument("--scale", default="10,200",
                        help="certificate counts for the scale series (default 10,200; "
                             "empty to skip)")
    parser.add_argument("--scale-runs", type=int, default=1,
                        help="runs per certificate count and job count (default 1)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default: {','.join(PARTS)})")
    parser.add_argument("--certpipe", help="certpipe command to measure (default: the one "
                                           "beside this Python, then PATH)")
    args = parser.parse_args()
    parts = {p for p in args.parts.split(",") if p}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown part {sorted(unknown)[0]}; parts: {', '.join(PARTS)}")
    if not args.scale:
        parts.discard("scale")

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="certpipe-bench-") as tmp:
        ctx = Context(args, Path(tmp))
        print(machine_line(ctx.env))
        print(f"command: {' '.join([sys.executable, *sys.argv])}")
        print(f"certpipe: {' '.join(ctx.certpipe)} (Python {ctx.python})")
        for name in PARTS:
            if name in parts:
                PART_RUNNERS[name](ctx, failures)

    if failures:
        print("missed: " + ", ".join(failures))
        return 1
    print("all limits met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
