"""The server_files step: PEM for nginx, Apache and HAProxy, DER, and PKCS#8 keys."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certpipe.artifacts import asn1, pbe
from conftest import needs_openssl
from pfx_support import fake_openssl, pki, workdir  # noqa: F401

pytestmark = needs_openssl


def pipeline(settings: str, chain: str = "chain.pem") -> str:
    head = f"""\
        version: 1
        steps:
          - name: files
            kind: server_files
            key: www.key
            cert: www.crt
            chain: {chain}
        """
    return textwrap.dedent(head) + textwrap.indent(textwrap.dedent(settings), "    ")


def assert_clean_pem(path) -> None:
    data = path.read_bytes()
    assert b"\r" not in data
    assert data.endswith(b"\n")
    inside = False
    for line in data.decode().splitlines():
        if line.startswith("-----BEGIN "):
            inside = True
        elif line.startswith("-----END "):
            inside = False
        else:
            assert inside, f"text outside a block in {path}: {line!r}"


def fingerprints(certs):
    return [c.fingerprint(c.signature_hash_algorithm) for c in certs]


def test_pem_fullchain(cli, write_pipeline, workdir, pki):
    text = pipeline("format: pem_fullchain\ncert_out: nginx/fullchain.pem\n"
                    "key_out: nginx/key.pem\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    fullchain = workdir / "nginx" / "fullchain.pem"
    certs = x509.load_pem_x509_certificates(fullchain.read_bytes())
    assert fingerprints(certs) == fingerprints([pki.leaf_cert, pki.intermediate_cert])
    key_path = workdir / "nginx" / "key.pem"
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert key.public_key() == pki.leaf_cert.public_key()
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(fullchain.stat().st_mode) == 0o644
    for path in (fullchain, key_path):
        assert_clean_pem(path)
    checked = subprocess.run(["openssl", "x509", "-in", str(fullchain), "-noout", "-subject"],
                             capture_output=True, text=True)
    assert "www.example.test" in checked.stdout


def test_pem_separate(cli, write_pipeline, workdir, pki):
    text = pipeline("format: pem_separate\ncert_out: cert.pem\nchain_out: ca.pem\n"
                    "key_out: key.pem\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    cert = x509.load_pem_x509_certificates((workdir / "cert.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((workdir / "ca.pem").read_bytes())
    assert fingerprints(cert) == fingerprints([pki.leaf_cert])
    assert fingerprints(chain) == fingerprints([pki.intermediate_cert])
    for name in ("cert.pem", "ca.pem", "key.pem"):
        assert_clean_pem(workdir / name)


def test_pem_separate_without_chain_fails(cli, write_pipeline, workdir):
    text = pipeline("format: pem_separate\nchain_include: leaf\ncert_out: cert.pem\n"
                    "chain_out: ca.pem\nkey_out: key.pem\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 1
    assert "no chain certificates" in result.err
    assert "pem_fullchain" in result.err


def test_pem_combined_for_haproxy(cli, write_pipeline, workdir, pki):
    text = pipeline("format: pem_combined\nout: haproxy/site.pem\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    path = workdir / "haproxy" / "site.pem"
    data = path.read_bytes()
    assert_clean_pem(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    labels = [line for line in data.decode().splitlines() if line.startswith("-----BEGIN")]
    assert labels == ["-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----",
                      "-----BEGIN PRIVATE KEY-----"]
    key = serialization.load_pem_private_key(data, None)
    assert key.public_key() == pki.leaf_cert.public_key()


def test_full_chain_includes_root(cli, write_pipeline, workdir, pki):
    text = pipeline("format: pem_fullchain\nchain_include: full\ncert_out: full.pem\n"
                    "key_out: key.pem\n", chain="chain-with-root.pem")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    certs = x509.load_pem_x509_certificates((workdir / "full.pem").read_bytes())
    assert fingerprints(certs) == fingerprints([pki.leaf_cert, pki.intermediate_cert,
                                                pki.root_cert])


def test_der_certificate(cli, write_pipeline, workdir, pki):
    text = textwrap.dedent("""\
        version: 1
        steps:
          - name: der
            kind: server_files
            format: der_cert
            cert: www.crt
            out: www.cer
        """)
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    cert = x509.load_der_x509_certificate((workdir / "www.cer").read_bytes())
    assert cert == pki.leaf_cert
    assert "no chain given" not in result.out


def test_encrypted_pkcs8_key(cli, write_pipeline, workdir, pki, pfx_password):
    text = textwrap.dedent("""\
        version: 1
        steps:
          - name: p8
            kind: server_files
            format: pkcs8_key
            key: www.key
            passphrase: env:PFX_PASSWORD
            out: www.p8.pem
        """)
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    path = workdir / "www.p8.pem"
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert_clean_pem(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(data, pfx_password.encode())
    assert key.public_key() == pki.leaf_cert.public_key()
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(data, None)
    body = b"".join(data.splitlines()[1:-1])
    info = asn1.sequence(asn1.parse_single(base64.b64decode(body), "key"), "key", 2)
    encryption = pbe.parse_algorithm(info[0], "algorithm")
    assert (encryption.scheme, encryption.cipher, encryption.prf) == (
        "pbes2", "AES-256-CBC", "hmacWithSHA256")
    shown = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", "env:PFX_PASSWORD",
                            "-noout"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr


def test_unencrypted_pkcs8_key_warns(cli, write_pipeline, workdir, pki, fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    text = textwrap.dedent("""\
        version: 1
        steps:
          - name: p8
            kind: server_files
            format: pkcs8_key
            key: www.key
            cert: www.crt
            passphrase: none
            out: plain.pem
        """)
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    assert "unencrypted" in result.out
    key = serialization.load_pem_private_key((workdir / "plain.pem").read_bytes(), None)
    assert key.public_key() == pki.leaf_cert.public_key()
    assert fake.calls() == []


def test_pem_formats_start_no_openssl(cli, write_pipeline, workdir, fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    text = pipeline("format: pem_combined\nout: site.pem\n")
    assert cli("run", write_pipeline(text), "--workdir", workdir).exit_code == 0
    assert fake.calls() == []


def test_encrypted_input_key(cli, write_pipeline, workdir, pki, monkeypatch):
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    encrypted = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.BestAvailableEncryption(b"in-pass"))
    (workdir / "enc.key").write_bytes(encrypted)
    monkeypatch.setenv("KEY_PASS", "in-pass")
    monkeypatch.setenv("OUT_PASS", "out-pass")
    text = textwrap.dedent("""\
        version: 1
        steps:
          - name: nginx
            kind: server_files
            format: pem_fullchain
            key: enc.key
            key_passphrase: env:KEY_PASS
            cert: www.crt
            chain: chain.pem
            cert_out: fullchain.pem
            key_out: plain.key
          - name: p8
            kind: server_files
            format: pkcs8_key
            key: enc.key
            key_passphrase: env:KEY_PASS
            passphrase: env:OUT_PASS
            out: out.p8.pem
        """)
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    plain = serialization.load_pem_private_key((workdir / "plain.key").read_bytes(), None)
    assert plain.public_key() == pki.leaf_cert.public_key()
    again = serialization.load_pem_private_key((workdir / "out.p8.pem").read_bytes(),
                                               b"out-pass")
    assert again.public_key() == pki.leaf_cert.public_key()


def test_other_key_at_output_is_moved(cli, write_pipeline, workdir, pki):
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (workdir / "key.pem").write_bytes(other)
    text = pipeline("format: pem_fullchain\ncert_out: fullchain.pem\nkey_out: key.pem\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    backups = list(workdir.glob("key.pem.replaced-*"))
    assert [b.read_bytes() for b in backups] == [other]
    assert "moved to" in result.out


def test_key_that_is_not_the_certs_fails(cli, write_pipeline, workdir, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (workdir / "www.key").write_bytes(other)
    text = pipeline("format: pem_combined\nout: site.pem\n")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 1
    assert "does not belong to the key" in result.err
    assert not (workdir / "site.pem").exists()


def test_crlf_and_der_inputs_give_clean_pem(cli, write_pipeline, workdir, pki):
    leaf_der = pki.leaf_cert.public_bytes(serialization.Encoding.DER)
    (workdir / "leaf.cer").write_bytes(leaf_der)
    chain = (workdir / "chain.pem").read_bytes().replace(b"\n", b"\r\n")
    (workdir / "chain-crlf.pem").write_bytes(b"Bag Attributes\r\n    junk\r\n" + chain)
    text = textwrap.dedent("""\
        version: 1
        steps:
          - name: nginx
            kind: server_files
            format: pem_fullchain
            key: www.key
            cert: leaf.cer
            chain: chain-crlf.pem
            cert_out: fullchain.pem
            key_out: key.pem
        """)
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 0, result.err
    assert_clean_pem(workdir / "fullchain.pem")
    assert b"Bag Attributes" not in (workdir / "fullchain.pem").read_bytes()


def test_wrong_chain_order_fails(cli, write_pipeline, workdir, pki):
    (workdir / "reversed.pem").write_bytes(pki.root.read_bytes() + pki.chain.read_bytes())
    text = pipeline("format: pem_combined\nout: site.pem\n", chain="reversed.pem")
    result = cli("run", write_pipeline(text), "--workdir", workdir)
    assert result.exit_code == 1
    assert "go up one issuer at a time" in result.err


@pytest.mark.parametrize("settings, message", [
    ("format: pem_fullchain\ncert_out: a.pem\n", "'key_out' is required"),
    ("format: der_cert\nout: a.cer\n", "'chain' does not apply"),
    ("format: pem_combined\nout: a.pem\nkey_out: b.pem\n", "'key_out' does not apply"),
    ("format: pem_fullchain\ncert_out: a.pem\nkey_out: a.pem\n", "same file"),
    ("format: pem_fullchain\ncert_out: a.pem\nkey_out: www.key\n", "overwrite the key"),
    ("format: nginx\nout: a.pem\n", "not allowed"),
])
def test_invalid_settings_exit_2(cli, write_pipeline, workdir, settings, message):
    result = cli("run", write_pipeline(pipeline(settings)), "--workdir", workdir)
    assert result.exit_code == 2
    assert message in result.err


def test_second_run_up_to_date(cli, write_pipeline, workdir):
    text = pipeline("format: pem_fullchain\ncert_out: fullchain.pem\nkey_out: key.pem\n")
    path = write_pipeline(text)
    assert cli("run", path, "--workdir", workdir).exit_code == 0
    result = cli("run", path, "--workdir", workdir)
    assert result.exit_code == 0
    assert " up to date " in result.out
    assert os.path.exists(workdir / "key.pem")
