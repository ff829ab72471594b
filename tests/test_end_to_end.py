"""The example IIS pipelines, run with the real openssl binary."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12

from conftest import PIPELINES, needs_openssl

pytestmark = needs_openssl


def test_local_ca_pipeline_makes_pfx(cli, tmp_path, pfx_password):
    out = tmp_path / "OUT"
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", out)
    assert result.exit_code == 0, result.err
    pfx = out / "www.example.test.pfx"
    assert pfx.exists()
    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-in", str(pfx), "-passin", "env:PFX_PASSWORD"],
        capture_output=True, text=True, env={**os.environ, "PFX_PASSWORD": pfx_password},
    )
    assert info.returncode == 0, info.stderr
    bundle = pkcs12.load_pkcs12(pfx.read_bytes(), pfx_password.encode())
    assert bundle.key is not None
    assert bundle.cert is not None
    assert bundle.cert.certificate.public_key() == bundle.key.public_key()
    assert len(bundle.additional_certs) == 1  # the issuing CA, root left out


def test_local_ca_pipeline_key_mode_0600(cli, tmp_path, pfx_password):
    old = os.umask(0)
    try:
        result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.err
    for key in [tmp_path / "www.example.test.key", tmp_path / "local-ca" / "root.key",
                tmp_path / "local-ca" / "issuing.key"]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_status_lines_name_each_step(cli, tmp_path, pfx_password):
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path)
    lines = result.out.splitlines()
    assert lines[0].startswith("key (private_key) ")
    assert "made www.example.test.key" in lines[0]
    assert any(line.startswith("pfx (pkcs12) ") and "made www.example.test.pfx" in line
               for line in lines)


def test_second_run_is_up_to_date(cli, tmp_path, pfx_password):
    assert cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path).exit_code == 0
    key_bytes = (tmp_path / "www.example.test.key").read_bytes()
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path)
    assert result.exit_code == 0
    step_lines = result.out.splitlines()[:-1]
    assert len(step_lines) == 5
    assert all(" up to date " in line for line in step_lines)
    assert (tmp_path / "www.example.test.key").read_bytes() == key_bytes


def test_iis_pipeline_pending_then_done(cli, tmp_path, pfx_password):
    result = cli("run", PIPELINES / "iis.yaml", "--workdir", tmp_path)
    assert result.exit_code == 75
    assert "waiting for the CA's reply" in result.err
    assert str(tmp_path / "www.example.test.csr") in result.err
    assert str(tmp_path / "certnew.p7b") in result.err
    assert not (tmp_path / "www.example.test.pfx").exists()

    # Play the CA: sign the CSR with the local CA pipeline's step in another folder.
    ca = tmp_path / "ca"
    ca.mkdir()
    shutil.copy(tmp_path / "www.example.test.csr", ca / "request.csr")
    signer = tmp_path / "signer.yaml"
    signer.write_text(
        "version: 1\nsteps:\n  - name: sign\n    kind: local_ca\n    csr: request.csr\n"
        "    out: reply.p7b\n", encoding="utf-8")
    assert cli("run", signer, "--workdir", ca).exit_code == 0
    shutil.copy(ca / "reply.p7b", tmp_path / "certnew.p7b")

    result = cli("run", PIPELINES / "iis.yaml", "--workdir", tmp_path)
    assert result.exit_code == 0, result.err
    assert (tmp_path / "www.example.test.pfx").exists()


def test_reply_for_other_key_fails(cli, tmp_path, pfx_password):
    other = tmp_path / "other"
    assert cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", other).exit_code == 0
    work = tmp_path / "work"
    assert cli("run", PIPELINES / "iis.yaml", "--workdir", work).exit_code == 75
    shutil.copy(other / "ca-reply.p7b", work / "certnew.p7b")

    result = cli("run", PIPELINES / "iis.yaml", "--workdir", work)
    assert result.exit_code == 1
    assert "does not belong to the key" in result.err
    assert str(work / "certnew.p7b") in result.err
    assert str(work / "www.example.test.key") in result.err
    assert not (work / "www.example.test.pfx").exists()


def test_python_dash_m_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "certpipe", "validate", str(PIPELINES / "iis.yaml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "valid (4 steps)" in result.stdout


def test_missing_password_variable_names_it(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("PFX_PASSWORD", raising=False)
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path)
    assert result.exit_code == 1
    assert "environment variable PFX_PASSWORD is not set" in result.err
    assert not (tmp_path / "www.example.test.pfx").exists()
    assert (tmp_path / "www.example.test.key").exists()


def test_pipeline_paths_are_files(tmp_path: Path):
    assert (PIPELINES / "iis.yaml").is_file()


def _play_ca(cli, tmp_path: Path, work: Path) -> None:
    """Sign the work folder's CSR with a local CA kept in tmp_path/ca and save the reply."""
    ca = tmp_path / "ca"
    ca.mkdir(exist_ok=True)
    shutil.copy(work / "www.example.test.csr", ca / "request.csr")
    signer = tmp_path / "signer.yaml"
    signer.write_text(
        "version: 1\nsteps:\n  - name: sign\n    kind: local_ca\n    csr: request.csr\n"
        "    out: reply.p7b\n", encoding="utf-8")
    assert cli("run", signer, "--workdir", ca).exit_code == 0
    shutil.copy(ca / "reply.p7b", work / "certnew.p7b")


def test_rekey_with_old_reply_is_pending(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", PIPELINES / "iis.yaml", "--workdir", work).exit_code == 75
    _play_ca(cli, tmp_path, work)
    assert cli("run", PIPELINES / "iis.yaml", "--workdir", work).exit_code == 0

    result = cli("run", PIPELINES / "iis.yaml", "--workdir", work, "--rekey")

    assert result.exit_code == 75, result.err
    backups = list(work.glob("www.example.test.key.replaced-*"))
    assert len(backups) == 1
    assert "waiting for the CA's reply" in result.err
    assert f"{work / 'certnew.p7b'} holds the certificate for the replaced key" in result.err
    assert str(backups[0]) in result.err
    assert f"Send the new CSR {work / 'www.example.test.csr'} to your CA" in result.err
    assert "does not belong to the key" not in result.err

    again = cli("run", PIPELINES / "iis.yaml", "--workdir", work)

    assert again.exit_code == 75, again.err
    assert str(backups[0]) in again.err

    _play_ca(cli, tmp_path, work)
    done = cli("run", PIPELINES / "iis.yaml", "--workdir", work)

    assert done.exit_code == 0, done.err
    bundle = pkcs12.load_pkcs12((work / "www.example.test.pfx").read_bytes(),
                                pfx_password.encode())
    assert bundle.cert is not None
    assert bundle.key is not None
    assert bundle.cert.certificate.public_key() == bundle.key.public_key()


def test_rekey_then_foreign_reply_fails(cli, tmp_path, pfx_password):
    other = tmp_path / "other"
    assert cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", other).exit_code == 0
    work = tmp_path / "work"
    assert cli("run", PIPELINES / "iis.yaml", "--workdir", work).exit_code == 75
    _play_ca(cli, tmp_path, work)
    assert cli("run", PIPELINES / "iis.yaml", "--workdir", work, "--rekey").exit_code == 75
    shutil.copy(other / "ca-reply.p7b", work / "certnew.p7b")

    result = cli("run", PIPELINES / "iis.yaml", "--workdir", work)

    assert result.exit_code == 1
    assert "does not belong to the key" in result.err
    assert "replaced key" not in result.err
