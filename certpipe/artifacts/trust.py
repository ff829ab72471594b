"""Trust anchors: the system's certificate store, or files the pipeline names.

certpipe checks the path itself (names, signatures, validity, CA flags)
rather than with cryptography's Web PKI verifier, whose rules (SAN required,
keyUsage on every CA, no SHA-1) reject many internal-CA chains that servers
and Windows clients accept. Revocation is not checked.
"""

from __future__ import annotations

import functools
import os
import ssl
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certpipe.artifacts.intake import MAX_ARTIFACT_BYTES, der_length, pem_blocks
from certpipe.errors import ArtifactError
from certpipe.fsutil import FileRejected, read_limited


@dataclass
class AnchorSet:
    """Trusted certificates and where they came from, for messages."""

    source: str
    certs: list[x509.Certificate] = field(default_factory=list)


def system_store_paths() -> list[Path]:
    """Return the CA file (or, without one, the CA folder) that OpenSSL uses by default.

    SSL_CERT_FILE and SSL_CERT_DIR override the defaults, as they do for openssl.
    NOTE: openssl reads both; certpipe reads the folder only when there is no
    file, because distributions fill both with the same certificates.
    """
    defaults = ssl.get_default_verify_paths()
    cafile = os.environ.get(defaults.openssl_cafile_env) or defaults.cafile
    capath = os.environ.get(defaults.openssl_capath_env) or defaults.capath
    if cafile and Path(cafile).is_file():
        return [Path(cafile)]
    return [Path(capath)] if capath and Path(capath).is_dir() else []


def system_anchors() -> AnchorSet:
    """Load the system trust store; an empty set when none is installed."""
    paths = tuple(system_store_paths())
    certs = _load_store(paths)
    source = "the system trust store (" + ", ".join(str(p) for p in paths) + ")" if paths else (
        "the system trust store (none found; install the ca-certificates package)")
    return AnchorSet(source, list(certs))


@functools.lru_cache(maxsize=4)
def _load_store(paths: tuple[Path, ...]) -> tuple[x509.Certificate, ...]:
    certs: dict[bytes, x509.Certificate] = {}
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            for cert in _read_store_file(file):
                certs.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    return tuple(certs.values())


def _read_store_file(path: Path) -> list[x509.Certificate]:
    """Read the PEM certificates of one store file, skipping any that do not parse."""
    try:
        text = read_limited(path, MAX_ARTIFACT_BYTES).decode("utf-8", "replace")
    except (OSError, FileRejected):
        return []
    try:
        blocks = pem_blocks(text)
    except ArtifactError:
        return []
    found = []
    for block in blocks:
        if block.label not in ("CERTIFICATE", "TRUSTED CERTIFICATE"):
            continue
        length = der_length(block.der) or len(block.der)
        try:
            # TRUSTED CERTIFICATE blocks carry OpenSSL's trust settings after the certificate.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # old roots with serial numbers RFC 5280 forbids
                found.append(x509.load_der_x509_certificate(block.der[:length]))
        except Exception:  # noqa: BLE001 - one bad store entry must not hide the rest
            continue
    return found

