"""The pkcs12 step with the real openssl: every profile, target and algorithm setting,
read back both by certpipe's own reader and by ``openssl pkcs12 -info``."""

from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certpipe.artifacts.pfx_info import read_pfx_file
from conftest import PIPELINES, needs_openssl
from pfx_support import fake_openssl, openssl_info, pki, pkcs12_pipeline, workdir  # noqa: F401

pytestmark = needs_openssl

TRIPLE_DES = "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048"
AES_256 = "PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256"


def run_export(cli, write_pipeline, workdir, extra=""):
    return cli("run", write_pipeline(pkcs12_pipeline(extra)), "--workdir", workdir)


def test_compat_profile_uses_3des_and_sha1(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir, "profile: compat\n")
    assert result.exit_code == 0, result.err
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.mac_digest == "sha1"
    assert info.mac_iterations == 2048
    assert info.encrypted_data == [TRIPLE_DES]
    assert info.shrouded_keys == [TRIPLE_DES]
    assert info.certificate_bags == 2
    assert not re.search(r"PBES2|AES|RC2", info.text)


def test_modern_profile_uses_aes_and_sha256(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir, "profile: modern\n")
    assert result.exit_code == 0, result.err
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.mac_digest == "sha256"
    assert info.mac_iterations == 2048
    assert info.encrypted_data == [AES_256]
    assert info.shrouded_keys == [AES_256]


def test_own_reader_matches_openssl_info(cli, write_pipeline, workdir, pfx_password):
    for profile, scheme, cipher, mac in [("compat", "pkcs12-pbe", "3DES", "sha1"),
                                         ("modern", "pbes2", "AES-256-CBC", "sha256")]:
        out = f"{profile}.pfx"
        text = pkcs12_pipeline(f"profile: {profile}\n", out=out)
        assert cli("run", write_pipeline(text), "--workdir", workdir).exit_code == 0
        found = read_pfx_file(workdir / out, pfx_password.encode()).algorithms()
        assert [e.scheme for e in found.certificates] == [scheme], profile
        assert [e.cipher for e in found.certificates] == [cipher], profile
        assert [e.cipher for e in found.keys] == [cipher], profile
        assert [e.iterations for e in found.keys] == [2048], profile
        assert found.mac is not None and found.mac.digest == mac, profile


def test_no_setting_means_compat_with_note(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir)
    assert result.exit_code == 0, result.err
    assert "no target named" in result.out
    assert "depends on the Windows version" in result.out
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.encrypted_data == [TRIPLE_DES]
    assert info.mac_digest == "sha1"


def test_modern_without_target_warns(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir, "profile: modern\n")
    assert result.exit_code == 0, result.err
    assert "warning: no target named" in result.out
    assert "Server 2016 and older" in result.out


@pytest.mark.parametrize("target, cipher_line, mac", [
    ("windows-server-2016", TRIPLE_DES, "sha1"),
    ("windows-server-2012-r2", TRIPLE_DES, "sha1"),
    ("windows-10-before-1709", TRIPLE_DES, "sha1"),
    ("windows-server-2019", AES_256, "sha256"),
    ("windows-11", AES_256, "sha256"),
    ("openssl-3", AES_256, "sha256"),
])
def test_target_picks_profile(cli, write_pipeline, workdir, pfx_password, target, cipher_line,
                              mac):
    result = run_export(cli, write_pipeline, workdir, f"target: {target}\n")
    assert result.exit_code == 0, result.err
    assert "no target named" not in result.out
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.encrypted_data == [cipher_line]
    assert info.shrouded_keys == [cipher_line]
    assert info.mac_digest == mac


def test_mixed_targets_get_compat(cli, write_pipeline, workdir, pfx_password):
    extra = "target: [windows-server-2022, windows-server-2016]\n"
    assert run_export(cli, write_pipeline, workdir, extra).exit_code == 0
    assert openssl_info(workdir / "www.pfx", pfx_password).encrypted_data == [TRIPLE_DES]


def test_modern_profile_for_2016_is_invalid(cli, write_pipeline, workdir, pfx_password):
    extra = "target: windows-server-2016\nprofile: modern\n"
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 2
    assert "target windows-server-2016" in result.err
    assert "not importable" in result.err
    assert "PBES2" in result.err
    assert "Use profile: compat" in result.err
    assert not (workdir / "www.pfx").exists()


def test_windows_iteration_limit_is_invalid(cli, write_pipeline, workdir, pfx_password):
    extra = "target: windows-server-2019\niterations: 700000\n"
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 2
    assert "600000" in result.err


def test_custom_algorithms(cli, write_pipeline, workdir, pfx_password):
    extra = """\
        profile: custom
        cert_encryption: none
        key_encryption: aes-128-cbc
        mac: sha512
        iterations: 5000
        """
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 0, result.err
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.mac_digest == "sha512"
    assert info.mac_iterations == 5000
    assert info.encrypted_data == []
    assert info.plain_data == 2
    assert info.shrouded_keys == ["PBES2, PBKDF2, AES-128-CBC, Iteration 5000, PRF hmacWithSHA256"]


def test_custom_needs_every_algorithm(cli, write_pipeline, workdir, pfx_password):
    extra = "profile: custom\ncert_encryption: aes-256-cbc\n"
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 2
    assert "key_encryption" in result.err


def test_algorithms_need_custom_profile(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir, "profile: compat\nmac: sha256\n")
    assert result.exit_code == 2
    assert "mac" in result.err


@pytest.mark.parametrize("value", ["pbe-sha1-rc2-40", "rc2-40", "PBE-SHA1-RC2-40"])
def test_rc2_cannot_be_asked_for(cli, write_pipeline, workdir, pfx_password, value):
    extra = f"profile: custom\ncert_encryption: {value}\nkey_encryption: pbe-sha1-3des\nmac: sha1\n"
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 2
    assert "cert_encryption" in result.err


def test_custom_for_target_it_fails(cli, write_pipeline, workdir, pfx_password):
    extra = """\
        target: windows-server-2012
        profile: custom
        cert_encryption: pbe-sha1-3des
        key_encryption: aes-256-cbc
        mac: sha1
        """
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 2
    assert "key: PBES2" in result.err


def test_nomaciter_makes_one_mac_iteration(cli, write_pipeline, workdir, pfx_password):
    extra = "target: windows-server-2016\nnomaciter: true\niterations: 4000\n"
    result = run_export(cli, write_pipeline, workdir, extra)
    assert result.exit_code == 0, result.err
    info = openssl_info(workdir / "www.pfx", pfx_password)
    assert info.mac_digest == "sha1"
    assert info.mac_iterations == 1
    assert info.encrypted_data == ["pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 4000"]
    found = read_pfx_file(workdir / "www.pfx", pfx_password.encode())
    assert found.mac is not None and found.mac.iterations == 1


def test_csp_attribute_on_key_bag(cli, write_pipeline, workdir, pfx_password):
    csp = "Microsoft Enhanced RSA and AES Cryptographic Provider"
    result = run_export(cli, write_pipeline, workdir, f"target: windows-any\ncsp: {csp}\n")
    assert result.exit_code == 0, result.err
    shown = subprocess.run(
        ["openssl", "pkcs12", "-in", str(workdir / "www.pfx"), "-nocerts", "-noenc",
         "-passin", "env:PFX_PASSWORD"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert f"Microsoft CSP Name: {csp}" in shown.stdout
    keys = read_pfx_file(workdir / "www.pfx", pfx_password.encode()).bags("shrouded key")
    assert [bag.csp_name for bag in keys] == [csp]


@pytest.mark.parametrize("include, chain, count", [
    ("leaf", "chain-with-root.pem", 0),
    ("intermediates", "chain-with-root.pem", 1),
    ("intermediates", "chain.pem", 1),
    ("full", "chain-with-root.pem", 2),
])
def test_chain_include(cli, write_pipeline, workdir, pfx_password, include, chain, count):
    text = pkcs12_pipeline(f"chain_include: {include}\n", chain=chain)
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    bundle = pkcs12.load_pkcs12((workdir / "www.pfx").read_bytes(), pfx_password.encode())
    assert len(bundle.additional_certs) == count
    assert openssl_info(workdir / "www.pfx", pfx_password).certificate_bags == count + 1


def test_chain_file_kept_by_default(cli, write_pipeline, workdir, pfx_password):
    text = pkcs12_pipeline(chain="chain-with-root.pem")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    bundle = pkcs12.load_pkcs12((workdir / "www.pfx").read_bytes(), pfx_password.encode())
    assert len(bundle.additional_certs) == 2
    assert "left out the root" not in result.out


def test_intermediates_leave_root_out_with_note(cli, write_pipeline, workdir, pfx_password):
    text = pkcs12_pipeline("chain_include: intermediates\n", chain="chain-with-root.pem")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    assert "left out the root" in result.out
    assert "chain_include: full" in result.out


def test_full_chain_without_root_fails(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir, "chain_include: full\n")
    assert result.exit_code == 1
    assert "needs the self-signed root" in result.err
    assert "include_root: true" in result.err
    assert not (workdir / "www.pfx").exists()


def test_friendly_name_kept(cli, write_pipeline, workdir, pfx_password):
    result = run_export(cli, write_pipeline, workdir, "friendly_name: Müller www 2026\n")
    assert result.exit_code == 0, result.err
    bundle = pkcs12.load_pkcs12((workdir / "www.pfx").read_bytes(), pfx_password.encode())
    assert bundle.cert is not None
    assert bundle.cert.friendly_name == "Müller www 2026".encode()
    keys = read_pfx_file(workdir / "www.pfx", pfx_password.encode()).bags("shrouded key")
    assert [bag.friendly_name for bag in keys] == ["Müller www 2026"]


def test_pfx_mode_0600(cli, write_pipeline, workdir, pfx_password):
    old = os.umask(0)
    try:
        assert run_export(cli, write_pipeline, workdir).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((workdir / "www.pfx").stat().st_mode) == 0o600


def test_none_password_gives_empty_password(cli, write_pipeline, workdir):
    text = pkcs12_pipeline("target: windows-server-2016\n").replace("env:PFX_PASSWORD", "none")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    info = openssl_info(workdir / "www.pfx", "")
    assert info.mac_digest == "sha1"
    assert read_pfx_file(workdir / "www.pfx", b"").password_checked


def test_non_ascii_password_made_from_characters(cli, write_pipeline, workdir, monkeypatch):
    monkeypatch.setenv("PFX_PASSWORD", "Grüße-€-Paß")
    assert run_export(cli, write_pipeline, workdir, "target: windows-any\n").exit_code == 0
    info = read_pfx_file(workdir / "www.pfx", "Grüße-€-Paß".encode())
    assert info.password_form == "utf-16"
    assert openssl_info(workdir / "www.pfx", "Grüße-€-Paß").mac_digest == "sha1"


def test_other_key_in_old_pfx_is_kept(cli, write_pipeline, workdir, pfx_password, tmp_path):
    other = tmp_path / "other.pfx"
    assert cli("run", write_pipeline(pkcs12_pipeline()), "--workdir", workdir).exit_code == 0
    old = (workdir / "www.pfx").read_bytes()
    other.write_bytes(old)
    # A file at the output path that cannot be opened with the password is moved aside.
    (workdir / "www.pfx").write_bytes(b"not a pfx")
    (workdir / ".certpipe" / "state.json").unlink()
    result = cli("run", write_pipeline(pkcs12_pipeline()), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    backups = list(workdir.glob("www.pfx.replaced-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == b"not a pfx"
    assert "moved to" in result.out


def test_same_key_pfx_is_replaced(cli, write_pipeline, workdir, pfx_password):
    assert run_export(cli, write_pipeline, workdir).exit_code == 0
    assert run_export(cli, write_pipeline, workdir, "profile: modern\n").exit_code == 0
    assert list(workdir.glob("www.pfx.replaced-*")) == []


def test_iis_example_uses_compat(cli, tmp_path, pfx_password):
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path)
    assert result.exit_code == 0, result.err
    info = openssl_info(tmp_path / "www.example.test.pfx", pfx_password)
    assert info.encrypted_data == [TRIPLE_DES]
    assert info.shrouded_keys == [TRIPLE_DES]
    assert info.mac_digest == "sha1"
    assert "no target named" not in result.out


def test_compat_works_without_legacy_module(cli, write_pipeline, workdir, pfx_password,
                                            monkeypatch, tmp_path):
    empty = tmp_path / "no-modules"
    empty.mkdir()
    monkeypatch.setenv("OPENSSL_MODULES", str(empty))
    result = run_export(cli, write_pipeline, workdir, "target: windows-server-2016\n")
    assert result.exit_code == 0, result.err
    assert openssl_info(workdir / "www.pfx", pfx_password).encrypted_data == [TRIPLE_DES]


def test_check_catches_wrong_algorithms(cli, write_pipeline, workdir, pfx_password,
                                        fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026", mode="write-aes")
    result = run_export(cli, write_pipeline, workdir, "target: windows-server-2016\n")
    assert result.exit_code == 1
    assert "did not write what profile compat" in result.err
    assert "found PBES2" in result.err
    assert str(fake.path) in result.err
    assert not (workdir / "www.pfx").exists()


def test_password_bytes_form_rejected(cli, write_pipeline, workdir, monkeypatch, fake_openssl):
    fake_openssl("LibreSSL 3.8.2", mode="password-bytes")
    monkeypatch.setenv("PFX_PASSWORD", "Grüße")
    result = run_export(cli, write_pipeline, workdir, "target: windows-server-2016\n")
    assert result.exit_code == 1
    assert "password's bytes, not its characters" in result.err
    assert not (workdir / "www.pfx").exists()
