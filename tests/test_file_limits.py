"""User-named files: only regular files are read, and only up to a size limit.

FIFOs, devices and sparse multi-gigabyte files must be rejected from their
stat, before anything reads them, so certpipe neither hangs nor runs out of
memory on a wrong path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from certpipe import fsutil
from certpipe.fsutil import FileRejected, read_limited
from conftest import PIPELINES, needs_openssl

SPARSE_SIZE = 3 * 1024**3  # sparse: costs no disk space
# Generous bound on Python allocations while a huge file is rejected; reading
# it whole would allocate gigabytes.
MEMORY_BOUND = 50 * 1024**2
# Guard against a hang, not a performance limit: a FIFO read blocks forever.
HANG_GUARD_SECONDS = 300


@pytest.fixture
def sparse_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.iso"
    with path.open("wb") as handle:
        handle.truncate(SPARSE_SIZE)
    return path


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "reply.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the byte count of every os.read certpipe's reader makes."""
    sizes: list[int] = []
    real_read = os.read

    def read(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(fsutil.os, "read", read)
    return sizes


def peak_allocation(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_read_limited_rejects_fifo(fifo):
    with pytest.raises(FileRejected) as caught:
        read_limited(fifo, 1000)
    assert "FIFO" in caught.value.reason


def test_read_limited_rejects_device(counted_reads):
    with pytest.raises(FileRejected) as caught:
        read_limited(Path("/dev/zero"), 1000)
    assert "character device" in caught.value.reason
    assert counted_reads == []


def test_read_limited_rejects_symlink_to_device(tmp_path, counted_reads):
    link = tmp_path / "reply.p7b"
    link.symlink_to("/dev/zero")
    with pytest.raises(FileRejected):
        read_limited(link, 1000)
    assert counted_reads == []


def test_read_limited_rejects_sparse_file(sparse_file, counted_reads):
    with pytest.raises(FileRejected) as caught:
        read_limited(sparse_file, 10_000_000)
    assert caught.value.too_large
    assert str(SPARSE_SIZE) in caught.value.reason
    assert counted_reads == []


def test_read_limited_reads_at_most_limit_plus_one(tmp_path, monkeypatch, counted_reads):
    path = tmp_path / "grows.pem"
    path.write_bytes(b"x" * 500)
    # The file grows after the stat check: only limit + 1 bytes may be read.
    monkeypatch.setattr(fsutil, "check_regular_file", lambda path, limit: None)
    monkeypatch.setattr(fsutil, "_check_stat", lambda path, info, limit: None)
    with pytest.raises(FileRejected):
        read_limited(path, 100)
    assert sum(counted_reads) == 101


def test_read_limited_reads_regular_file(tmp_path):
    path = tmp_path / "small.pem"
    path.write_bytes(b"abc")
    assert read_limited(path, 3) == b"abc"


def test_inspect_sparse_file_not_read(cli, sparse_file):
    outcome: list = []
    peak = peak_allocation(lambda: outcome.append(cli("inspect", sparse_file)))
    assert outcome[0].exit_code == 1
    assert f"{sparse_file}: cannot be read: {SPARSE_SIZE} bytes is too large" in outcome[0].out
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize("command", ["inspect", "validate", "pfx-check"])
def test_device_rejected_by_name(cli, command):
    result = cli(command, "/dev/zero")
    assert result.exit_code in (1, 2)
    assert "is a character device, not a regular file" in result.out + result.err
    assert "Traceback" not in result.err


def test_pipeline_fifo_rejected(cli, fifo):
    result = cli("validate", fifo)
    assert result.exit_code == 2
    assert f"{fifo}: is a FIFO (named pipe), not a regular file" in result.err


def test_password_file_fifo_rejected(cli, fifo, tmp_path):
    pfx = tmp_path / "x.pfx"
    pfx.write_bytes(b"0")
    result = cli("inspect", pfx, "--password-file", fifo)
    assert result.exit_code == 2
    assert f"password file {fifo} (file:{fifo}): is a FIFO" in result.err


def test_pfx_check_sparse_file(cli, sparse_file):
    peak = peak_allocation(lambda: cli("pfx-check", sparse_file))
    assert peak < MEMORY_BOUND


@needs_openssl
def test_match_folder_skips_stray_files(cli, tmp_path, sparse_file, fifo):
    leaf_key = tmp_path / "dl" / "leaf.key"
    leaf_key.parent.mkdir()
    cert = tmp_path / "leaf.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    leaf_key, "-out", cert, "-subj", "/CN=leaf", "-days", "1"],
                   check=True, capture_output=True)
    shutil.move(sparse_file, leaf_key.parent / "big.iso")
    shutil.move(fifo, leaf_key.parent / "pipe")
    (leaf_key.parent / "zero").symlink_to("/dev/zero")

    outcome: list = []
    peak = peak_allocation(lambda: outcome.append(cli("match", cert, leaf_key.parent)))
    result = outcome[0]
    assert result.exit_code == 0
    assert f"match: {leaf_key} #1" in result.out
    assert f"note: skipped {leaf_key.parent / 'big.iso'}: {SPARSE_SIZE} bytes" in result.out
    assert f"note: skipped {leaf_key.parent / 'pipe'}: is a FIFO" in result.out
    assert f"note: skipped {leaf_key.parent / 'zero'}: is a character device" in result.out
    assert peak < MEMORY_BOUND

    inspected = cli("inspect", leaf_key.parent)
    assert inspected.exit_code == 0
    assert f"note: skipped {leaf_key.parent / 'pipe'}: is a FIFO" in inspected.out


@needs_openssl
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_run_reply_not_regular_file(tmp_path, kind):
    work = tmp_path / "work"
    work.mkdir()
    reply = work / "certnew.p7b"
    if kind == "fifo":
        os.mkfifo(reply)
    else:
        reply.symlink_to("/dev/zero")
    # A subprocess, so that a regression hangs one test instead of the suite.
    result = subprocess.run(
        [sys.executable, "-m", "certpipe", "run", str(PIPELINES / "iis.yaml"),
         "--workdir", str(work)],
        capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
    assert result.returncode == 1
    expected = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert f"{reply}: is {expected}, not a regular file" in result.stderr
