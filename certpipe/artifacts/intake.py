"""Read certificate material by content, never by file extension.

Handles PEM with CRLF, a byte order mark, UTF-16 text, text around the blocks
("Bag Attributes", ``openssl x509 -text`` output), END and BEGIN lines glued
together by ``cat``; DER certificates, CSRs and keys; PKCS#7 in PEM, DER, or
base64 under a CERTIFICATE label; bare base64; PKCS#12.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from certpipe.errors import ArtifactError

MAX_ARTIFACT_BYTES = 10_000_000

CERT_LABELS = {"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"}
PKCS7_LABELS = {"PKCS7", "PKCS #7 SIGNED DATA", "CERTIFICATE CHAIN"}
CSR_LABELS = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}
KEY_LABELS = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY",
              "ENCRYPTED PRIVATE KEY"}
IGNORED_LABELS = {"EC PARAMETERS", "DH PARAMETERS"}

_BLOCK_RE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 #._-]+?)-----(?P<body>.*?)-----END (?P=label)-----",
    re.DOTALL,
)
_GLUED_RE = re.compile(r"(-----END [A-Z0-9 #._-]+?-----)[ \t]*(-----BEGIN )")

PKCS7_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")
PKCS7_DATA_OID = bytes.fromhex("06092a864886f70d010701")


@dataclass
class PemBlock:
    label: str
    der: bytes
    line: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def encrypted(self) -> bool:
        return self.label == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in self.headers.get(
            "Proc-Type", ""
        )


@dataclass
class Contents:
    """Everything found in one file, with a plain description of what it is."""

    path: Path
    description: str
    certs: list[x509.Certificate] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    key_blocks: list[PemBlock] = field(default_factory=list)
    csrs: list[x509.CertificateSigningRequest] = field(default_factory=list)
    pkcs12: bool = False
    notes: list[str] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)


def decode_text(raw: bytes) -> str | None:
    """Return the file as text (BOM and UTF-16 undone, CRLF made LF), or None for binary."""
    if raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff"):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            return None
    elif raw.startswith(b"\xef\xbb\xbf"):
        text = raw[3:].decode("utf-8", "replace")
    else:
        if b"\x00" in raw[:4096]:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            if "-----BEGIN " not in text:
                return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def pem_blocks(text: str, notes: list[str] | None = None, name: str = "") -> list[PemBlock]:
    """Split *text* into PEM blocks, ignoring any text between them."""
    glued = [m for m in _GLUED_RE.finditer(text)]
    if glued and notes is not None:
        for match in glued:
            line = text.count("\n", 0, match.start()) + 1
            notes.append(
                f"{name}:{line}: an END line and a BEGIN line are glued together "
                f"(a file without a final newline joined by cat); read as two blocks"
            )
    if glued:
        text = _GLUED_RE.sub(r"\1\n\2", text)
    blocks = []
    for match in _BLOCK_RE.finditer(text):
        label = match["label"].strip()
        line = text.count("\n", 0, match.start()) + 1
        headers: dict[str, str] = {}
        body_lines = []
        for raw_line in match["body"].split("\n"):
            stripped = raw_line.strip()
            if not stripped:
                continue
            if ":" in stripped and not body_lines:
                key, _, value = stripped.partition(":")
                headers[key.strip()] = value.strip()
                continue
            body_lines.append(stripped)
        try:
            der = base64.b64decode("".join(body_lines), validate=True)
        except (binascii.Error, ValueError):
            raise ArtifactError(
                f"{name}:{line}: the PEM block '{label}' holds invalid base64 "
                f"(the file may be damaged or cut short)"
            ) from None
        blocks.append(PemBlock(label, der, line, headers))
    return blocks


def der_length(data: bytes) -> int | None:
    """Return the total length of the DER element at the start of *data*, if the header is sane."""
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None  # indefinite length (BER) or absurd
    return 2 + count + int.from_bytes(data[2:2 + count], "big")


def looks_like_pkcs7(der: bytes) -> bool:
    return PKCS7_SIGNED_DATA_OID in der[:32]


def looks_like_pkcs12(der: bytes) -> bool:
    # PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo (data) ... }
    head = der[:40]
    return b"\x02\x01\x03\x30" in head and PKCS7_DATA_OID in head


def load_pkcs7_der(der: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        # cryptography warns on non-strict DER (BER lengths, unsorted SETs)
        # that CAs and `openssl crl2pkcs7` produce; the data still reads.
        warnings.simplefilter("ignore")
        return list(pkcs7.load_der_pkcs7_certificates(der))


def _load_cert_der(der: bytes) -> x509.Certificate:
    length = der_length(der)
    if length is not None and length < len(der):
        der = der[:length]  # TRUSTED CERTIFICATE carries aux data after the certificate
    return x509.load_der_x509_certificate(der)


def read_file(path: Path, *, expected: str = "certificate material") -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path}: is a folder, expected a file with {expected}") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"{path}: {len(raw)} bytes is too large for {expected}")
    if not raw.strip():
        raise ArtifactError(f"{path}: the file is empty, expected {expected}")
    return raw, str(path)


def inspect_bytes(path: Path, raw: bytes) -> Contents:
    """Identify and parse *raw*; unreadable parts raise ArtifactError saying what the file is."""
    name = str(path)
    text = decode_text(raw)
    if text is not None and "-----BEGIN " in text:
        return _inspect_pem(path, text)
    if text is not None:
        stripped = text.strip()
        lowered = stripped[:512].lower()
        if lowered.startswith("<") or "<html" in lowered or "<!doctype" in lowered:
            raise ArtifactError(
                f"{name}: is an HTML or XML page (probably an error page saved instead of "
                f"the download), not certificate material"
            )
        compact = re.sub(r"\s+", "", stripped)
        if compact and re.fullmatch(r"[A-Za-z0-9+/=]+", compact):
            try:
                der = base64.b64decode(compact, validate=True)
            except (binascii.Error, ValueError):
                der = b""
            if der[:1] == b"\x30":
                contents = _inspect_der(path, der)
                contents.description = "bare base64 " + contents.description
                return contents
        if raw[:1] != b"\x30":
            preview = stripped.splitlines()[0][:60] if stripped else ""
            raise ArtifactError(
                f"{name}: is a text file without any PEM block (it starts with {preview!r}), "
                f"not a certificate, key, CSR, PKCS#7 or PKCS#12 file"
            )
    return _inspect_der(path, raw)


def _inspect_der(path: Path, der: bytes) -> Contents:
    name = str(path)
    if der[:1] != b"\x30":
        raise ArtifactError(
            f"{name}: is binary data that is not DER (first byte 0x{der[0]:02x}), "
            f"not a certificate, key, CSR, PKCS#7 or PKCS#12 file"
        )
    length = der_length(der)
    if length is not None and length > len(der):
        raise ArtifactError(
            f"{name}: DER data is cut short: its header announces {length} bytes but the "
            f"file has {len(der)}; download or copy it again"
        )
    if looks_like_pkcs12(der):
        return Contents(path, "DER PKCS#12 (PFX) file", pkcs12=True)
    if looks_like_pkcs7(der):
        try:
            certs = load_pkcs7_der(der)
        except ValueError as exc:
            raise ArtifactError(f"{name}: DER PKCS#7 that cannot be read: {exc}") from None
        return Contents(path, "DER PKCS#7 bundle", certs=certs)
    try:
        return Contents(path, "DER certificate", certs=[_load_cert_der(der)])
    except ValueError:
        pass
    try:
        return Contents(path, "DER certificate request", csrs=[x509.load_der_x509_csr(der)])
    except ValueError:
        pass
    try:
        key = serialization.load_der_private_key(der, password=None)
        return Contents(path, "DER private key", keys=[key])
    except TypeError:
        raise ArtifactError(
            f"{name}: is an encrypted DER private key; convert it to PEM with "
            f"'openssl pkey -inform DER' first"
        ) from None
    except (ValueError, Exception) as exc:  # noqa: BLE001 - unsupported algorithm and the like
        _ = exc
    raise ArtifactError(
        f"{name}: DER data that is none of certificate, PKCS#7, PKCS#12, CSR or private key "
        f"(tried each)"
    )


def _inspect_pem(path: Path, text: str) -> Contents:
    name = str(path)
    notes: list[str] = []
    blocks = pem_blocks(text, notes, name)
    if not blocks:
        raise ArtifactError(
            f"{name}: has a BEGIN line without a matching END line; the file is cut short "
            f"or damaged"
        )
    contents = Contents(path, "", notes=notes)
    kinds: list[str] = []
    for block in blocks:
        where = f"{name}:{block.line}"
        if block.label in CERT_LABELS:
            try:
                contents.certs.append(_load_cert_der(block.der))
                kinds.append("certificate")
                continue
            except ValueError:
                if looks_like_pkcs7(block.der):
                    contents.certs.extend(_pkcs7_block(where, block))
                    kinds.append("PKCS#7")
                    contents.notes.append(
                        f"{where}: a PKCS#7 bundle under a '{block.label}' label; read as PKCS#7"
                    )
                    continue
                raise ArtifactError(
                    f"{where}: the '{block.label}' block is not a valid X.509 certificate "
                    f"(tried DER certificate and PKCS#7)"
                ) from None
        elif block.label in PKCS7_LABELS:
            contents.certs.extend(_pkcs7_block(where, block))
            kinds.append("PKCS#7")
        elif block.label in CSR_LABELS:
            try:
                contents.csrs.append(x509.load_der_x509_csr(block.der))
            except ValueError:
                raise ArtifactError(f"{where}: the certificate request block is damaged") from None
            kinds.append("certificate request")
        elif block.label in KEY_LABELS:
            contents.key_blocks.append(block)
            kinds.append("encrypted private key" if block.encrypted else "private key")
        elif block.label in IGNORED_LABELS:
            continue
        else:
            contents.unknown_labels.append(block.label)
            kinds.append(f"'{block.label}'")
    contents.description = _describe_kinds(kinds)
    return contents


def _pkcs7_block(where: str, block: PemBlock) -> list[x509.Certificate]:
    try:
        return load_pkcs7_der(block.der)
    except ValueError as exc:
        raise ArtifactError(f"{where}: PEM PKCS#7 that cannot be read: {exc}") from None


def _describe_kinds(kinds: list[str]) -> str:
    if not kinds:
        return "PEM file with no certificate, key or request"
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    parts = [f"{n} {k}s" if n > 1 else k for k, n in counts.items()]
    return "PEM " + ", ".join(parts)


def read_contents(path: Path, expected: str = "certificate material") -> Contents:
    raw, _ = read_file(path, expected=expected)
    return inspect_bytes(path, raw)


def read_certificates(path: Path) -> Contents:
    """Read every certificate in *path*; fail with what the file is when it holds none."""
    contents = read_contents(path, "certificates")
    if contents.pkcs12:
        raise ArtifactError(
            f"{path}: is a PKCS#12 (PFX) file; certificates are expected here "
            f"(PKCS#7, PEM or DER)"
        )
    if not contents.certs:
        raise ArtifactError(
            f"{path}: holds {contents.description}, not a certificate; expected a certificate "
            f"or a PKCS#7 bundle (PEM or DER)"
        )
    return contents


def read_csr(path: Path) -> x509.CertificateSigningRequest:
    contents = read_contents(path, "a certificate request")
    if len(contents.csrs) != 1:
        what = contents.description if not contents.csrs else f"{len(contents.csrs)} requests"
        raise ArtifactError(
            f"{path}: holds {what}; expected exactly one certificate request (PKCS#10)"
        )
    return contents.csrs[0]


def load_pkcs12_file(path: Path, password: bytes | None) -> pkcs12.PKCS12KeyAndCertificates:
    raw, _ = read_file(path, expected="a PKCS#12 file")
    if not looks_like_pkcs12(raw):
        contents = None
        try:
            contents = inspect_bytes(path, raw)
        except ArtifactError:
            pass
        what = contents.description if contents else "not PKCS#12 data"
        extra = "; it contains no private key" if contents and not contents.key_blocks else ""
        raise ArtifactError(f"{path}: is {what}, not a PKCS#12 file{extra}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pkcs12.load_pkcs12(raw, password)
    except ValueError:
        raise ArtifactError(
            f"{path}: cannot open the PKCS#12 file: wrong password, or an algorithm this "
            f"cryptography build cannot read"
        ) from None
