"""certpipe's own PKCS#12 reader and the per-target judge.

Files are made by the real openssl with each flag set; the reader must
report what ``openssl pkcs12 -info`` reports, also for BER encodings,
damaged files and hostile iteration counts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certpipe.artifacts import asn1, pbe
from certpipe.artifacts.pbe import Encryption, Mac
from certpipe.artifacts.pfx_info import (
    TARGETS, Algorithms, WrongPassword, describe, judge, read_pfx, read_pfx_file,
)
from certpipe.errors import ArtifactError
from conftest import needs_openssl
from pfx_support import REAL_OPENSSL, openssl_info, pki  # noqa: F401

PASSWORD = "Reader-Pass-7"


@pytest.fixture(scope="module")
def made(tmp_path_factory, pki):
    """Return a function that exports the PKI with extra openssl flags (cached per flag set)."""
    folder = tmp_path_factory.mktemp("made")
    cache: dict[tuple[str, ...], Path] = {}

    def export(*flags: str, password: str = PASSWORD) -> Path:
        key = (*flags, password)
        if key not in cache:
            out = folder / f"{len(cache)}.pfx"
            env = {**os.environ, "PW": password}
            result = subprocess.run(
                [REAL_OPENSSL, "pkcs12", "-export", "-inkey", str(pki.key), "-in", str(pki.leaf),
                 "-certfile", str(pki.chain), "-name", "www", *flags, "-passout", "env:PW",
                 "-out", str(out)], capture_output=True, text=True, env=env)
            assert result.returncode == 0, result.stderr
            cache[key] = out
        return cache[key]

    return export


pytestmark = needs_openssl

FLAG_SETS = [
    ((), "pbes2", "AES-256-CBC", "pbes2", "AES-256-CBC", "sha256"),
    (("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
     "pkcs12-pbe", "3DES", "pkcs12-pbe", "3DES", "sha1"),
    (("-legacy",), "pkcs12-pbe", "RC2-40", "pkcs12-pbe", "3DES", "sha1"),
    (("-descert",), "pkcs12-pbe", "3DES", "pbes2", "AES-256-CBC", "sha256"),
    (("-certpbe", "AES-128-CBC", "-keypbe", "DES-EDE3-CBC", "-macalg", "sha384"),
     "pbes2", "AES-128-CBC", "pbes2", "DES-EDE3-CBC", "sha384"),
]


@pytest.mark.parametrize("flags, cert_scheme, cert_cipher, key_scheme, key_cipher, mac",
                         FLAG_SETS)
def test_reader_matches_flags(made, flags, cert_scheme, cert_cipher, key_scheme, key_cipher,
                              mac):
    path = made(*flags)
    for password in (None, PASSWORD.encode()):
        found = read_pfx_file(path, password).algorithms()
        assert [(e.scheme, e.cipher) for e in found.certificates] == [(cert_scheme, cert_cipher)]
        assert [(e.scheme, e.cipher) for e in found.keys] == [(key_scheme, key_cipher)]
        assert found.mac is not None and found.mac.digest == mac
        assert [e.iterations for e in found.everything()] == [2048, 2048]


def test_reader_agrees_with_openssl_info(made):
    path = made("-certpbe", "PBE-SHA1-3DES", "-keypbe", "AES-192-CBC", "-macalg", "sha512",
                "-iter", "3000")
    info = openssl_info(path, PASSWORD)
    found = read_pfx_file(path, PASSWORD.encode())
    algorithms = found.algorithms()
    assert info.encrypted_data == ["pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 3000"]
    assert algorithms.certificates[0].name == "pbeWithSHA1And3-KeyTripleDES-CBC"
    assert info.shrouded_keys == ["PBES2, PBKDF2, AES-192-CBC, Iteration 3000, PRF hmacWithSHA256"]
    assert (algorithms.keys[0].cipher, algorithms.keys[0].prf) == ("AES-192-CBC",
                                                                    "hmacWithSHA256")
    assert algorithms.mac is not None
    assert (info.mac_digest, info.mac_iterations) == (algorithms.mac.digest,
                                                      algorithms.mac.iterations)
    assert len(found.bags("certificate")) == info.certificate_bags


def test_password_verifies_and_lists_bags(made, pki):
    info = read_pfx_file(made(), PASSWORD.encode())
    assert info.password_checked
    assert info.password_form == "utf-16"
    certs = info.bags("certificate")
    assert [bag.certificate_der for bag in certs] == [
        pki.leaf_cert.public_bytes(Encoding.DER),
        pki.intermediate_cert.public_bytes(Encoding.DER),
    ]
    keys = info.bags("shrouded key")
    assert [bag.friendly_name for bag in keys] == ["www"]
    assert keys[0].local_key_id == certs[0].local_key_id


def test_wrong_password_raises(made):
    with pytest.raises(WrongPassword) as caught:
        read_pfx_file(made(), b"not-it")
    assert "wrong password" in str(caught.value)


def test_empty_password_forms(made):
    path = made("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1",
                password="")
    info = read_pfx_file(path, b"")
    assert info.password_checked
    assert len(info.bags("certificate")) == 2


def test_no_mac_file(made):
    path = made("-nomac")
    info = read_pfx_file(path, PASSWORD.encode())
    assert info.integrity == "none"
    assert info.mac is None
    assert info.password_checked
    assert "has no MAC" in " ".join(info.notes)
    assert not judge(info.algorithms(), TARGETS["windows-server-2019"]).importable


def test_rc2_not_decrypted_but_named(made):
    info = read_pfx_file(made("-legacy"), PASSWORD.encode())
    assert info.algorithms().certificates_assumed
    assert any("RC2-40 is not supported" in line for line in describe(info))


def test_pem_text_is_named(tmp_path, pki):
    with pytest.raises(ArtifactError) as caught:
        read_pfx_file(pki.leaf)
    assert "not a PKCS#12 file (it is PEM text" in str(caught.value)


def test_truncated_file(made, tmp_path):
    data = made().read_bytes()
    cut = tmp_path / "cut.pfx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError) as caught:
        read_pfx_file(cut)
    assert "cut short" in str(caught.value)
    assert str(cut) in str(caught.value)


def test_empty_and_missing_file(tmp_path):
    (tmp_path / "empty.pfx").write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty"):
        read_pfx_file(tmp_path / "empty.pfx")
    with pytest.raises(ArtifactError, match="not found"):
        read_pfx_file(tmp_path / "absent.pfx")


def tlv(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def to_ber(data: bytes) -> bytes:
    """Re-encode DER with indefinite lengths and OCTET STRINGs split into pieces."""
    out = b""
    for element in asn1.parse_all(data):
        first = (element.tag_class << 6) | (0x20 if element.constructed else 0) | element.number
        if element.constructed:
            out += bytes([first, 0x80]) + to_ber(element.content) + b"\x00\x00"
        elif element.is_universal(asn1.OCTET_STRING) and len(element.content) > 64:
            pieces = [element.content[i:i + 64] for i in range(0, len(element.content), 64)]
            out += bytes([0x24, 0x80]) + b"".join(tlv(0x04, p) for p in pieces) + b"\x00\x00"
        else:
            out += tlv(first, element.content)
    return out


def test_ber_encoding_reads_the_same(made):
    data = made("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1")
    ber = to_ber(data.read_bytes())
    assert ber != data.read_bytes()
    info = read_pfx(ber, "ber.pfx", PASSWORD.encode())
    assert info.password_checked
    assert len(info.bags("certificate")) == 2
    assert [e.cipher for e in info.algorithms().keys] == ["3DES"]


def replace_mac_iterations(data: bytes, count: int) -> bytes:
    top = asn1.sequence(asn1.parse_single(data, "PFX"), "PFX")
    mac = asn1.sequence(top[2], "MacData")
    mac_bytes = tlv(0x30, reencode(mac[0]) + reencode(mac[1]) + tlv(0x02, count.to_bytes(
        (count.bit_length() + 8) // 8, "big", signed=True)))
    return tlv(0x30, reencode(top[0]) + reencode(top[1]) + mac_bytes)


def reencode(element) -> bytes:
    first = (element.tag_class << 6) | (0x20 if element.constructed else 0) | element.number
    return tlv(first, element.content)


@pytest.mark.parametrize("count", [2**31 - 1, 0, -5])
def test_hostile_mac_iterations_refused(made, count):
    data = replace_mac_iterations(made().read_bytes(), count)
    with pytest.raises(ArtifactError) as caught:
        read_pfx(data, "hostile.pfx", PASSWORD.encode())
    assert "iteration count" in str(caught.value)
    # Without a password nothing is derived, and the count is only reported.
    assert read_pfx(data, "hostile.pfx").mac.iterations == count


def test_hostile_count_not_importable():
    mac = Mac("sha1", 2**31 - 1, b"", b"")
    triple_des = Encryption("pkcs12-pbe", "pbeWithSHA1And3-KeyTripleDES-CBC", cipher="3DES",
                            iterations=2048)
    verdict = judge(Algorithms((triple_des,), (triple_des,), mac), TARGETS["windows-any"])
    assert not verdict.importable
    assert "600000" in " ".join(verdict.reasons)


def test_kdf_refuses_large_counts():
    with pytest.raises(pbe.DerivationRefused):
        pbe.pkcs12_kdf("sha1", b"\x00\x00", b"salt", 1, pbe.MAX_ITERATIONS + 1, 24)
    with pytest.raises(pbe.DerivationRefused):
        pbe.pkcs12_kdf("sha1", b"\x00\x00", b"salt", 1, 0, 24)


def enc(scheme: str, cipher: str, prf: str | None = None, iterations: int = 2048) -> Encryption:
    return Encryption(scheme, "PBES2" if scheme == "pbes2" else cipher, cipher=cipher, prf=prf,
                      iterations=iterations)


AES = enc("pbes2", "AES-256-CBC", "hmacWithSHA256")
AES128 = enc("pbes2", "AES-128-CBC", "hmacWithSHA256")
TDES = enc("pkcs12-pbe", "3DES")
RC2 = enc("pkcs12-pbe", "RC2-40")
PLAIN = Encryption("none", "not encrypted")
SHA1 = Mac("sha1", 2048, b"", b"")
SHA256 = Mac("sha256", 2048, b"", b"")
SHA512 = Mac("sha512", 2048, b"", b"")
PBMAC1 = Mac("sha256", 2048, b"", b"", pbmac1=True, prf="hmacWithSHA256")


@pytest.mark.parametrize("target, cert, key, mac, status", [
    ("windows-server-2016", TDES, TDES, SHA1, "importable"),
    ("windows-server-2016", AES, AES, SHA256, "not importable"),
    ("windows-server-2016", TDES, AES, SHA1, "not importable"),
    ("windows-server-2016", TDES, TDES, SHA256, "not known to be importable"),
    ("windows-server-2016", RC2, TDES, SHA1, "importable"),
    ("windows-server-2016", PLAIN, TDES, SHA1, "not known to be importable"),
    ("windows-server-2019", AES, AES, SHA256, "importable"),
    ("windows-server-2019", TDES, TDES, SHA1, "importable"),
    ("windows-server-2019", AES128, AES, SHA256, "not known to be importable"),
    ("windows-server-2019", AES, AES, SHA512, "not known to be importable"),
    ("windows-server-2019", AES, AES, PBMAC1, "not known to be importable"),
    ("windows-server-2019", enc("pbes2", "AES-256-CBC", "hmacWithSHA256", 700000), AES, SHA256,
     "not importable"),
    ("openssl-3", RC2, TDES, SHA1, "not importable"),
    ("openssl-3", AES128, AES, SHA512, "importable"),
    ("openssl-3", PLAIN, AES, SHA256, "importable"),
    ("openssl-1.1.1", RC2, TDES, SHA1, "importable"),
    ("openssl-1.1.1", AES, AES, PBMAC1, "not importable"),
    ("java", AES, AES, SHA256, "importable"),
])
def test_judge(target, cert, key, mac, status):
    verdict = judge(Algorithms((cert,), (key,), mac), TARGETS[target])
    assert verdict.status == status, verdict.reasons
    if status != "importable":
        assert verdict.reasons


def test_weak_encryption_warned():
    verdict = judge(Algorithms((RC2,), (TDES,), SHA1), TARGETS["windows-server-2012"])
    assert verdict.importable
    assert any("weak" in warning for warning in verdict.warnings)


def test_pfx_check_json(cli, made):
    result = cli("pfx-check", made(), "--json", "--target", "windows-server-2022")
    assert result.exit_code == 0, result.err
    data = json.loads(result.out)
    assert data["mac"]["digest"] == "sha256"
    assert [c["cipher"] for c in data["certificates"]] == ["AES-256-CBC"]
    assert data["verdicts"][0]["importable"] is True
    assert data["password_checked"] is False


def test_pfx_check_wrong_password(cli, made, monkeypatch):
    monkeypatch.setenv("CHECK_PW", "wrong")
    result = cli("pfx-check", made(), "--password", "env:CHECK_PW")
    assert result.exit_code == 1
    assert "wrong password" in result.err
    assert "env:CHECK_PW" in result.err


def test_pfx_check_bad_password_source(cli, made):
    result = cli("pfx-check", made(), "--password", "pass:secret")
    assert result.exit_code == 2
    assert "env:NAME, file:PATH, prompt or none" in result.err


def test_pfx_check_unknown_target(cli, made):
    result = cli("pfx-check", made(), "--target", "windows-2099")
    assert result.exit_code == 2
    assert "invalid choice" in result.err


def test_pfx_check_starts_no_openssl(cli, made, monkeypatch, tmp_path):
    monkeypatch.setenv("CERTPIPE_OPENSSL", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli("pfx-check", made(), "--password", "none")
    assert result.exit_code == 1  # the password is wrong, but no openssl was needed to say so
    assert "wrong password" in result.err
