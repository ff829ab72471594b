"""Fixtures of the reliability suite: real artifacts, a seeded work directory, counts.

Every malformed input runs against a copy of one seeded work directory: the
output of a real run of the local-CA example pipeline (keys, CSR, PKCS#7
reply, chain, PFX and the state manifest) plus unrelated files, a subfolder
and a symlink. Tests snapshot the copy before and after the run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from reliability.harness import copy_tree, run_certpipe, summary_lines

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
DATA = Path(__file__).resolve().parent / "data"

HOST = "www.example.test"
KEY = f"{HOST}.key"
CSR = f"{HOST}.csr"
CERT = f"{HOST}.crt"
CHAIN = f"{HOST}.chain.pem"
PFX = f"{HOST}.pfx"
REPLY = "ca-reply.p7b"
PFX_PASSWORD = "Seed-Pfx-Pass-7"

# Modest and deterministic: the same examples on every run and machine, no
# example database written into the work tree.
settings.register_profile(
    "reliability",
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl not on PATH")


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory after a successful run, plus files certpipe did not make."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not on PATH")
    work = tmp_path_factory.mktemp("seeded") / "work"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PFX_PASSWORD", PFX_PASSWORD)
        outcome = run_certpipe("run", PIPELINES / "iis-local-ca.yaml", "--workdir", work, "-q")
    assert outcome.exit_code == 0, outcome.err + outcome.crash
    (work / "notes.txt").write_text("ticket numbers and contacts\n", encoding="utf-8")
    (work / "old").mkdir()
    (work / "old" / "2019.key").write_bytes((work / KEY).read_bytes())
    os.chmod(work / "old" / "2019.key", 0o600)
    (work / "password.txt").write_text("File-Pass-3\n", encoding="utf-8")
    os.chmod(work / "password.txt", 0o600)
    os.symlink(CERT, work / "current.crt")
    return work


@pytest.fixture
def workdir(seeded_template: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded work directory for one test."""
    return copy_tree(seeded_template, tmp_path / "work")


@pytest.fixture(autouse=True)
def _pfx_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PASSWORD", PFX_PASSWORD)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    lines = list(summary_lines())
    if not lines:
        return
    terminalreporter.section("certpipe reliability counts")
    for line in lines:
        terminalreporter.write_line(line)
