"""Checks between steps. Each check parses nothing itself and tests one property.

A failed check raises CheckFailed with the files and SHA-256 fingerprints
involved and what to do next.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from certpipe.artifacts.keys import cert_fingerprint, describe_key_type, public_key_fingerprint
from certpipe.errors import CheckFailed

WEAK_HASHES = {"sha1", "md5", "md2", "md4"}

# Subject attribute names as pipelines write them, with their OIDs.
SUBJECT_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "DC": NameOID.DOMAIN_COMPONENT,
}


def check_key_spec(key: Any, path: Path, algorithm: str, bits: int | None,
                   curve: str | None) -> None:
    if algorithm == "rsa":
        ok = isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits
        wanted = f"RSA {bits}"
    else:
        ok = isinstance(key, ec.EllipticCurvePrivateKey) and describe_key_type(key) == f"EC {curve}"
        wanted = f"EC {curve}"
    if not ok:
        raise CheckFailed(
            f"{path} is a {describe_key_type(key)} key, but the pipeline asks for {wanted}; "
            f"the key is kept as it is. To replace it, run with --rekey (the old key is "
            f"then gone, and any certificate for it becomes useless)"
        )


def check_cert_matches_key(cert: x509.Certificate, cert_path: Path, key: Any,
                           key_path: Path) -> None:
    cert_pub = public_key_fingerprint(cert.public_key())
    key_pub = public_key_fingerprint(key.public_key())
    if cert_pub == key_pub:
        return
    raise CheckFailed(
        f"the certificate does not belong to the key: {cert_path} "
        f"(certificate SHA-256 {cert_fingerprint(cert)}, public key SHA-256 {cert_pub}) "
        f"was issued for another key than {key_path} (public key SHA-256 {key_pub}).\n"
        f"No .pfx is made: IIS would import such a certificate without a private key, and it "
        f"would vanish from IIS Manager on refresh. The key for this certificate is wherever "
        f"its CSR was made. Either export a .pfx on that machine, or send a CSR made from "
        f"{key_path} to the CA and have the certificate re-issued (re-key)"
    )


def check_csr_matches_key(csr: x509.CertificateSigningRequest, csr_path: Path, key: Any,
                          key_path: Path) -> None:
    csr_pub = public_key_fingerprint(csr.public_key())
    key_pub = public_key_fingerprint(key.public_key())
    if csr_pub != key_pub:
        raise CheckFailed(
            f"{csr_path} (public key SHA-256 {csr_pub}) was not made from {key_path} "
            f"(public key SHA-256 {key_pub}); make the CSR again from this key"
        )


def check_cert_matches_csr(cert: x509.Certificate, cert_path: Path,
                           csr: x509.CertificateSigningRequest, csr_path: Path) -> None:
    cert_pub = public_key_fingerprint(cert.public_key())
    csr_pub = public_key_fingerprint(csr.public_key())
    if cert_pub != csr_pub:
        raise CheckFailed(
            f"{cert_path} (public key SHA-256 {cert_pub}) was not issued for {csr_path} "
            f"(public key SHA-256 {csr_pub}); the CA answered another request"
        )


def check_csr_signature(csr: x509.CertificateSigningRequest, csr_path: Path) -> None:
    if not csr.is_signature_valid:
        raise CheckFailed(f"{csr_path}: the CSR's signature is invalid; the file is damaged")


def name_attributes(name: x509.Name) -> list[tuple[str, str]]:
    """Return (short name, value) pairs in the order they appear in *name*."""
    by_oid = {oid: short for short, oid in SUBJECT_OIDS.items()}
    result = []
    for rdn in name.rdns:
        for attribute in rdn:
            short = by_oid.get(attribute.oid, attribute.oid.dotted_string)
            value = attribute.value
            result.append((short, value if isinstance(value, str) else value.hex()))
    return result


def check_subject(name: x509.Name, expected: Sequence[tuple[str, str]], path: Path,
                  what: str = "CSR") -> None:
    actual = name_attributes(name)
    multi = [rdn for rdn in name.rdns if len(rdn) > 1]
    if actual == list(expected) and not multi:
        return
    raise CheckFailed(
        f"{path}: the {what}'s subject is {name.rfc4514_string() or '(empty)'!r}, but the "
        f"pipeline asks for {_format_subject(expected)!r}; openssl dropped or changed "
        f"attributes without failing"
    )


def _format_subject(expected: Sequence[tuple[str, str]]) -> str:
    name = x509.Name([x509.NameAttribute(SUBJECT_OIDS[k], v) if k != "C" or len(v) == 2
                      else x509.NameAttribute(SUBJECT_OIDS[k], v, _validate=False)
                      for k, v in reversed(expected)])
    return name.rfc4514_string()


def alt_names(obj: x509.Certificate | x509.CertificateSigningRequest
              ) -> tuple[list[str], list[str]] | None:
    """Return (DNS names, IP addresses) of the subjectAltName, or None when it is absent."""
    try:
        ext = obj.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return None
    dns = [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]
    ips = [str(v) for v in ext.value.get_values_for_type(x509.IPAddress)]
    return dns, ips


def check_csr_alt_names(csr: x509.CertificateSigningRequest, path: Path,
                        dns: Sequence[str], ips: Sequence[str]) -> None:
    found = alt_names(csr)
    if found is None:
        raise CheckFailed(
            f"{path}: the CSR has no subjectAltName; browsers ignore the CN, so the "
            f"certificate would match no name"
        )
    want_dns = sorted(d.lower() for d in dns)
    want_ip = sorted(str(ipaddress.ip_address(i)) for i in ips)
    got_dns = sorted(d.lower() for d in found[0])
    got_ip = sorted(str(ipaddress.ip_address(i)) for i in found[1])
    if (want_dns, want_ip) != (got_dns, got_ip):
        raise CheckFailed(
            f"{path}: the CSR's subjectAltName is DNS {got_dns} IP {got_ip}, but the pipeline "
            f"asks for DNS {want_dns} IP {want_ip}"
        )


def check_cn_in_alt_names(obj: x509.Certificate | x509.CertificateSigningRequest,
                          path: Path, what: str) -> None:
    """Fail when *obj* has no SAN, or its CN is not among the SAN entries."""
    found = alt_names(obj)
    if found is None:
        raise CheckFailed(
            f"{path}: the {what} has no subjectAltName; browsers ignore the CN since "
            f"Chrome 58, so the certificate would match no name. Put the names in "
            f"subjectAltName"
        )
    cns = [a.value for a in obj.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    names = {d.lower() for d in found[0]} | {str(ipaddress.ip_address(i)) for i in found[1]}
    for cn in cns:
        cn_text = cn if isinstance(cn, str) else ""
        if cn_text.lower() not in names and _normal_ip(cn_text) not in names:
            raise CheckFailed(
                f"{path}: CN {cn_text} is not in the {what}'s subjectAltName list "
                f"({', '.join(sorted(names))}); browsers would reject that name"
            )


def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _dns_covered(name: str, patterns: Sequence[str]) -> bool:
    name = name.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name:
            if name.split(".", 1)[1] == pattern[2:] and not name.startswith("*"):
                return True
    return False


def check_cert_covers(cert: x509.Certificate, cert_path: Path, dns: Sequence[str],
                      ips: Sequence[str]) -> None:
    found = alt_names(cert) or ([], [])
    missing = [d for d in dns if not _dns_covered(d, found[0])]
    cert_ips = {str(ipaddress.ip_address(i)) for i in found[1]}
    missing += [i for i in ips if str(ipaddress.ip_address(i)) not in cert_ips]
    if missing:
        raise CheckFailed(
            f"{cert_path} does not cover {', '.join(missing)} (its subjectAltName: "
            f"{', '.join(found[0] + found[1]) or 'none'}); the CA left names out, so ask it "
            f"to re-issue with every name of the CSR"
        )


def check_validity(cert: x509.Certificate, path: Path, now: dt.datetime | None = None,
                   label: str = "certificate") -> None:
    now = now or dt.datetime.now(dt.timezone.utc)
    start = cert.not_valid_before_utc
    end = cert.not_valid_after_utc
    subject = cert.subject.rfc4514_string()
    if now < start:
        raise CheckFailed(
            f"{path}: the {label} {subject!r} is not valid yet (valid from "
            f"{start:%Y-%m-%d %H:%M} UTC); check this machine's clock or wait"
        )
    if now > end:
        raise CheckFailed(
            f"{path}: the {label} {subject!r} expired on {end:%Y-%m-%d %H:%M} UTC; "
            f"get a new one from the CA"
        )


def weak_signature(cert: x509.Certificate) -> str | None:
    """Return the name of a weak signature hash on *cert* (sha1, md5), or None."""
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - UnsupportedAlgorithm for odd OIDs
        return None
    if algorithm is not None and algorithm.name.lower() in WEAK_HASHES:
        return algorithm.name.upper().replace("SHA1", "SHA-1")
    return None


def weak_signature_message(cert: x509.Certificate, path: Path, hash_name: str,
                           role: str) -> str:
    return (
        f"the issuing CA signed the {role} {cert.subject.rfc4514_string()!r} in {path} with "
        f"{hash_name}. OpenSSL 3 servers refuse it ('ca md too weak') and browsers distrust "
        f"it; have the CA re-issue the certificate with SHA-256"
    )


def ca_problem(issuer: x509.Certificate, below: int) -> str | None:
    """Say why *issuer* cannot sign certificates for a chain, or return None.

    *below* is the number of intermediate CAs between *issuer* and the leaf,
    for the pathLenConstraint. OpenSSL rejects chains with any of these faults.
    """
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        if issuer.version == x509.Version.v1 and issuer.subject == issuer.issuer:
            return None  # old version 1 roots carry no extensions and are still accepted
        return "it has no basicConstraints extension, so it is not a CA certificate"
    except ValueError:
        return "its basicConstraints extension is damaged"
    if not constraints.ca:
        return "it is not a CA certificate (basicConstraints CA:FALSE)"
    if constraints.path_length is not None and below > constraints.path_length:
        return (f"its pathLenConstraint allows {constraints.path_length} intermediate CA(s) "
                f"below it, but the chain has {below}")
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not usage.key_cert_sign:
        return "its keyUsage lacks keyCertSign, so it may not sign certificates"
    return None


def validity_problem(cert: x509.Certificate, now: dt.datetime) -> str | None:
    """Say how *cert* is outside its validity period at *now*, or return None."""
    if now < cert.not_valid_before_utc:
        return f"is not valid yet (valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC)"
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    return None


def cert_problems(cert: x509.Certificate, now: dt.datetime, is_root: bool) -> list[str]:
    """List what a server admin should know about one certificate, for inspect."""
    problems = []
    validity = validity_problem(cert, now)
    if validity:
        problems.append(validity)
    weak = weak_signature(cert)
    if weak and not is_root:
        problems.append(f"signed with {weak}; OpenSSL 3 servers refuse it ('ca md too weak') "
                        f"and browsers distrust it")
    if not is_root and not _is_ca_cert(cert):
        problems += alt_name_problems(cert, "certificate")
    return problems


def alt_name_problems(obj: x509.Certificate | x509.CertificateSigningRequest,
                      what: str) -> list[str]:
    """Return the subjectAltName faults check_cn_in_alt_names raises for, as text."""
    try:
        check_cn_in_alt_names(obj, Path(what), what)
    except CheckFailed as exc:
        return [str(exc).split(": ", 1)[1]]
    return []


def _is_ca_cert(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False
