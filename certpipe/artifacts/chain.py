"""Pick the leaf by its key and order the chain by issuer and signature.

The path runs from the leaf through the certificates at hand (the reply and
any extra files) to a self-signed root. A chain is incomplete when nothing at
hand issued the leaf. When it stops at an intermediate CA, the missing issuer
is taken to be the root, because a server does not send the root anyway.

Where several certificates could issue the same one (cross-signed or renewed
CAs), every path is tried and the best kept: one that reaches a trust anchor,
then one that reaches a root, then the one with the fewest certificates out
of their validity period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from certpipe.artifacts.keys import cert_fingerprint

# Maximum number of CAs searched above the leaf. Real chains have one to four.
MAX_CHAIN_DEPTH = 10


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when *issuer*'s name and key made *cert*'s signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError as exc:
        if cert.issuer != issuer.subject or "signature algorithm" not in str(exc):
            return False
        return _verify_legacy_signature(cert, issuer)
    except (TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _verify_legacy_signature(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Check a SHA-1 or MD5 signature, which verify_directly_issued_by no longer takes.

    The chain must still be built for such certificates, so that the weak
    signature check can name them instead of reporting a missing issuer.
    """
    try:
        public_key = issuer.public_key()
        digest = cert.signature_hash_algorithm
        if digest is None:
            return False
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                              digest)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        elif isinstance(public_key, dsa.DSAPublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, digest)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and issued_by(cert, cert)


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


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


def unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[str] = set()
    result = []
    for cert in certs:
        fingerprint = cert_fingerprint(cert)
        if fingerprint not in seen:
            seen.add(fingerprint)
            result.append(cert)
    return result


def valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


@dataclass
class Chain:
    leaf: x509.Certificate
    intermediates: list[x509.Certificate] = field(default_factory=list)
    root: x509.Certificate | None = None
    # True when the root came from the trust anchors, not from the reply or extra files.
    root_from_anchors: bool = False
    unused: list[x509.Certificate] = field(default_factory=list)
    # The leaf, when no certificate at hand issued it: an intermediate is missing.
    missing_issuer_of: x509.Certificate | None = None
    # The top intermediate, when its issuer is not at hand. That issuer is taken
    # to be the root, which servers leave out, so the chain still counts as complete.
    root_missing_above: x509.Certificate | None = None
    # The trust anchor the chain reaches, when anchors were given and one fits.
    anchor: x509.Certificate | None = None

    @property
    def complete(self) -> bool:
        return self.missing_issuer_of is None

    @property
    def certificates(self) -> list[x509.Certificate]:
        """Leaf, intermediates and root (when known), in order."""
        return [self.leaf, *self.intermediates, *([self.root] if self.root else [])]

    def server_chain(self, include_root: bool) -> list[x509.Certificate]:
        chain = list(self.intermediates)
        if include_root and self.root is not None:
            chain.append(self.root)
        return chain


def find_leaf(certs: list[x509.Certificate], public_key: Any) -> x509.Certificate | None:
    """Return the certificate carrying *public_key*, preferring one that is not a CA."""
    matches = []
    for cert in certs:
        try:
            if cert.public_key() == public_key:
                matches.append(cert)
        except (ValueError, UnsupportedAlgorithm):
            continue
    matches.sort(key=is_ca)
    return matches[0] if matches else None


class _Index:
    """Certificates by subject name, for issuer look-ups."""

    def __init__(self, certs: Sequence[x509.Certificate]):
        self.by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        self.fingerprints: set[str] = set()
        for cert in certs:
            self.by_subject.setdefault(cert.subject, []).append(cert)
            self.fingerprints.add(cert_fingerprint(cert))

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return [c for c in self.by_subject.get(cert.issuer, []) if issued_by(cert, c)]


@dataclass
class _Path:
    issuers: list[x509.Certificate]
    ends_at_root: bool
    anchor: x509.Certificate | None
    root_from_anchors: bool

    def score(self, now: dt.datetime) -> tuple[int, int, int, int]:
        invalid = sum(1 for c in self.issuers if not valid_at(c, now))
        return (self.anchor is not None, self.ends_at_root, -invalid, -len(self.issuers))


def build_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate],
                anchors: Sequence[x509.Certificate] = (),
                now: dt.datetime | None = None) -> Chain:
    """Order *pool* into the leaf's chain; stop where an issuer is missing.

    *anchors* (trusted roots or CAs) complete a chain whose top is not in
    *pool*, and mark the chain as reaching an anchor.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    leaf_fingerprint = cert_fingerprint(leaf)
    candidates = [c for c in unique(pool) if cert_fingerprint(c) != leaf_fingerprint]
    best = _best_path(leaf, _Index(candidates), _Index(list(anchors)), {leaf_fingerprint}, now)

    chain = Chain(leaf=leaf, anchor=best.anchor, root_from_anchors=best.root_from_anchors)
    if best.ends_at_root:
        *chain.intermediates, chain.root = best.issuers
        if chain.root is leaf:
            chain.root = None  # a self-signed leaf is its own root
    else:
        chain.intermediates = list(best.issuers)
        if best.anchor is None and chain.intermediates:
            chain.root_missing_above = chain.intermediates[-1]
        elif best.anchor is None:
            chain.missing_issuer_of = leaf
    used = {cert_fingerprint(c) for c in best.issuers}
    chain.unused = [c for c in candidates if cert_fingerprint(c) not in used]
    return chain


def _best_path(current: x509.Certificate, pool: _Index, anchors: _Index, used: set[str],
               now: dt.datetime, depth: int = 0) -> _Path:
    """Search every path upwards from *current* and return the best-scoring one."""
    if is_self_signed(current):
        anchor = current if cert_fingerprint(current) in anchors.fingerprints else None
        return _Path([current] if depth == 0 else [], True, anchor, False)
    options: list[_Path] = []
    if depth < MAX_CHAIN_DEPTH:
        for issuer in pool.issuers_of(current):
            fingerprint = cert_fingerprint(issuer)
            if fingerprint in used:
                continue
            rest = _best_path(issuer, pool, anchors, used | {fingerprint}, now, depth + 1)
            anchor = rest.anchor
            if anchor is None and fingerprint in anchors.fingerprints:
                anchor = issuer  # a trusted intermediate
            options.append(_Path([issuer, *rest.issuers], rest.ends_at_root, anchor,
                                 rest.root_from_anchors))
    if not options:
        options = [_anchor_end(current, anchors, now)]
    return max(options, key=lambda path: path.score(now))


def _anchor_end(current: x509.Certificate, anchors: _Index, now: dt.datetime) -> _Path:
    """End a path whose next issuer is not in the pool: an anchor may complete it."""
    found = sorted(anchors.issuers_of(current), key=lambda c: valid_at(c, now), reverse=True)
    if not found:
        return _Path([], False, None, False)
    anchor = found[0]
    if is_self_signed(anchor):
        return _Path([anchor], True, anchor, True)
    return _Path([], False, anchor, False)
