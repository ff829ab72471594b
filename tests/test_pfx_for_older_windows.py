"""A .pfx for Windows Server 2016 must use 3DES and a SHA-1 MAC.

tests/data/pfx-for-older-windows contains an RSA key, its leaf and issuing CA,
the password (pw.txt, no newline) and openssl3-default.pfx: what plain
``openssl pkcs12 -export`` of OpenSSL 3 writes (PBES2/AES-256-CBC, HMAC-SHA256
MAC), which Windows Server 2016 rejects as a wrong password.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from certpipe.artifacts.pfx_info import TARGETS, describe, judge, read_pfx_file
from conftest import needs_openssl
from pfx_support import DATA, openssl_info

OLD_WINDOWS = DATA / "pfx-for-older-windows"
PASSWORD = (OLD_WINDOWS / "pw.txt").read_text("utf-8")
DEFAULT_PFX = OLD_WINDOWS / "openssl3-default.pfx"


def pipeline(target: str | None) -> str:
    line = f"    target: {target}\n" if target else ""
    return textwrap.dedent("""\
        version: 1
        steps:
          - name: pfx
            kind: pkcs12
            key: key.pem
            cert: rdgw.example.test.crt
            chain: intermediate.crt
            password: file:pw.txt
            out: out.pfx
        """) + line


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(OLD_WINDOWS, folder)
    return folder


@needs_openssl
def test_target_2016_gets_3des_sha1(cli, write_pipeline, case_dir):
    result = cli("run", write_pipeline(pipeline("windows-server-2016")), "--workdir", case_dir)
    assert result.exit_code == 0, result.err
    info = openssl_info(case_dir / "out.pfx", PASSWORD)
    assert info.mac_digest == "sha1"
    assert info.mac_iterations <= 600000
    assert info.encrypted_data == ["pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048"]
    assert info.shrouded_keys == ["pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048"]
    assert info.certificate_bags == 2
    assert len(re.findall(r"PBES2|AES|RC2", info.text)) == 0


@needs_openssl
def test_target_2019_keeps_aes(cli, write_pipeline, case_dir):
    result = cli("run", write_pipeline(pipeline("windows-server-2019")), "--workdir", case_dir)
    assert result.exit_code == 0, result.err
    info = openssl_info(case_dir / "out.pfx", PASSWORD)
    assert info.mac_digest == "sha256"
    expected = "PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256"
    assert info.encrypted_data == [expected]
    assert info.shrouded_keys == [expected]


@needs_openssl
def test_no_target_warns_about_windows(cli, write_pipeline, case_dir):
    result = cli("run", write_pipeline(pipeline(None)), "--workdir", case_dir)
    assert result.exit_code == 0, result.err
    assert "depends on the Windows version" in result.out
    assert openssl_info(case_dir / "out.pfx", PASSWORD).mac_digest == "sha1"


def test_default_file_not_importable_on_2016():
    info = read_pfx_file(DEFAULT_PFX)
    verdict = judge(info.algorithms(), TARGETS["windows-server-2016"])
    assert not verdict.importable
    assert verdict.status == "not importable"
    text = " ".join(verdict.reasons)
    assert "PBES2 (PBKDF2 hmacWithSHA256, AES-256-CBC)" in text
    assert "certificates and key" in text
    assert "password is not correct" in text
    assert "SHA-256" in text


@pytest.mark.parametrize("target", ["windows-server-2019", "windows-server-2022", "windows-10",
                                    "openssl-3"])
def test_default_file_importable_on_newer(target):
    info = read_pfx_file(DEFAULT_PFX, PASSWORD.encode())
    assert judge(info.algorithms(), TARGETS[target]).importable


def test_default_file_algorithms_read():
    info = read_pfx_file(DEFAULT_PFX, PASSWORD.encode())
    assert info.password_checked
    algorithms = info.algorithms()
    assert [e.cipher for e in algorithms.certificates] == ["AES-256-CBC"]
    assert [e.prf for e in algorithms.keys] == ["hmacWithSHA256"]
    assert algorithms.mac is not None
    assert (algorithms.mac.digest, algorithms.mac.iterations) == ("sha256", 2048)
    assert len(info.bags("certificate")) == 2
    lines = describe(info)
    assert "MAC: SHA-256, 2048 iterations (password verified)" in lines


def test_pfx_check_reports_2016_failure(cli):
    result = cli("pfx-check", DEFAULT_PFX, "--target", "windows-server-2016")
    assert result.exit_code == 1
    assert "windows-server-2016: not importable" in result.out
    assert "PBES2 (PBKDF2 hmacWithSHA256, AES-256-CBC)" in result.out
    assert "-certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1" in result.out


def test_pfx_check_passes_2019(cli):
    result = cli("pfx-check", DEFAULT_PFX, "--target", "windows-server-2019", "--password",
                 f"file:{OLD_WINDOWS / 'pw.txt'}")
    assert result.exit_code == 0, result.err
    assert "windows-server-2019: importable" in result.out
    assert "password verified" in result.out
