"""openssl discovery and the options certpipe picks per version.

A fake openssl reports another version and records its arguments; every
command other than 'version' is handed to the real openssl, so the files
are real and the read-back checks run as usual.
"""

from __future__ import annotations

import os

import pytest

from certpipe.openssl import Version, capabilities_for, parse_version
from conftest import PIPELINES, needs_openssl
from pfx_support import fake_openssl, openssl_info, pki, pkcs12_pipeline, workdir  # noqa: F401

pytestmark = needs_openssl

OPENSSL_111 = "OpenSSL 1.1.1w  11 Sep 2023"
LIBRESSL = "LibreSSL 3.8.2"
OPENSSL_102 = "OpenSSL 1.0.2k-fips  26 Jan 2017"


@pytest.mark.parametrize("text, flavour, number, library", [
    ("OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)", "OpenSSL",
     (3, 0, 19, ""), "OpenSSL 3.0.19 27 Jan 2026"),
    (OPENSSL_111, "OpenSSL", (1, 1, 1, "w"), ""),
    (OPENSSL_102, "OpenSSL", (1, 0, 2, "k"), ""),
    ("LibreSSL 3.3.6", "LibreSSL", (3, 3, 6, ""), ""),
    ("OpenSSL 3.4.0-dev ", "OpenSSL", (3, 4, 0, ""), ""),
    ("WARNING: can't open config file\nOpenSSL 3.2.1 30 Jan 2024", "OpenSSL", (3, 2, 1, ""), ""),
])
def test_parse_version(text, flavour, number, library):
    version = parse_version(text)
    assert version is not None
    assert version.flavour == flavour
    assert version.number == number
    assert version.library == library


def test_parse_version_rejects_other_text():
    assert parse_version("BoringSSL") is None
    assert parse_version("") is None


@pytest.mark.parametrize("text, iter_option, legacy, csp, pkcs8_prf, no_enc, copy_ext, pbmac1", [
    ("OpenSSL 3.0.19", True, True, True, True, "-noenc", True, False),
    ("OpenSSL 3.4.0", True, True, True, True, "-noenc", True, True),
    (OPENSSL_111, False, False, True, True, "-nodes", False, False),
    (LIBRESSL, False, False, True, False, "-nodes", False, False),
    ("LibreSSL 4.0.0", False, False, False, False, "-nodes", False, False),
])
def test_capabilities_per_version(text, iter_option, legacy, csp, pkcs8_prf, no_enc, copy_ext,
                                  pbmac1):
    version = parse_version(text)
    assert isinstance(version, Version)
    caps = capabilities_for(version)
    assert caps.pkcs12_iter is iter_option
    assert caps.pkcs12_legacy is legacy
    assert caps.pkcs12_csp is csp
    assert caps.pkcs8_prf_and_iter is pkcs8_prf
    assert caps.no_encryption_flag == no_enc
    assert caps.x509_copy_extensions is copy_ext
    assert caps.pkcs12_pbmac1 is pbmac1
    assert caps.genrsa_writes_pkcs8 is copy_ext
    assert caps.pkcs12_default_iterations == 2048


def export_call(fake) -> list[str]:
    calls = fake.commands("pkcs12")
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("version", [OPENSSL_111, LIBRESSL])
def test_compat_flags_without_iter(cli, write_pipeline, workdir, pfx_password, fake_openssl,
                                   version):
    fake = fake_openssl(version)
    text = pkcs12_pipeline("target: windows-server-2016\nnomaciter: true\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    args = export_call(fake)
    assert "-iter" not in args
    assert "-legacy" not in args
    assert args[args.index("-certpbe") + 1] == "PBE-SHA1-3DES"
    assert args[args.index("-keypbe") + 1] == "PBE-SHA1-3DES"
    assert args[args.index("-macalg") + 1] == "sha1"
    assert "-nomaciter" in args
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.mac_iterations == 1


def test_openssl3_passes_iter_explicitly(cli, write_pipeline, workdir, pfx_password,
                                         fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    text = pkcs12_pipeline("target: windows-server-2016\nnomaciter: true\n")
    assert cli("run", write_pipeline(text), "--workdir", workdir).exit_code == 0
    args = export_call(fake)
    assert args[args.index("-iter") + 1] == "2048"
    assert args.index("-nomaciter") > args.index("-iter")  # -iter would reset the MAC count
    assert "-legacy" not in args


@pytest.mark.parametrize("version", [OPENSSL_111, LIBRESSL])
def test_iterations_need_openssl3(cli, write_pipeline, workdir, pfx_password, fake_openssl,
                                  version):
    fake = fake_openssl(version)
    result = cli("run", write_pipeline(pkcs12_pipeline("iterations: 10000\n")), "--workdir",
                 workdir)
    assert result.exit_code == 2
    assert "iterations: 10000 needs OpenSSL 3.0 or newer" in result.err
    assert str(fake.path) in result.err
    assert version.split()[0] in result.err
    assert fake.commands("pkcs12") == []


def test_csp_rejected_on_libressl_4(cli, write_pipeline, workdir, pfx_password, fake_openssl):
    fake_openssl("LibreSSL 4.0.0")
    text = pkcs12_pipeline("csp: Microsoft Enhanced Cryptographic Provider v1.0\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 2
    assert "csp needs OpenSSL, or LibreSSL before 4.0" in result.err


@pytest.mark.parametrize("version, prf", [(OPENSSL_111, True), (LIBRESSL, False)])
def test_pkcs8_flags_per_version(cli, write_pipeline, workdir, pfx_password, fake_openssl,
                                 version, prf):
    fake = fake_openssl(version)
    text = """\
        version: 1
        steps:
          - name: key
            kind: server_files
            format: pkcs8_key
            key: www.key
            passphrase: env:PFX_PASSWORD
            out: www.p8.pem
        """
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    calls = fake.commands("pkcs8")
    assert len(calls) == 1
    assert ("-v2prf" in calls[0]) is prf
    assert ("-iter" in calls[0]) is prf
    assert calls[0][calls[0].index("-v2") + 1] == "aes-256-cbc"


def test_version_asked_once_per_run(cli, tmp_path, pfx_password, fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path)
    assert result.exit_code == 0, result.err
    assert fake.calls().count(["version"]) == 1
    assert len(fake.commands("pkcs12")) == 1


def test_up_to_date_run_starts_no_openssl(cli, tmp_path, pfx_password, fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    assert cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path).exit_code == 0
    before = len(fake.calls())
    assert cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path).exit_code == 0
    assert len(fake.calls()) == before


def test_password_never_on_command_line(cli, write_pipeline, workdir, monkeypatch, fake_openssl):
    secret = "Argv-Secret-$(id);|&-7"
    monkeypatch.setenv("PFX_PASSWORD", secret)
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    result = cli("run", "-v", write_pipeline(pkcs12_pipeline()), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    for call in fake.calls():
        assert all(secret not in arg for arg in call)
    assert secret not in result.out
    assert secret not in result.err
    assert openssl_info(workdir / "www.pfx", secret).mac_digest == "sha1"


def test_missing_binary_exits_2(cli, tmp_path, pfx_password, monkeypatch):
    missing = tmp_path / "nowhere" / "openssl"
    monkeypatch.setenv("CERTPIPE_OPENSSL", str(missing))
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert str(missing) in result.err
    assert "does not exist" in result.err
    assert "CERTPIPE_OPENSSL" in result.err
    assert "OpenSSL 1.1.1 or newer" in result.err


def test_openssl_102_exits_2(cli, tmp_path, pfx_password, fake_openssl):
    fake = fake_openssl(OPENSSL_102)
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert str(fake.path) in result.err
    assert "OpenSSL 1.0.2k-fips" in result.err
    assert "too old" in result.err
    assert "OpenSSL 1.1.1 or newer" in result.err
    assert fake.calls() == [["version"]]


@pytest.mark.parametrize("version, exit_code, expected", [
    ("Hello world", "0", "cannot tell the version"),
    ("", "0", "printed 'nothing'"),
    ("OpenSSL 3.0.19", "1", "exited with code 1"),
    ("LibreSSL 2.8.3", "0", "too old"),
])
def test_odd_version_answers_exit_2(cli, tmp_path, pfx_password, fake_openssl, monkeypatch,
                                    version, exit_code, expected):
    fake = fake_openssl(version)
    monkeypatch.setenv("FAKE_OPENSSL_VERSION_EXIT", exit_code)
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert expected in result.err
    assert str(fake.path) in result.err


def test_openssl_option_names_binary(cli, tmp_path, pfx_password):
    folder = tmp_path / "dir"
    folder.mkdir()
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out",
                 "--openssl", folder)
    assert result.exit_code == 2
    assert f"{folder} (from --openssl) is a folder" in result.err


def test_not_executable_exits_2(cli, tmp_path, pfx_password, monkeypatch):
    plain = tmp_path / "openssl"
    plain.write_text("#!/bin/sh\n", "utf-8")
    plain.chmod(0o644)
    monkeypatch.setenv("CERTPIPE_OPENSSL", str(plain))
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert "is not executable" in result.err


def test_name_not_on_path_exits_2(cli, tmp_path, pfx_password, monkeypatch):
    monkeypatch.setenv("CERTPIPE_OPENSSL", "openssl-does-not-exist-here")
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert "'openssl-does-not-exist-here' (from CERTPIPE_OPENSSL) not found on PATH" in result.err


def test_no_openssl_on_path_exits_2(cli, tmp_path, pfx_password, monkeypatch):
    monkeypatch.delenv("CERTPIPE_OPENSSL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert "openssl not found on PATH" in result.err


def test_rejected_option_is_named(cli, write_pipeline, workdir, pfx_password, fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026", mode="reject-iter")
    result = cli("run", write_pipeline(pkcs12_pipeline()), "--workdir", workdir)
    assert result.exit_code == 1
    assert f"{fake.path} (OpenSSL 3.0.19) rejected the option -iter" in result.err
    assert not (workdir / "www.pfx").exists()


def test_empty_variable_means_path_lookup(cli, write_pipeline, workdir, pfx_password,
                                          monkeypatch):
    monkeypatch.setenv("CERTPIPE_OPENSSL", "")
    result = cli("run", write_pipeline(pkcs12_pipeline()), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    assert os.path.exists(workdir / "www.pfx")
