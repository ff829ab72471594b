"""Work directories and output paths that cannot be used end with a message, not a traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest

from certpipe import lock
from conftest import PIPELINES, needs_openssl

LOCAL_CA = PIPELINES / "iis-local-ca.yaml"


@contextlib.contextmanager
def read_only_view(folder: Path, view: Path):
    """Mount *folder* read-only at *view*, or skip the test where bind mounts are not allowed."""
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("a read-only bind mount needs mount privileges")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)],
                                   capture_output=True).returncode == 0
        if not remounted:
            pytest.skip("remounting read-only is not allowed here")
        yield view
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


def test_workdir_under_file_rejected(cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    result = cli("run", LOCAL_CA, "--workdir", afile / "sub")
    assert result.exit_code == 2
    assert f"--workdir {afile / 'sub'} cannot be created: {afile} is a file" in result.err
    assert "Traceback" not in result.err


def test_init_under_file_rejected(cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    result = cli("init", afile / "x.yaml")
    assert result.exit_code == 2
    assert f"cannot write {afile / 'x.yaml'}: {afile} is a file, not a folder" in result.err


def test_read_only_state_folder_message(cli, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.name == ".certpipe":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(lock.Path, "mkdir", read_only)
    work = tmp_path / "work"
    result = cli("run", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 2
    assert f"cannot use the work directory {work}: creating {work / '.certpipe'} failed: " \
           f"Read-only file system" in result.err
    assert "give a --workdir that you can write to" in result.err


def test_init_read_only_folder(cli, tmp_path, monkeypatch):
    from certpipe import fsutil

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "x.yaml"))

    monkeypatch.setattr(fsutil, "_create_private", read_only)
    result = cli("init", tmp_path / "x.yaml")
    assert result.exit_code == 2
    assert f"cannot write {tmp_path / 'x.yaml'}: Read-only file system" in result.err


@needs_openssl
def test_read_only_workdir_up_to_date(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    with read_only_view(work, tmp_path / "view") as view:
        result = cli("run", LOCAL_CA, "--workdir", view)
    assert result.exit_code == 2
    assert f"cannot use the work directory {view}" in result.err
    assert "Read-only file system" in result.err


def test_read_only_new_workdir(cli, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with read_only_view(folder, tmp_path / "view") as view:
        result = cli("run", LOCAL_CA, "--workdir", view / "new")
    assert result.exit_code == 2
    assert f"cannot use the work directory {view / 'new'}: creating {view / 'new'} failed: " \
           f"Read-only file system" in result.err


def test_read_only_init_folder(cli, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with read_only_view(folder, tmp_path / "view") as view:
        result = cli("init", view / "x.yaml")
    assert result.exit_code == 2
    assert f"cannot write {view / 'x.yaml'}: Read-only file system" in result.err


def test_escaped_os_error_one_line(cli, tmp_path, monkeypatch):
    from certpipe.commands import validate

    def broken(args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x"))

    monkeypatch.setattr(validate, "main", broken)
    result = cli("validate", tmp_path / "x")
    assert result.exit_code == 1
    assert result.err == f"certpipe: {tmp_path / 'x'}: Permission denied\n"


def test_internal_error_writes_crash_log(cli, tmp_path, monkeypatch):
    from certpipe.commands import validate

    def broken(args):
        raise ZeroDivisionError("unexpected")

    monkeypatch.setattr(validate, "main", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    result = cli("validate", tmp_path / "x")
    assert result.exit_code == 70
    assert result.err.startswith("certpipe: internal error")
    assert "Traceback" not in result.err
    logs = list(tmp_path.glob("certpipe-crash-*.log"))
    assert len(logs) == 1
    assert str(logs[0]) in result.err
    text = logs[0].read_text(encoding="utf-8")
    assert "ZeroDivisionError: unexpected" in text
    assert "certpipe " in text
    assert "Python " in text
    assert "openssl" in text
