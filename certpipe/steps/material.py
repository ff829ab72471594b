"""Key, leaf and chain that the export steps (pkcs12, server_files) read, and PEM writing.

Shared rules: the leaf must carry the key's public key, the chain file must
go up one issuer at a time, and ``chain_include`` picks leaf only, leaf and
intermediates, or the full chain up to the self-signed root. Without
``chain_include`` the chain file is used as it is, so the ``include_root``
choice of the ca_reply step that wrote it is kept. PEM written
here uses LF line endings, ends with a newline and contains nothing but
BEGIN/END blocks.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from certpipe.errors import ArtifactError, CheckFailed
from certpipe.secrets import Secret, SecretRef

if TYPE_CHECKING:
    from cryptography import x509


CHAIN_INCLUDE = ("leaf", "intermediates", "full")

_PEM_BLOCK_RE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\n(?P<body>[A-Za-z0-9+/=\n]*?)-----END (?P=label)-----"
)


@dataclass
class Material:
    key: Any | None
    key_path: Path | None
    leaf: x509.Certificate | None
    cert_path: Path | None
    chain: list[x509.Certificate]  # the certificates to write after the leaf
    notes: list[str] = field(default_factory=list)


def read_secret(ctx: Any, ref: SecretRef | None, label: str,
                confirm: bool = False) -> Secret | None:
    """Read *ref* relative to the work directory; *label* names it in a prompt."""
    if ref is None:
        return None
    return SecretRef(ref.source, ctx.workdir).read(label, confirm)


def load_material(ctx: Any, *, key: str | None, key_passphrase: Secret | None,
                  cert: str | None, chain: str | None,
                  chain_include: str | None) -> Material:
    """Read key, leaf and chain, check that they belong together, and select the chain."""
    from certpipe.artifacts import checks
    from certpipe.artifacts.intake import read_certificates
    from certpipe.artifacts.keys import read_private_key

    key_path = ctx.path(key) if key else None
    cert_path = ctx.path(cert) if cert else None
    chain_path = ctx.path(chain) if chain else None
    try:
        private_key = read_private_key(key_path, key_passphrase) if key_path else None
        leaf = _read_leaf(cert_path) if cert_path else None
        chain_certs = read_certificates(chain_path).certs if chain_path and _has_content(
            chain_path) else []
    except ArtifactError as exc:
        raise CheckFailed(str(exc)) from None
    material = Material(private_key, key_path, leaf, cert_path, [])
    if leaf is None:
        return material
    if private_key is not None and key_path is not None:
        checks.check_cert_matches_key(leaf, cert_path, private_key, key_path)
    check_order(leaf, chain_certs, cert_path, chain_path)
    material.chain = select_chain(leaf, chain_certs, chain_include, chain_path, material.notes)
    return material


def _read_leaf(path: Path) -> x509.Certificate:
    from certpipe.artifacts.intake import read_certificates

    contents = read_certificates(path)
    if len(contents.certs) != 1:
        raise ArtifactError(f"{path} holds {len(contents.certs)} certificates; give the leaf "
                            f"alone as cert and the rest as chain")
    return contents.certs[0]


def _has_content(path: Path) -> bool:
    """Return False for an empty chain file, which means no chain certificates."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return True  # let the reader report the missing file


def check_order(leaf: x509.Certificate, chain: list[x509.Certificate], cert_path: Path | None,
                chain_path: Path | None) -> None:
    from certpipe.artifacts.chain import issued_by

    current = leaf
    for index, cert in enumerate(chain, 1):
        if not issued_by(current, cert):
            raise CheckFailed(
                f"{chain_path}: certificate {index} ({cert.subject.rfc4514_string()}) did not "
                f"issue {current.subject.rfc4514_string()}; the chain must start with the "
                f"issuer of {cert_path} and go up one issuer at a time"
            )
        current = cert


def select_chain(leaf: x509.Certificate, chain: list[x509.Certificate], include: str | None,
                 chain_path: Path | None, notes: list[str]) -> list[x509.Certificate]:
    """Return the chain certificates that *include* selects; fail when the root is missing.

    *include* None keeps the chain file as it is.
    """
    from certpipe.artifacts.chain import is_self_signed

    root = chain[-1] if chain and is_self_signed(chain[-1]) else None
    if include == "leaf":
        return []
    if include in (None, "intermediates"):
        if root is not None and include is not None:
            notes.append(f"left out the root {root.subject.rfc4514_string()!r} of {chain_path}: "
                         f"clients must trust it already (set chain_include: full to add it)")
            return chain[:-1]
        if chain_path is None and not is_self_signed(leaf):
            notes.append("warning: no chain given, so the output contains the leaf alone; "
                         "clients that lack the intermediate CA fail with 'unable to get local "
                         "issuer certificate'")
        return list(chain)
    if root is None and not is_self_signed(leaf):
        top = chain[-1] if chain else leaf
        source = chain_path if chain_path is not None else "(no chain given)"
        raise CheckFailed(
            f"chain_include: full needs the self-signed root, but the chain {source} ends with "
            f"{top.subject.rfc4514_string()!r}, issued by {top.issuer.rfc4514_string()!r}. Add "
            f"the root to the chain file (ca_reply: include_root: true does that) or set "
            f"chain_include: intermediates"
        )
    return list(chain)


def certificates_pem(certs: list[x509.Certificate]) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(cert.public_bytes(Encoding.PEM) for cert in certs)


def normalize_pem(data: bytes, what: str) -> bytes:
    """Re-emit every PEM block of *data* with LF endings, 64-column base64 and no other text.

    Only blocks without headers are accepted; certpipe writes no other kind.
    """
    text = data.decode("ascii", "replace").replace("\r\n", "\n")
    out = []
    for match in _PEM_BLOCK_RE.finditer(text):
        try:
            der = base64.b64decode(match["body"].replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise CheckFailed(f"{what}: a PEM block contains invalid base64") from None
        body = base64.b64encode(der).decode("ascii")
        lines = [f"-----BEGIN {match['label']}-----"]
        lines += [body[i:i + 64] for i in range(0, len(body), 64)]
        lines.append(f"-----END {match['label']}-----")
        out.append("\n".join(lines) + "\n")
    if not out:
        raise CheckFailed(f"{what}: openssl wrote no PEM block")
    return "".join(out).encode("ascii")


def check_pem_text(data: bytes, what: str) -> None:
    """Fail unless *data* is LF-only PEM that ends with a newline and has no text between blocks."""
    if b"\r" in data:
        raise CheckFailed(f"{what}: PEM output contains a carriage return")
    if not data.endswith(b"\n"):
        raise CheckFailed(f"{what}: PEM output does not end with a newline")
    inside = False
    for number, line in enumerate(data.decode("ascii", "replace").split("\n")[:-1], 1):
        if line.startswith("-----BEGIN ") and line.endswith("-----") and not inside:
            inside = True
        elif line.startswith("-----END ") and line.endswith("-----") and inside:
            inside = False
        elif not inside:
            raise CheckFailed(f"{what}:{number}: text outside a PEM block")
    if inside:
        raise CheckFailed(f"{what}: the last PEM block has no END line")


def keep_other_key(path: Path, public_key: Any, read_existing: Callable[[Path], Any],
                   now: Any) -> str | None:
    """Move *path* aside when it may hold a private key other than the one about to be written.

    A file that provably contains the same key is simply replaced. Any other
    existing file is renamed to ``NAME.replaced-TIMESTAMP``, so that no
    private key is ever lost by writing an output; the returned note says so.
    """
    from certpipe.artifacts.keys import public_key_fingerprint

    if not path.exists() and not path.is_symlink():
        return None
    try:
        existing = read_existing(path)
    except (ArtifactError, CheckFailed, ValueError, TypeError):
        existing = None
    if existing is not None and public_key_fingerprint(existing.public_key()) == \
            public_key_fingerprint(public_key):
        return None
    backup = path.with_name(f"{path.name}.replaced-{now:%Y%m%dT%H%M%SZ}")
    os.replace(path, backup)
    return (f"{path} held another or an unreadable private key; it was moved to {backup} "
            f"instead of being overwritten")
