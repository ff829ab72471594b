"""Intake by content: every shape of certificate file, and clear errors for everything else."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from certfactory import der, fingerprints, key_pem, new_key, pem, root
from certpipe.artifacts.intake import (
    load_pkcs12_file, read_certificates, read_contents, read_csr,
)
from certpipe.artifacts.keys import read_private_key
from certpipe.errors import ArtifactError
from certpipe.secrets import Secret, SecretRef
from conftest import needs_openssl


@pytest.fixture(scope="module")
def pki():
    ca = root("Intake Root")
    issuing = ca.issue("Intake Issuing", ca=True)
    leaf = issuing.issue("www.example.test")
    return ca, issuing, leaf


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def secret(value: bytes) -> Secret:
    return Secret(SecretRef("env:TEST_PASSWORD"), value)


def p7_der(*certs) -> bytes:
    return pkcs7.serialize_certificates(list(certs), serialization.Encoding.DER)


def p7_pem(*certs) -> bytes:
    return pkcs7.serialize_certificates(list(certs), serialization.Encoding.PEM)


# Shapes that must read.

@pytest.mark.parametrize("shape", ["plain", "crlf", "bom", "utf16", "text-around",
                                   "no-final-newline", "shuffled"])
def test_pem_bundle_shapes_read(tmp_path, pki, shape):
    ca, issuing, leaf = pki
    data = pem(leaf.cert, issuing.cert, ca.cert)
    if shape == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif shape == "bom":
        data = b"\xef\xbb\xbf" + data
    elif shape == "utf16":
        data = data.decode().encode("utf-16")
    elif shape == "text-around":
        data = (b"Bag Attributes\n    friendlyName: www\nsubject=/CN=www\n\n" + pem(leaf.cert)
                + b"some notes\n" + pem(issuing.cert, ca.cert) + b"trailing text\n")
    elif shape == "no-final-newline":
        data = data.rstrip(b"\n")
    elif shape == "shuffled":
        data = pem(ca.cert, leaf.cert, issuing.cert)
    contents = read_certificates(write(tmp_path, "bundle.txt", data))
    assert sorted(fingerprints(contents.certs)) == sorted(
        fingerprints([leaf.cert, issuing.cert, ca.cert]))


@pytest.mark.parametrize("first, second", [
    ("key", "cert"), ("cert", "key"), ("csr", "cert"), ("cert", "pkcs7"),
])
def test_glued_end_begin_any_labels(tmp_path, pki, first, second):
    _, issuing, leaf = pki
    csr_pem = subprocess_free_csr(leaf.key)
    parts = {"key": key_pem(leaf.key), "cert": pem(leaf.cert), "csr": csr_pem,
             "pkcs7": p7_pem(issuing.cert)}
    data = parts[first].rstrip(b"\n") + parts[second]
    path = write(tmp_path, "glued.pem", data)
    contents = read_contents(path)
    assert any("glued together" in note and f"{path}:" in note for note in contents.notes)
    assert len(contents.certs) == ("cert" in (first, second)) + ("pkcs7" in (first, second))
    assert len(contents.key_blocks) == ("key" in (first, second))
    assert len(contents.csrs) == ("csr" in (first, second))


def subprocess_free_csr(key) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from certfactory import name

    request = x509.CertificateSigningRequestBuilder().subject_name(name("csr.example.test"))
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("filename, make", [
    ("leaf.crt", lambda c: der(c[2])),
    ("reply.cer", lambda c: p7_der(*c)),
    ("reply.crt", lambda c: p7_pem(*c)),
    ("reply.p7b", lambda c: base64.encodebytes(p7_der(*c))),
    ("reply.pem", lambda c: b"".join(der(x) for x in c)),
    ("reply.p7c", lambda c: p7_pem(*c).replace(b"PKCS7", b"CERTIFICATE")),
])
def test_shapes_read_by_content(tmp_path, pki, filename, make):
    ca, issuing, leaf = pki
    certs = [ca.cert, issuing.cert, leaf.cert]
    contents = read_certificates(write(tmp_path, filename, make(certs)))
    expected = [leaf.cert] if filename == "leaf.crt" else certs
    assert sorted(fingerprints(contents.certs)) == sorted(fingerprints(expected))


def test_pem_pasted_from_json(tmp_path, pki):
    text = pem(pki[2].cert).decode().replace("\n", "\\n")
    path = write(tmp_path, "cert.json.txt", f'cert: "{text}"'.encode())
    assert fingerprints(read_certificates(path).certs) == fingerprints([pki[2].cert])


def test_pkcs12_reply_needs_allow_and_password(tmp_path, pki):
    ca, issuing, leaf = pki
    data = pkcs12.serialize_key_and_certificates(
        b"www", leaf.key, leaf.cert, [issuing.cert, ca.cert],
        serialization.BestAvailableEncryption(b"pfx-pass"))
    path = write(tmp_path, "reply.bin", data)
    with pytest.raises(ArtifactError, match="is a PKCS#12 \\(PFX\\) file; certificates are"):
        read_certificates(path)
    with pytest.raises(ArtifactError, match="protected by a password"):
        read_certificates(path, allow_pkcs12=True)
    with pytest.raises(ArtifactError, match="cannot open the PKCS#12 file with the password "
                                            "from env:TEST_PASSWORD"):
        read_certificates(path, [secret(b"wrong")], allow_pkcs12=True)
    contents = read_certificates(path, [secret(b"pfx-pass")], allow_pkcs12=True)
    assert fingerprints(contents.certs) == fingerprints([leaf.cert, issuing.cert, ca.cert])
    assert contents.cert_names[0] == "www"
    assert len(contents.keys) == 1


def test_pkcs12_without_password_opens(tmp_path, pki):
    data = pkcs12.serialize_key_and_certificates(
        None, pki[2].key, pki[2].cert, None, serialization.NoEncryption())
    contents = read_certificates(write(tmp_path, "a.pfx", data), allow_pkcs12=True)
    assert fingerprints(contents.certs) == fingerprints([pki[2].cert])


def test_pkcs12_as_private_key_is_refused(tmp_path, pki):
    data = pkcs12.serialize_key_and_certificates(
        None, pki[2].key, pki[2].cert, None, serialization.NoEncryption())
    with pytest.raises(ArtifactError, match="is a PKCS#12 \\(PFX\\) file; give the PEM"):
        read_private_key(write(tmp_path, "key.pem", data))


# Files that are something else get a message saying what they are.

REJECTIONS = [
    ("error.p7b", b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>",
     "is an HTML or XML page"),
    ("reply.zip", b"PK\x03\x04" + b"\x00" * 40, "is a ZIP archive"),
    ("keystore.cer", b"\xfe\xed\xfe\xed" + b"\x00" * 40, "is a Java keystore (JKS)"),
    ("cert.txt", b"Certificate:\n    Data:\n        Version: 3 (0x2)\n",
     "the text form of a certificate"),
    ("empty.cer", b"\n\n", "the file is empty"),
    ("notes.cer", b"please find the certificate attached\n", "text file without any PEM block"),
    ("id_rsa.pub", b"ssh-rsa AAAAB3NzaC1yc2E test@host\n", "is an SSH public key"),
    ("binary.cer", b"\x01\x02\x03garbage", "binary data that is not DER"),
]


@pytest.mark.parametrize("filename, data, expected", REJECTIONS)
def test_other_files_are_named(tmp_path, filename, data, expected):
    path = write(tmp_path, filename, data)
    with pytest.raises(ArtifactError) as caught:
        read_certificates(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_truncated_pem_download_rejected(tmp_path, pki):
    data = pem(pki[2].cert, pki[1].cert)
    cut = data[:len(data) - 200]
    path = write(tmp_path, "chain.pem", cut)
    with pytest.raises(ArtifactError, match=r"chain.pem:\d+: the 'CERTIFICATE' block has a BEGIN "
                                            r"line but no matching END line; the file is cut "
                                            r"short"):
        read_certificates(path)


def test_truncated_der_download_rejected(tmp_path, pki):
    path = write(tmp_path, "reply.p7b", p7_der(*[c.cert for c in pki])[:300])
    with pytest.raises(ArtifactError, match="DER data is cut short: its header announces"):
        read_certificates(path)


def test_private_key_where_certificate_expected(tmp_path, pki):
    path = write(tmp_path, "certnew.cer", key_pem(pki[2].key))
    with pytest.raises(ArtifactError) as caught:
        read_certificates(path)
    assert str(caught.value) == (f"{path}: is a PEM private key, not a certificate; expected a "
                                 f"certificate or a PKCS#7 bundle (PEM or DER)")


def test_enveloped_pkcs7_is_named(tmp_path, pki):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from certfactory import issue

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    recipient = issue("recipient", key=key)
    data = (pkcs7.PKCS7EnvelopeBuilder().set_data(b"secret").add_recipient(recipient.cert)
            .encrypt(serialization.Encoding.DER, []))
    with pytest.raises(ArtifactError, match="is a PKCS#7/CMS enveloped-data message, not a "
                                            "certificate bundle"):
        read_certificates(write(tmp_path, "reply.p7b", data))


@needs_openssl
def test_empty_pkcs7_is_named(tmp_path):
    out = tmp_path / "empty.p7b"
    subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-outform", "DER", "-out", str(out)],
                   check=True, capture_output=True)
    with pytest.raises(ArtifactError, match="is a PKCS#7 bundle with no certificates in it"):
        read_certificates(out)


def test_load_pkcs12_file_on_truncated_pfx(tmp_path, pki):
    data = pkcs12.serialize_key_and_certificates(
        None, pki[2].key, pki[2].cert, None, serialization.BestAvailableEncryption(b"x"))
    with pytest.raises(ArtifactError, match="the PKCS#12 file is cut short"):
        load_pkcs12_file(write(tmp_path, "a.pfx", data[:len(data) // 2]), b"x")


# Keys and CSRs.

@pytest.mark.parametrize("form", ["pkcs8", "traditional", "der", "der-encrypted",
                                  "pkcs8-encrypted", "traditional-encrypted"])
def test_private_key_forms(tmp_path, form):
    key = new_key()
    password = b"key-pass" if "encrypted" in form else None
    if form.startswith("der"):
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        data = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 encryption)
    else:
        data = key_pem(key, password, traditional=form.startswith("traditional"))
    path = write(tmp_path, "k.bin", data)
    if password:
        with pytest.raises(ArtifactError, match="is an encrypted private key"):
            read_private_key(path)
        with pytest.raises(ArtifactError, match="wrong passphrase for"):
            read_private_key(path, secret(b"nope"))
    loaded = read_private_key(path, secret(password) if password else None)
    assert loaded.public_key() == key.public_key()


def test_public_key_given_as_private_key(tmp_path):
    key = new_key()
    data = key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ArtifactError, match="is a public key, not a private key"):
        read_private_key(write(tmp_path, "k.pem", data))


def test_openssh_key_given_as_private_key(tmp_path):
    data = new_key().private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.OpenSSH,
                                   serialization.NoEncryption())
    path = write(tmp_path, "id_ecdsa", data)
    with pytest.raises(ArtifactError, match="holds PEM label 'OPENSSH PRIVATE KEY', not a "
                                            "private key"):
        read_private_key(path)
    assert any("ssh-keygen -p -m PKCS8" in n for n in read_contents(path).notes)


def test_csr_reader_rejects_certificate(tmp_path, pki):
    path = write(tmp_path, "req.csr", pem(pki[2].cert))
    with pytest.raises(ArtifactError, match="holds PEM certificate; expected exactly one "
                                            "certificate request"):
        read_csr(path)
