#!/usr/bin/env python3
"""Benchmark certpipe against the plain openssl script it exports.

Runs each side alternately, many times, in fresh folders, and prints medians
and ratios. The limits below are checked here and nowhere else; the script
exits 1 when one is missed, so it can run in a scheduled CI job.

    python bench/bench.py                 # everything, default run counts
    python bench/bench.py --runs 30 --scale 10,200

Timings depend on the machine; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "iis-local-ca.yaml"

# The targets: a fresh run costs at most 10% more than the exported script,
# and an up-to-date re-run at most twice `python -c "import yaml"`.
MAX_FRESH_RATIO = 1.10
MAX_UP_TO_DATE_RATIO = 2.0
MAX_J2_OVER_J1 = 0.6
MAX_PER_CERT_GROWTH = 1.10
MAX_PEAK_MB = 150


def certpipe_cmd() -> list[str]:
    found = shutil.which("certpipe")
    return [found] if found else [sys.executable, "-m", "certpipe"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{result.stderr.decode()}")
    return elapsed


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench_fresh(runs: int, env: dict[str, str], scratch: Path) -> tuple[float, float]:
    script = scratch / "flow.sh"
    script.write_bytes(subprocess.run(certpipe_cmd() + ["script", str(PIPELINE)], env=env,
                                      check=True, capture_output=True).stdout)
    ours, plain = [], []
    for index in range(runs):
        for side in ("certpipe", "script") if index % 2 == 0 else ("script", "certpipe"):
            folder = scratch / f"{side}-{index}"
            folder.mkdir()
            if side == "certpipe":
                ours.append(timed(certpipe_cmd() + ["run", str(PIPELINE), "--workdir",
                                                     str(folder), "-q"], folder, env))
            else:
                plain.append(timed(["sh", str(script)], folder, env))
            shutil.rmtree(folder)
    return median_ms(ours), median_ms(plain)


def bench_up_to_date(runs: int, env: dict[str, str], scratch: Path) -> tuple[float, float]:
    folder = scratch / "up-to-date"
    folder.mkdir()
    run = certpipe_cmd() + ["run", str(PIPELINE), "--workdir", str(folder), "-q"]
    timed(run, folder, env)
    ours, baseline = [], []
    for _ in range(runs):
        ours.append(timed(run, folder, env))
        baseline.append(timed([sys.executable, "-c", "import yaml"], folder, env))
    return median_ms(ours), median_ms(baseline)


def bench_help(runs: int, env: dict[str, str], scratch: Path) -> float:
    return median_ms([timed(certpipe_cmd() + ["--help"], scratch, env) for _ in range(runs)])


def many_sites_pipeline(path: Path, count: int) -> None:
    sites = "\n".join(f"  - name: site{i}\n    vars: {{host: site{i}.example.test}}"
                      for i in range(count))
    text = PIPELINE.read_text().split("steps:", 1)[1]
    path.write_text(textwrap.dedent(f"""\
        version: 1
        name: many
        certificates:
        {textwrap.indent(sites, '')}
        steps:""") + text)


def bench_scale(counts: list[int], env: dict[str, str], scratch: Path) -> list[tuple]:
    rows = []
    for count in counts:
        pipeline = scratch / f"many-{count}.yaml"
        many_sites_pipeline(pipeline, count)
        for jobs in (1, 2):
            folder = scratch / f"scale-{count}-{jobs}"
            folder.mkdir()
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            seconds = timed(certpipe_cmd() + ["run", str(pipeline), "--workdir", str(folder),
                                              "-q", "-j", str(jobs)], folder, env)
            peak_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            rows.append((count, jobs, seconds, seconds / count, peak_kb / 1024))
            shutil.rmtree(folder)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per side (default 21)")
    parser.add_argument("--scale", default="10,200",
                        help="certificate counts for the scale series (empty to skip)")
    args = parser.parse_args()
    env = {**os.environ, "PFX_PASSWORD": "bench-password", "NO_COLOR": "1"}
    failures = []
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, "
          f"{subprocess.run(['openssl', 'version'], capture_output=True, text=True).stdout.strip()}")
    with tempfile.TemporaryDirectory(prefix="certpipe-bench-") as tmp:
        scratch = Path(tmp)
        ours, plain = bench_fresh(args.runs, env, scratch)
        ratio = ours / plain
        print(f"fresh run: certpipe {ours:.0f} ms, exported script {plain:.0f} ms, "
              f"ratio {ratio:.2f} (limit {MAX_FRESH_RATIO})")
        if ratio > MAX_FRESH_RATIO:
            failures.append("fresh run")
        ours, baseline = bench_up_to_date(args.runs, env, scratch)
        ratio = ours / baseline
        print(f"up-to-date re-run: certpipe {ours:.0f} ms, python -c 'import yaml' "
              f"{baseline:.0f} ms, ratio {ratio:.2f} (limit {MAX_UP_TO_DATE_RATIO})")
        if ratio > MAX_UP_TO_DATE_RATIO:
            failures.append("up-to-date re-run")
        print(f"certpipe --help: {bench_help(args.runs, env, scratch):.0f} ms")
        counts = [int(c) for c in args.scale.split(",") if c]
        if counts:
            rows = bench_scale(counts, env, scratch)
            print("certificates  jobs  seconds  per certificate  peak MB")
            for count, jobs, seconds, per_cert, peak in rows:
                print(f"{count:12d}  {jobs:4d}  {seconds:7.2f}  {per_cert * 1000:12.0f} ms  "
                      f"{peak:7.0f}")
            by_key = {(r[0], r[1]): r for r in rows}
            largest, smallest = max(counts), min(counts)
            j1, j2 = by_key[(largest, 1)], by_key[(largest, 2)]
            print(f"{largest} certificates: -j 2 / -j 1 = {j2[2] / j1[2]:.2f} "
                  f"(limit {MAX_J2_OVER_J1}); per-certificate cost at {largest} / at {smallest} "
                  f"= {j1[3] / by_key[(smallest, 1)][3]:.2f} (limit {MAX_PER_CERT_GROWTH})")
            if j2[2] / j1[2] > MAX_J2_OVER_J1:
                failures.append("-j 2 speed-up")
            if j1[3] / by_key[(smallest, 1)][3] > MAX_PER_CERT_GROWTH:
                failures.append("per-certificate cost growth")
            if max(r[4] for r in rows) > MAX_PEAK_MB:
                failures.append("peak memory")
    if failures:
        print("missed: " + ", ".join(failures))
        return 1
    print("all limits met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
