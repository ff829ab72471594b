"""``certpipe match``: which private key (or CSR) fits a certificate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from caseutil import DATA
from certfactory import key_pem, new_key, pem, root


@pytest.fixture(scope="module")
def twenty_keys(tmp_path_factory):
    """A folder of twenty keys in several forms, the leaf's key among them, and its leaf."""
    folder = tmp_path_factory.mktemp("keys")
    ca = root()
    issuing = ca.issue("Issuing", ca=True)
    leaf = issuing.issue("www.example.test", key=rsa.generate_private_key(65537, 2048))
    keys = [new_key() for _ in range(17)] + [rsa.generate_private_key(65537, 2048)]
    for index, key in enumerate(keys):
        traditional = index % 3 == 0
        password = b"folder-pass" if index % 5 == 0 else None
        (folder / f"key-{index:02d}.pem").write_bytes(key_pem(key, password, traditional))
    (folder / "key-18.der").write_bytes(new_key().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (folder / "www-2027.key").write_bytes(key_pem(leaf.key, b"folder-pass"))
    (folder / "notes.txt").write_text("keys of the web farm\n")
    cert_dir = tmp_path_factory.mktemp("cert")
    (cert_dir / "certnew.p7b").write_bytes(pem(ca.cert, issuing.cert, leaf.cert))
    return folder, cert_dir / "certnew.p7b", leaf


def test_match_finds_key_in_folder_of_twenty(cli, twenty_keys, monkeypatch):
    folder, cert, _ = twenty_keys
    monkeypatch.setenv("KEY_PASS", "folder-pass")
    result = cli("match", cert, folder, "--password-env", "KEY_PASS")
    assert result.exit_code == 0, result.err
    assert len(list(folder.glob("*.pem")) + list(folder.glob("*.der"))
               + list(folder.glob("*.key"))) == 20
    assert "checked 20 private keys and 0 CSRs in 21 files" in result.out
    assert f"match: {folder / 'www-2027.key'} #1 (encrypted private key, RSA 2048)" in result.out
    assert result.out.count("match:") == 1
    assert "none matches" not in result.out


def test_match_without_password_names_locked_keys(cli, twenty_keys):
    folder, cert, _ = twenty_keys
    result = cli("match", cert, folder)
    assert result.exit_code == 1
    assert "none matches" in result.out
    assert "5 encrypted keys could not be opened" in result.out
    assert f"not checked: {folder / 'www-2027.key'} #1: encrypted" in result.out


def test_match_none_explains_key_made_elsewhere(cli, twenty_keys, tmp_path):
    folder, cert, _ = twenty_keys
    others = tmp_path / "others"
    shutil.copytree(folder, others)
    (others / "www-2027.key").unlink()
    result = cli("match", cert, others, "--password-file", DATA / "encrypted-rsa-key" /
                 "wrong-passphrase.txt")
    assert result.exit_code == 1
    assert "none matches: none of the 15 private keys checked carries this certificate's " \
           "public key." in result.out
    assert "4 encrypted keys could not be opened" in result.out
    assert "made elsewhere" in result.out
    assert "IIS makes such a certificate disappear" in result.out
    assert "re-key" in result.out


def test_match_csr_from_other_machine(cli):
    data = DATA / "cert-for-key-elsewhere"
    result = cli("match", data / "certnew.cer", data / "key.pem", data / "iis-request.csr")
    assert result.exit_code == 1
    assert f"CSR fits: {data / 'iis-request.csr'} #1" in result.out
    assert "none matches" in result.out
    assert f"The CSR {data / 'iis-request.csr'} #1 fits, so the key is wherever that CSR was " \
           f"generated." in result.out


def test_match_case_folder_picks_key(cli):
    data = DATA / "der-p7b-leaf-last"
    result = cli("match", data / "certnew.p7b", data)
    assert result.exit_code == 0
    assert f"match: {data / 'key.pem'} #1 (private key, RSA 2048)" in result.out
    assert f"CSR fits: {data / 'www.example.test.csr'} #1" in result.out


def test_match_key_inside_pfx(cli, tmp_path, monkeypatch):
    ca = root()
    leaf = ca.issue("www.example.test")
    (tmp_path / "leaf.crt").write_bytes(pem(leaf.cert))
    (tmp_path / "backup.pfx").write_bytes(pkcs12.serialize_key_and_certificates(
        b"www", leaf.key, leaf.cert, None, serialization.BestAvailableEncryption(b"pfx")))
    monkeypatch.setenv("PFX_PASS", "pfx")
    result = cli("match", tmp_path / "leaf.crt", tmp_path / "backup.pfx",
                 "--password-env", "PFX_PASS")
    assert result.exit_code == 0, result.out
    assert f"match: {tmp_path / 'backup.pfx'} #1 (private key, EC P-256)" in result.out


def test_match_json(cli, twenty_keys, monkeypatch):
    folder, cert, leaf = twenty_keys
    monkeypatch.setenv("KEY_PASS", "folder-pass")
    result = cli("match", cert, folder, "--password-env", "KEY_PASS", "--json")
    assert result.exit_code == 0
    document = json.loads(result.out)
    search = document["searches"][0]
    assert search["keys_checked"] == 20
    assert search["matching_keys"] == [{"path": str(folder / "www-2027.key"), "index": 1,
                                        "kind": "encrypted private key"}]
    assert document["files_skipped"][0]["path"] == str(folder / "notes.txt")


def test_match_usage_errors(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    data = DATA / "der-p7b-leaf-last"
    result = cli("match", data / "certnew.cer", data, "--password-env", "NO_SUCH_VARIABLE")
    assert result.exit_code == 2
    assert "environment variable NO_SUCH_VARIABLE is not set" in result.err
    result = cli("match", data / "key.pem", data)
    assert result.exit_code == 2
    assert "expected a certificate or a CSR" in result.err
    result = cli("match", tmp_path / "missing.cer", data)
    assert result.exit_code == 2
    assert "file not found" in result.err


def test_match_password_never_printed(cli, twenty_keys, monkeypatch):
    folder, cert, _ = twenty_keys
    monkeypatch.setenv("KEY_PASS", "folder-pass")
    result = cli("match", cert, folder, "--password-env", "KEY_PASS", "--json")
    assert "folder-pass" not in result.out + result.err


def test_match_runs_as_module():
    data = DATA / "der-p7b-leaf-last"
    done = subprocess.run([sys.executable, "-m", "certpipe", "match", str(data / "certnew.cer"),
                           str(data / "key.pem")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "match:" in done.stdout
