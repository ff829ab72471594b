"""A run killed or interrupted inside any step leaves every file whole, and the next run finishes.

A fake openssl stops at one subcommand (before or after the real openssl
wrote its output) so that the test can kill certpipe there with SIGKILL or
send it SIGINT.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import PIPELINES, needs_openssl
from fake_openssl import FakeOpenSSL, certpipe_command

pytestmark = needs_openssl

LOCAL_CA = PIPELINES / "iis-local-ca.yaml"
KEY = "www.example.test.key"


def snapshot(work: Path) -> dict[str, bytes]:
    """Return the bytes of every artifact and of the manifest in *work*.

    Temporary files and certpipe's helper files in .certpipe (openssl
    configs, the local CA's unsigned leaf) are left out.
    """
    files = {}
    for path in work.rglob("*"):
        name = str(path.relative_to(work))
        helper = name.startswith(".certpipe/") and name != ".certpipe/state.json"
        if path.is_file() and ".certpipe-tmp-" not in path.name and not helper:
            files[name] = path.read_bytes()
    return files


def temp_files(work: Path) -> list[Path]:
    return [path for path in work.rglob("*") if ".certpipe-tmp-" in path.name]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory where the local CA pipeline ran to the end."""
    work = tmp_path_factory.mktemp("finished") / "work"
    env = {**os.environ, "PFX_PASSWORD": "Test-Pfx-Pass-1"}
    result = subprocess.run(certpipe_command("run", LOCAL_CA, "--workdir", work), env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work


def start_and_stop(fake: FakeOpenSSL, work: Path, stop_at: str, when: str,
                   *extra: str) -> tuple[subprocess.Popen, int]:
    env = {**fake.env(stop_at, when), "PFX_PASSWORD": "Test-Pfx-Pass-1"}
    process = subprocess.Popen(certpipe_command("run", LOCAL_CA, "--workdir", work, *extra),
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        sleeper = fake.wait_until_stopped(process)
    except BaseException:
        process.kill()
        raise
    return process, sleeper


# Each step, the option that makes it run again in a finished work
# directory, and the openssl subcommand it calls.
STEPS = [
    ("key", "--rekey", "genpkey"),
    ("csr", "--force=csr", "req"),
    ("sign", "--force=sign", "crl2pkcs7"),
    ("reply", "--force=reply", "pkcs7"),
    ("pfx", "--force=pfx", "pkcs12"),
]


@pytest.mark.parametrize("step, option, subcommand", STEPS, ids=[s[0] for s in STEPS])
def test_sigkill_inside_step_keeps_files_whole(tmp_path, finished, step, option, subcommand):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    before = snapshot(work)
    fake = FakeOpenSSL(tmp_path / "bin")

    # The real openssl has written the step's temporary file; rename is next.
    process, sleeper = start_and_stop(fake, work, subcommand, "after", option)
    process.kill()
    process.wait()
    os.kill(sleeper, signal.SIGKILL)

    after = snapshot(work)
    assert sorted(after) == sorted(before)
    changed = [name for name in before if after[name] != before[name]]
    assert changed == []
    assert (work / KEY).read_bytes() == before[KEY]
    json.loads((work / ".certpipe" / "state.json").read_text())

    result = subprocess.run(certpipe_command("run", LOCAL_CA, "--workdir", work),
                            env={**os.environ, "PFX_PASSWORD": "Test-Pfx-Pass-1"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert temp_files(work) == []
    assert (work / KEY).read_bytes() == before[KEY]


def test_sigkill_in_first_keygen_then_run_completes(tmp_path):
    work = tmp_path / "work"
    fake = FakeOpenSSL(tmp_path / "bin")
    process, sleeper = start_and_stop(fake, work, "genpkey", "before")
    process.kill()
    process.wait()
    os.kill(sleeper, signal.SIGKILL)

    assert not (work / KEY).exists()
    result = subprocess.run(certpipe_command("run", LOCAL_CA, "--workdir", work),
                            env={**os.environ, "PFX_PASSWORD": "Test-Pfx-Pass-1"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (work / "www.example.test.pfx").exists()
    assert temp_files(work) == []


def test_ctrl_c_stops_cleanly(tmp_path, finished):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    before = snapshot(work)
    fake = FakeOpenSSL(tmp_path / "bin")
    report = tmp_path / "report.json"

    process, _ = start_and_stop(fake, work, "pkcs12", "before", "--force=pfx",
                                "--report", str(report))
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130
    assert "certpipe: interrupted" in err
    assert "Traceback" not in err
    assert "pfx (pkcs12) " in out
    assert " interrupted" in out
    assert temp_files(work) == []
    after = snapshot(work)
    assert {k: v for k, v in after.items() if k != ".certpipe/state.json"} == \
        {k: v for k, v in before.items() if k != ".certpipe/state.json"}
    data = json.loads(report.read_text())
    assert data["status"] == "interrupted"
    assert data["exit_code"] == 130
    assert [s["status"] for s in data["steps"]][-1] == "interrupted"


def test_sigterm_stops_like_ctrl_c(tmp_path, finished):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    fake = FakeOpenSSL(tmp_path / "bin")
    process, _ = start_and_stop(fake, work, "pkcs12", "before", "--force=pfx")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "certpipe: interrupted" in err
    assert temp_files(work) == []
