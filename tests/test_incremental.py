"""Re-runs redo only what changed, and private keys are never replaced by surprise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from certpipe.lock import WorkdirLock
from conftest import PIPELINES, needs_openssl
from fake_openssl import FakeOpenSSL, certpipe_command

pytestmark = needs_openssl

LOCAL_CA = PIPELINES / "iis-local-ca.yaml"

# The local CA flow with a second DNS name taken from a variable.
SAN_PIPELINE = """\
version: 1
name: san
vars:
  extra: alt.example.test
steps:
  - name: key
    kind: private_key
    algorithm: ec
    out: site.key
  - name: csr
    kind: csr
    key: site.key
    subject:
      CN: www.example.test
    subject_alt_names:
      dns: ["${extra}"]
    out: site.csr
  - name: sign
    kind: local_ca
    csr: site.csr
    out: reply.p7b
  - name: reply
    kind: ca_reply
    reply: reply.p7b
    key: site.key
    csr: site.csr
    cert_out: site.crt
    chain_out: chain.pem
  - name: pfx
    kind: pkcs12
    key: site.key
    cert: site.crt
    chain: chain.pem
    password: env:PFX_PASSWORD
    out: site.pfx
"""


def statuses(output: str) -> dict[str, str]:
    """Map step name to status from the status lines of a run."""
    found = {}
    for line in output.splitlines():
        if " (" in line and "..." in line:
            name = line.split(" (", 1)[0]
            status = line.split("... ", 1)[1]
            for known in ("up to date", "made", "kept", "failed", "pending", "not run"):
                if status.startswith(known):
                    found[name] = known
    return found


def test_unchanged_rerun_calls_no_openssl(cli, tmp_path, pfx_password, monkeypatch):
    fake = FakeOpenSSL(tmp_path / "bin")
    monkeypatch.setenv("CERTPIPE_OPENSSL", str(fake.path))
    for name, value in fake.env().items():
        if name.startswith("FAKE_OPENSSL"):
            monkeypatch.setenv(name, value)
    work = tmp_path / "work"
    first = cli("run", LOCAL_CA, "--workdir", work)
    assert first.exit_code == 0, first.err
    made_calls = len(fake.calls())
    assert made_calls > 5

    second = cli("run", LOCAL_CA, "--workdir", work)
    assert second.exit_code == 0, second.err
    assert len(fake.calls()) == made_calls
    assert set(statuses(second.out).values()) == {"up to date"}
    assert len(statuses(second.out)) == 5


def test_unchanged_rerun_loads_no_heavy_module(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    probe = (
        "import sys\n"
        "from certpipe.cli import main\n"
        f"code = main(['run', {str(LOCAL_CA)!r}, '--workdir', {str(work)!r}, '-q'])\n"
        "heavy = [m for m in ('jsonschema', 'cryptography', 'sh', 'yaml') if m in sys.modules]\n"
        "print(code, ','.join(heavy) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "CERTPIPE_OPENSSL": "/nonexistent/openssl"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "none"]


def test_san_set_keeps_key_bytes(cli, tmp_path, write_pipeline, pfx_password):
    pipeline = write_pipeline(SAN_PIPELINE)
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    key_bytes = (work / "site.key").read_bytes()
    csr_bytes = (work / "site.csr").read_bytes()

    result = cli("run", pipeline, "--workdir", work, "--set", "extra=new.example.test")
    assert result.exit_code == 0, result.err
    assert statuses(result.out) == {"key": "up to date", "csr": "made", "sign": "made",
                                    "reply": "made", "pfx": "made"}
    assert (work / "site.key").read_bytes() == key_bytes
    assert (work / "site.csr").read_bytes() != csr_bytes
    from certpipe.artifacts.intake import read_certificates
    from certpipe.artifacts.checks import alt_names

    leaf = read_certificates(work / "site.crt").certs[0]
    assert alt_names(leaf) == (["www.example.test", "new.example.test"], [])


def test_san_edit_keeps_key(cli, tmp_path, write_pipeline, pfx_password):
    pipeline = write_pipeline(SAN_PIPELINE)
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    key_bytes = (work / "site.key").read_bytes()
    edited = SAN_PIPELINE.replace('dns: ["${extra}"]', 'dns: ["${extra}", b.example.test]')
    pipeline.write_text(edited, encoding="utf-8")

    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert statuses(result.out)["key"] == "up to date"
    assert statuses(result.out)["csr"] == "made"
    assert (work / "site.key").read_bytes() == key_bytes


def test_later_step_change_reruns_only_it(cli, tmp_path, write_pipeline, pfx_password):
    pipeline = write_pipeline(SAN_PIPELINE)
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    pipeline.write_text(SAN_PIPELINE.replace("out: site.pfx", "friendly_name: Site\n    out: site.pfx"),
                        encoding="utf-8")
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert statuses(result.out) == {"key": "up to date", "csr": "up to date",
                                    "sign": "up to date", "reply": "up to date", "pfx": "made"}


def test_deleted_output_is_remade(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    (work / "www.example.test.pfx").unlink()
    result = cli("run", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert statuses(result.out)["pfx"] == "made"
    assert statuses(result.out)["reply"] == "up to date"
    assert (work / "www.example.test.pfx").exists()


def test_edited_output_is_detected_and_remade(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    chain = work / "www.example.test.chain.pem"
    good = chain.read_bytes()
    chain.write_bytes(b"edited by hand\n")
    result = cli("run", LOCAL_CA, "-v", "--workdir", work)
    assert result.exit_code == 0, result.err
    assert "why: output www.example.test.chain.pem was changed since it was made" in result.out
    assert chain.read_bytes() == good


def test_deleted_key_with_certificate_stops(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    (work / "www.example.test.key").unlink()
    result = cli("run", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 1
    assert "the private key www.example.test.key is missing" in result.err
    assert "www.example.test.crt" in result.err
    assert "--force key" in result.err
    assert not (work / "www.example.test.key").exists()
    assert statuses(result.out)["csr"] == "not run"


def test_deleted_key_without_state_still_stops(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    (work / "www.example.test.key").unlink()
    (work / ".certpipe" / "state.json").unlink()
    result = cli("run", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 1
    assert "is missing" in result.err
    assert not (work / "www.example.test.key").exists()


def test_deleted_key_replaced_only_when_forced(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    (work / "www.example.test.key").unlink()
    result = cli("run", LOCAL_CA, "--workdir", work, "--force", "key")
    assert result.exit_code == 0, result.err
    assert set(statuses(result.out).values()) == {"made"}


def test_deleted_key_alone_is_made_again(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline("version: 1\nsteps:\n  - name: key\n    kind: private_key\n"
                              "    algorithm: ec\n    out: a.key\n")
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    (work / "a.key").unlink()
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert (work / "a.key").exists()


def test_key_setting_change_keeps_key(cli, tmp_path, write_pipeline, pfx_password):
    pipeline = write_pipeline(SAN_PIPELINE)
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    key_bytes = (work / "site.key").read_bytes()
    pipeline.write_text(SAN_PIPELINE.replace("algorithm: ec", "algorithm: ec\n    curve: P-384"),
                        encoding="utf-8")
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 1
    assert "--rekey" in result.err
    assert (work / "site.key").read_bytes() == key_bytes


def test_rekey_keeps_old_key_as_backup(cli, tmp_path, write_pipeline, pfx_password):
    pipeline = write_pipeline(SAN_PIPELINE)
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    key_bytes = (work / "site.key").read_bytes()
    for _ in range(2):
        result = cli("run", pipeline, "--workdir", work, "--rekey")
        assert result.exit_code == 0, result.err
        assert set(statuses(result.out).values()) == {"made"}
    backups = sorted(work.glob("site.key.replaced-*"))
    assert len(backups) == 2
    assert backups[0].read_bytes() == key_bytes
    assert (work / "site.key").read_bytes() != key_bytes
    assert oct((work / "site.key").stat().st_mode & 0o777) == "0o600"


def test_force_unknown_step_is_usage_error(cli, tmp_path, pfx_password):
    result = cli("run", LOCAL_CA, "--workdir", tmp_path, "--force", "nosuch")
    assert result.exit_code == 2
    assert "--force nosuch: no step of that name (steps: key, csr, sign, reply, pfx)" in result.err


def test_force_reruns_step_and_dependents(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    result = cli("run", LOCAL_CA, "--workdir", work, "--force", "sign")
    assert result.exit_code == 0, result.err
    assert statuses(result.out) == {"key": "up to date", "csr": "up to date", "sign": "made",
                                    "reply": "made", "pfx": "made"}


def test_damaged_manifest_runs_everything_again(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    key_bytes = (work / "www.example.test.key").read_bytes()
    (work / ".certpipe" / "state.json").write_text("{not json", encoding="utf-8")
    result = cli("run", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert statuses(result.out)["key"] == "kept"
    assert (work / "www.example.test.key").read_bytes() == key_bytes
    assert json.loads((work / ".certpipe" / "state.json").read_text())["version"] == 2


def test_second_run_fails_while_locked(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    work.mkdir()
    with WorkdirLock(work):
        result = cli("run", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 1
    assert f"another certpipe run (process {os.getpid()}) is using {work}" in result.err
    assert "--wait-lock" in result.err
    assert not (work / "www.example.test.key").exists()


def test_second_run_waits_for_lock(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    work.mkdir()
    lock = WorkdirLock(work)
    lock.acquire()
    releaser = threading.Timer(0.3, lock.release)
    releaser.start()
    try:
        result = cli("run", LOCAL_CA, "--workdir", work, "--wait-lock", "60")
    finally:
        releaser.join()
    assert result.exit_code == 0, result.err


def test_concurrent_runs_do_not_corrupt(tmp_path, pfx_password):
    fake = FakeOpenSSL(tmp_path / "bin")
    work = tmp_path / "work"
    first = subprocess.Popen(certpipe_command("run", LOCAL_CA, "--workdir", work),
                             env=fake.env("pkcs12"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        sleeper = fake.wait_until_stopped(first)
        second = subprocess.run(certpipe_command("run", LOCAL_CA, "--workdir", work),
                                capture_output=True, text=True)
        assert second.returncode == 1
        assert "another certpipe run" in second.stderr
        os.kill(sleeper, 9)  # let the first run's pkcs12 call fail
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    third = subprocess.run(certpipe_command("run", LOCAL_CA, "--workdir", work),
                           capture_output=True, text=True)
    assert third.returncode == 0, third.stderr
    assert "pfx (pkcs12) " in third.stdout


def test_symlink_leading_out_is_rejected(cli, tmp_path, write_pipeline):
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "certs").symlink_to(outside)
    pipeline = write_pipeline("version: 1\nsteps:\n  - name: key\n    kind: private_key\n"
                              "    algorithm: ec\n    out: certs/a.key\n")
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 2
    assert f"{pipeline}:6:10: steps[0].out (step 'key'): 'certs/a.key' leads outside" in result.err
    assert f"symlink {work / 'certs'} -> {outside}" in result.err
    assert list(outside.iterdir()) == []
    plan = cli("plan", pipeline, "--workdir", work)
    assert plan.exit_code == 2


def test_symlinked_output_file_is_rejected(cli, tmp_path, write_pipeline):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.key").symlink_to(tmp_path / "elsewhere.key")
    pipeline = write_pipeline("version: 1\nsteps:\n  - name: key\n    kind: private_key\n"
                              "    algorithm: ec\n    out: a.key\n")
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 2
    assert "leads outside the work directory" in result.err
    assert not (tmp_path / "elsewhere.key").exists()


def test_symlink_inside_workdir_is_fine(cli, tmp_path, write_pipeline):
    work = tmp_path / "work"
    (work / "real").mkdir(parents=True)
    (work / "link").symlink_to(work / "real")
    pipeline = write_pipeline("version: 1\nsteps:\n  - name: key\n    kind: private_key\n"
                              "    algorithm: ec\n    out: link/a.key\n")
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert (work / "real" / "a.key").exists()


def test_state_folder_symlink_is_rejected(cli, tmp_path, write_pipeline):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (work / ".certpipe").symlink_to(tmp_path / "elsewhere")
    pipeline = write_pipeline("version: 1\nsteps:\n  - name: key\n    kind: private_key\n"
                              "    algorithm: ec\n    out: a.key\n")
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 2
    assert ".certpipe leads outside the work directory" in result.err
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_stale_temp_files_are_removed(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    leftover = work / ".www.example.test.pfx.certpipe-tmp-0123456789ab"
    leftover.write_bytes(b"half a file")
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    assert not leftover.exists()


def test_wait_lock_negative_is_usage_error(cli, tmp_path):
    result = cli("run", LOCAL_CA, "--workdir", tmp_path, "--wait-lock", "-1")
    assert result.exit_code == 2
    assert "--wait-lock -1: give 0 or more seconds" in result.err


def test_lock_is_released_when_holder_dies(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from certpipe.lock import WorkdirLock\n"
         f"WorkdirLock(Path({str(work)!r})).acquire(); print('locked', flush=True); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Exception, match="another certpipe run"):
            WorkdirLock(work).acquire()
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 30
        lock = WorkdirLock(work)
        while True:
            try:
                lock.acquire()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_empty_openssl_output_is_rejected(cli, tmp_path, write_pipeline, monkeypatch):
    fake = FakeOpenSSL(tmp_path / "bin")
    for name, value in fake.env("genpkey", "silent").items():
        if name.startswith(("FAKE_OPENSSL", "CERTPIPE_OPENSSL")):
            monkeypatch.setenv(name, value)
    pipeline = write_pipeline("version: 1\nsteps:\n  - name: key\n    kind: private_key\n"
                              "    algorithm: ec\n    out: a.key\n")
    work = tmp_path / "work"
    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 1
    assert "openssl exited with code 0, but its output file is empty" in result.err
    assert not (work / "a.key").exists()
    assert [p.name for p in work.iterdir()] == [".certpipe"]


def test_workdir_that_is_a_file(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("run", LOCAL_CA, "--workdir", blocker)
    assert result.exit_code == 2
    assert f"--workdir {blocker} exists and is not a folder" in result.err


def test_replaced_key_is_reported(cli, tmp_path, write_pipeline, pfx_password):
    pipeline = write_pipeline(SAN_PIPELINE)
    work = tmp_path / "work"
    other = tmp_path / "other"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    assert cli("run", pipeline, "--workdir", other).exit_code == 0
    (work / "site.key").write_bytes((other / "site.key").read_bytes())

    result = cli("run", pipeline, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert "note: the key site.key is not the one recorded by the last run" in result.out
    assert statuses(result.out) == {"key": "kept", "csr": "made", "sign": "made",
                                    "reply": "made", "pfx": "made"}
