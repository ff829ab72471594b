"""Pick the leaf by its key and order the chain by issuer and signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from certpipe.artifacts.keys import cert_fingerprint


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when *issuer*'s name and key made *cert*'s signature."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError:
        # cryptography 50 refuses SHA-1 signatures here ("Unsupported signature
        # algorithm"); check them by hand so they can be reported as weak.
        return _verify_legacy_signature(cert, issuer)
    except (TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _verify_legacy_signature(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        algorithm = cert.signature_hash_algorithm
        public_key = issuer.public_key()
        if algorithm is None:
            return False
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                              algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and issued_by(cert, cert)


def ca_issuers_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [
        desc.access_location.value
        for desc in aia.value
        if desc.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(desc.access_location, x509.UniformResourceIdentifier)
    ]


def unique(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[str] = set()
    result = []
    for cert in certs:
        fingerprint = cert_fingerprint(cert)
        if fingerprint not in seen:
            seen.add(fingerprint)
            result.append(cert)
    return result


@dataclass
class Chain:
    leaf: x509.Certificate
    intermediates: list[x509.Certificate] = field(default_factory=list)
    root: x509.Certificate | None = None
    unused: list[x509.Certificate] = field(default_factory=list)
    # The certificate whose issuer is not among the inputs, when incomplete.
    missing_issuer_of: x509.Certificate | None = None

    @property
    def complete(self) -> bool:
        return self.missing_issuer_of is None

    def server_chain(self, include_root: bool) -> list[x509.Certificate]:
        chain = list(self.intermediates)
        if include_root and self.root is not None:
            chain.append(self.root)
        return chain


def find_leaf(certs: list[x509.Certificate], public_key: Any) -> x509.Certificate | None:
    for cert in certs:
        try:
            if cert.public_key() == public_key:
                return cert
        except (ValueError, UnsupportedAlgorithm):
            continue
    return None


def build_chain(leaf: x509.Certificate, pool: list[x509.Certificate]) -> Chain:
    """Walk from *leaf* to a self-signed root through *pool*; stop where an issuer is missing."""
    candidates = [c for c in unique(pool) if cert_fingerprint(c) != cert_fingerprint(leaf)]
    chain = Chain(leaf=leaf)
    current = leaf
    used: set[str] = set()
    while not is_self_signed(current):
        issuer = next(
            (c for c in candidates
             if cert_fingerprint(c) not in used and c.subject == current.issuer
             and issued_by(current, c)),
            None,
        )
        if issuer is None:
            chain.missing_issuer_of = current
            break
        used.add(cert_fingerprint(issuer))
        if is_self_signed(issuer):
            chain.root = issuer
            break
        chain.intermediates.append(issuer)
        current = issuer
        if len(chain.intermediates) > 20:
            chain.missing_issuer_of = current  # a loop of cross-signed certificates
            break
    chain.unused = [c for c in candidates if cert_fingerprint(c) not in used]
    return chain
