"""Read private keys in any common form and describe public keys."""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from certpipe.artifacts import der as asn1
from certpipe.artifacts.intake import Contents, PemBlock, read_contents, what_it_holds
from certpipe.errors import ArtifactError
from certpipe.secrets import Secret

class KeyPassphraseMissing(ArtifactError):
    """A private key is encrypted and no passphrase source was given."""


CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def public_key_fingerprint(public_key: Any) -> str:
    """Return the SHA-256 of the DER SubjectPublicKeyInfo, as lowercase hex."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def cert_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def describe_key_type(key: Any) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA {key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "EC " + CURVE_NAMES.get(key.curve.name, key.curve.name)
    if isinstance(key, (dsa.DSAPrivateKey, dsa.DSAPublicKey)):
        return f"DSA {key.key_size}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "Ed448"
    return type(key).__name__.lstrip("_")


def key_cipher(block: PemBlock) -> str:
    """Name the cipher protecting an encrypted key block, as far as the file's headers show."""
    dek_info = block.headers.get("DEK-Info", "")
    if dek_info:
        return dek_info.split(",")[0]
    return asn1.encrypted_pkcs8_algorithm(block.der) or "PKCS#8"


def _block_to_pem(block: PemBlock) -> bytes:
    lines = [f"-----BEGIN {block.label}-----"]
    for name, value in block.headers.items():
        lines.append(f"{name}: {value}")
    if block.headers:
        lines.append("")
    body = base64.b64encode(block.der).decode("ascii")
    lines.extend(body[i:i + 64] for i in range(0, len(body), 64))
    lines.append(f"-----END {block.label}-----")
    return ("\n".join(lines) + "\n").encode("ascii")


def _parse_block(block: PemBlock, password: bytes | None) -> Any:
    if block.headers:
        # Traditional encrypted PEM keeps its cipher and IV in the headers.
        return serialization.load_pem_private_key(_block_to_pem(block), password=password)
    if password is None:
        return _load_plain_der(block.der)
    return serialization.load_der_private_key(block.der, password=password)


@functools.lru_cache(maxsize=256)
def _load_plain_der(der: bytes) -> Any:
    """Parse an unencrypted DER key once per process.

    Loading an RSA key checks its consistency (about 30 ms for 2048 bits
    with cryptography 50), and one run reads the same key file in several
    steps. The cache is keyed by the exact bytes, so a changed file is
    parsed and checked again; keys that fail to load are not cached.
    """
    return serialization.load_der_private_key(der, password=None)


def where_of(path: Path, block: PemBlock) -> str:
    return f"{path}:{block.line}" if block.line else str(path)


def load_key_block(block: PemBlock, path: Path, passphrase: Secret | None) -> Any:
    """Decrypt and parse one key block; raise ArtifactError naming the file on any problem."""
    if block.encrypted and passphrase is None:
        raise KeyPassphraseMissing(
            f"{path} is an encrypted private key ({key_cipher(block)}); give a passphrase "
            f"source with the step's key_passphrase setting (env:NAME or file:PATH)"
        )
    password = passphrase.value if (block.encrypted and passphrase is not None) else None
    try:
        return _parse_block(block, password)
    except TypeError:
        # The file's label or headers claim encryption that is absent, or the other way round.
        return _parse_block(block, None)
    except ValueError as exc:
        if block.encrypted:
            source = passphrase.ref.describe() if passphrase else "none"
            raise ArtifactError(
                f"wrong passphrase for {path} (from {source}), or the key is damaged"
            ) from None
        raise ArtifactError(
            f"{where_of(path, block)}: the private key cannot be read: {exc}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm and others
        raise ArtifactError(
            f"{where_of(path, block)}: the private key cannot be read: {type(exc).__name__}"
        ) from None


def _not_a_key_message(path: Path, contents: Contents) -> str:
    if contents.unknown_labels and not (contents.certs or contents.csrs):
        return f"{path} holds PEM label '{contents.unknown_labels[0]}', not a private key"
    if contents.csrs and not contents.certs:
        return f"{path} is a certificate request (PKCS#10), not a private key"
    if contents.pkcs12:
        return f"{path} is a PKCS#12 (PFX) file; give the PEM private key instead"
    if contents.public_keys and not contents.certs:
        return (f"{path} is a public key, not a private key; the private key is the file "
                f"the public key was made from")
    if contents.certs:
        return f"{path} holds {contents.description}, but no private key"
    return f"{path} holds {what_it_holds(contents)}, not a private key"


def read_private_key(path: Path, passphrase: Secret | None = None) -> Any:
    """Load the one private key in *path*; raise ArtifactError naming the file on any problem."""
    contents = read_contents(path, "a private key")
    if contents.pkcs12:
        # openssl's -inkey takes no PKCS#12, so a PFX is not accepted as a key file.
        raise ArtifactError(_not_a_key_message(path, contents))
    if contents.keys:
        return contents.keys[0]
    if not contents.key_blocks:
        raise ArtifactError(_not_a_key_message(path, contents))
    if len(contents.key_blocks) > 1:
        raise ArtifactError(
            f"{path} holds {len(contents.key_blocks)} private keys; give a file with one key"
        )
    return load_key_block(contents.key_blocks[0], path, passphrase)
