"""``certpipe inspect``: a summary of each artifact and of which files belong together."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from caseutil import DATA
from certfactory import DAY, key_pem, pem, root


def test_inspect_reply_key_and_csr_belong_together(cli):
    data = DATA / "der-p7b-leaf-last"
    result = cli("inspect", data / "certnew.p7b", data / "key.pem", data / "www.example.test.csr")
    assert result.exit_code == 0, result.err
    out = result.out
    assert f"{data / 'certnew.p7b'}: DER PKCS#7 bundle of 3 certificates" in out
    assert "role:                 leaf (end entity)" in out
    assert "names (SAN):          DNS:www.example.test, DNS:example.test" in out
    assert "key:                  RSA 2048" in out
    assert "SHA-1 (thumbprint):" in out
    assert "belong together (same public key):" in out
    line = next(line for line in out.splitlines() if line.startswith("  RSA 2048 091f4698"))
    assert f"{data / 'certnew.p7b'} #3 (certificate)" in line
    assert f"{data / 'key.pem'} #1 (private key)" in line
    assert f"{data / 'www.example.test.csr'} #1 (certificate request)" in line
    assert (f"chain: {data / 'certnew.p7b'} #3 (CN=www.example.test,O=Example Org,C=XX) -> "
            f"{data / 'certnew.p7b'} #2") in out


def test_inspect_json_document(cli):
    data = DATA / "chain-root-first"
    result = cli("inspect", data / "bundle.p7b", data / "key.pem", "--json")
    assert result.exit_code == 0
    document = json.loads(result.out)
    files = document["files"]
    assert [len(f["items"]) for f in files] == [4, 1]
    leaf = next(i for i in files[0]["items"] if i["role"] == "leaf (end entity)")
    assert leaf["subject"].startswith("CN=mail.example.test")
    assert leaf["public_key_sha256"] == files[1]["items"][0]["public_key_sha256"]
    assert [m["kind"] for m in document["belong_together"][0]["members"]] == [
        "certificate", "private key"]
    assert [c["subject"].split(",")[0] for c in document["chains"][0]] == [
        "CN=mail.example.test", "CN=Example Test Issuing CA 2", "CN=Example Test Policy CA",
        "CN=Example Test Root CA"]


def test_inspect_names_wrong_files(cli):
    data = DATA / "wrong-file-as-key"
    result = cli("inspect", data / "ta.key", DATA / "extension-lies" / "server.pfx",
                 DATA / "encrypted-rsa-key" / "passphrase.txt")
    assert result.exit_code == 1  # the text file cannot be read
    assert "the name ends in .pfx, which suggests PKCS#12, but the file is a PEM certificate" in (
        result.out)
    assert "the name ends in .key, which suggests private key" in result.out
    assert f"{DATA / 'encrypted-rsa-key' / 'passphrase.txt'}: cannot be read: is a text file " \
           f"without any PEM block" in result.out


def test_inspect_encrypted_key_with_password_file(cli):
    data = DATA / "encrypted-rsa-key"
    locked = cli("inspect", data / "key.pem")
    assert "encryption:           DES-EDE3-CBC" in locked.out
    assert "problem: encrypted; give its passphrase with --password-env" in locked.out
    opened = cli("inspect", data / "key.pem", "--password-file", data / "passphrase.txt")
    assert "key:                  RSA 2048" in opened.out
    assert f"opened with the password from file:{data / 'passphrase.txt'}" in opened.out
    assert "Example key pass 10" not in opened.out


def test_inspect_csr_problems(cli):
    data = DATA / "csr-san"
    result = cli("inspect", data / "www-cn-only.csr", data / "www-san-lacks-cn.csr",
                 data / "www-good.csr")
    blocks = result.out.split(str(data))
    cn_only = next(b for b in blocks if b.startswith("/www-cn-only.csr"))
    lacks = next(b for b in blocks if b.startswith("/www-san-lacks-cn.csr"))
    good = next(b for b in blocks if b.startswith("/www-good.csr"))
    assert "problem: the CSR has no subjectAltName; browsers ignore the CN" in cn_only
    assert "problem: CN www.example.test is not in the CSR's subjectAltName list" in lacks
    assert "problem" not in good


def test_inspect_rfc4514_subject(cli):
    result = cli("inspect", DATA / "subject-escaping" / "subject-ok.csr")
    assert ("subject:              CN=www.example.test,OU=Sales \\+ Marketing,OU=R&D/Web Ops,"
            "O=Example\\, Inc.,C=XX") in result.out


def test_inspect_expired_and_sha1_problems(cli, tmp_path):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    ca = root(not_before=now - 900 * DAY, not_after=now + 900 * DAY)
    old = ca.issue("old.example.test", not_before=now - 400 * DAY, not_after=now - DAY)
    (tmp_path / "old.crt").write_bytes(pem(old.cert))
    result = cli("inspect", tmp_path / "old.crt", DATA / "sha1-leaf" /
                 "legacy-app.example.test.crt")
    assert "problem: expired on" in result.out
    assert "problem: signed with SHA-1; OpenSSL 3 servers refuse it ('ca md too weak')" in (
        result.out)


def test_inspect_pfx_with_and_without_password(cli, tmp_path, monkeypatch):
    ca = root()
    leaf = ca.issue("www.example.test")
    (tmp_path / "site.pfx").write_bytes(pkcs12.serialize_key_and_certificates(
        b"site 2027", leaf.key, leaf.cert, [ca.cert],
        serialization.BestAvailableEncryption(b"pfx-secret")))
    locked = cli("inspect", tmp_path / "site.pfx")
    assert "#1 PKCS#12 (locked)" in locked.out
    assert "protected by a password" in locked.out
    monkeypatch.setenv("PFX_PASS", "pfx-secret")
    opened = cli("inspect", tmp_path / "site.pfx", "--password-env", "PFX_PASS")
    assert "PKCS#12 (PFX) file with a private key and 2 certificates" in opened.out
    assert "friendly name:        site 2027" in opened.out
    assert "pfx-secret" not in opened.out


def test_inspect_folder_and_key_pairs(cli, tmp_path):
    ca = root()
    leaf = ca.issue("www.example.test")
    (tmp_path / "a.key").write_bytes(key_pem(leaf.key))
    (tmp_path / "b.crt").write_bytes(pem(leaf.cert))
    result = cli("inspect", tmp_path)
    assert result.exit_code == 0
    assert f"{tmp_path / 'a.key'} #1 (private key), {tmp_path / 'b.crt'} #1 (certificate)" in (
        result.out)


def test_inspect_missing_file(cli, tmp_path):
    result = cli("inspect", tmp_path / "nope.cer")
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.cer'}: cannot be read: file not found" in result.out
