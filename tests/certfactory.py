"""Build small PKIs in memory with cryptography, for chain and intake tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    cert: x509.Certificate
    key: Any

    def issue(self, cn: str, **options: Any) -> "Issued":
        return issue(cn, issuer=self, **options)


def issue(cn: str, issuer: Issued | None = None, *, ca: bool = False,
          path_length: int | None = None, key: Any = None, digest: Any = None,
          not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
          dns: list[str] | None = None, basic_constraints: bool = True,
          key_cert_sign: bool = True, subject: x509.Name | None = None) -> Issued:
    """Issue a certificate for *cn*; without *issuer* it is self-signed."""
    key = key or new_key()
    subject = subject or name(cn)
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - 30 * DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca, path_length), critical=True)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        names = dns if dns is not None else [cn]
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = builder.sign(signer_key, digest or hashes.SHA256())
    return Issued(cert, key)


def root(cn: str = "Test Root CA", **options: Any) -> Issued:
    return issue(cn, ca=True, **options)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key: Any, password: bytes | None = None, traditional: bool = False) -> bytes:
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def fingerprints(certs: list[x509.Certificate]) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in certs]
