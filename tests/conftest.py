"""Shared fixtures: run the CLI in-process, build pipelines from text, locate test data."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from certpipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "pipelines"
CASES = Path(__file__).resolve().parent / "cases"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not on PATH")


@dataclass
class Result:
    exit_code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``certpipe ARGS`` in-process and return exit code, stdout and stderr."""

    def run(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_pipeline(tmp_path: Path):
    """Write a pipeline file from (dedented) YAML text and return its path."""

    def write(text: str, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def pfx_password(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "Test-Pfx-Pass-1"
    monkeypatch.setenv("PFX_PASSWORD", value)
    return value
