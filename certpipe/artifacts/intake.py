"""Read certificate material by content, never by file extension.

Reads PEM with CRLF, a byte order mark, UTF-16 text, text around the blocks
("Bag Attributes", ``openssl x509 -text`` output), and END and BEGIN lines of
any labels glued together by ``cat``. Reads DER certificates, CSRs, CRLs and
keys, also DER certificates stored back to back. Reads PKCS#7 in PEM, DER,
BER, or base64 under a CERTIFICATE label, bare base64, and PKCS#12 (opened
with a password when one is given). Anything else raises ArtifactError
naming what the file is.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509 import ocsp

from certpipe.artifacts import der as asn1
from certpipe.artifacts.sniff import describe_binary, describe_text, foreign_label_hint
from certpipe.errors import ArtifactError
from certpipe.fsutil import MAX_INPUT_BYTES, FileRejected, read_limited
from certpipe.secrets import Secret

log = logging.getLogger("certpipe.intake")

MAX_ARTIFACT_BYTES = MAX_INPUT_BYTES

CERT_LABELS = {"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"}
PKCS7_LABELS = {"PKCS7", "PKCS #7 SIGNED DATA", "CERTIFICATE CHAIN", "CMS"}
PKCS12_LABELS = {"PKCS12", "PFX"}
CSR_LABELS = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}
KEY_LABELS = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY",
              "ENCRYPTED PRIVATE KEY"}
PUBLIC_KEY_LABELS = {"PUBLIC KEY", "RSA PUBLIC KEY"}
CRL_LABELS = {"X509 CRL"}
IGNORED_LABELS = {"EC PARAMETERS", "DH PARAMETERS", "DSA PARAMETERS", "X9.42 DH PARAMETERS"}

# RFC 7468: a label is printable ASCII except '-', with single spaces inside.
_LABEL = r"[!-,.-~](?:[ !-,.-~]*[!-,.-~])?"
_BLOCK_RE = re.compile(
    rf"-----BEGIN (?P<label>{_LABEL})-----(?P<body>.*?)-----END (?P=label)-----", re.DOTALL
)
_BEGIN_RE = re.compile(rf"-----BEGIN (?P<label>{_LABEL})-----")
_GLUED_RE = re.compile(rf"(-----END {_LABEL}-----)[ \t]*(-----BEGIN )")
_ATTRIBUTE_RE = re.compile(r"^\s*(friendlyName|localKeyID):\s*(.*?)\s*$", re.MULTILINE)

_T = TypeVar("_T")


@dataclass
class PemBlock:
    """One PEM block (or a DER key stored the same way, with line 0)."""

    label: str
    der: bytes
    line: int
    headers: dict[str, str] = field(default_factory=dict)
    # friendlyName and localKeyID from "Bag Attributes" text before the block.
    attributes: dict[str, str] = field(default_factory=dict)

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
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    public_keys: list[Any] = field(default_factory=list)
    pkcs12: bool = False
    pkcs12_der: bytes | None = None
    # True once the PKCS#12 file was opened; its key goes to keys, its certificates to certs.
    pkcs12_opened: bool = False
    notes: list[str] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)
    # Where each certificate was found ("line 12", "PKCS#7 at line 1"), same order as certs.
    cert_where: list[str] = field(default_factory=list)
    # friendlyName per certificate when the file names one, same order as certs.
    cert_names: list[str | None] = field(default_factory=list)

    def add_cert(self, cert: x509.Certificate, where: str, name: str | None = None) -> None:
        self.certs.append(cert)
        self.cert_where.append(where)
        self.cert_names.append(name)


class Pkcs7Unreadable(ArtifactError):
    """PKCS#7 signed data that cryptography cannot read; openssl may still read it."""


class PasswordNeeded(ArtifactError):
    """A PKCS#12 file that no password (or an empty one) opens, read without a password."""


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
        if b"\x00" in raw[:4096] or (not _mostly_text(raw) and b"-----BEGIN " not in raw):
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            if "-----BEGIN " not in text:
                return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _mostly_text(raw: bytes) -> bool:
    sample = raw[:2048]
    printable = sum(1 for b in sample if 0x20 <= b < 0x7F or b in b"\r\n\t")
    return printable >= 0.95 * len(sample)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def pem_blocks(text: str, notes: list[str] | None = None, name: str = "") -> list[PemBlock]:
    """Split *text* into PEM blocks, ignoring any text between them.

    Raise ArtifactError for a BEGIN line without its END line (a file cut
    short) and for a block whose base64 is damaged.
    """
    for match in _GLUED_RE.finditer(text):
        if notes is not None:
            notes.append(
                f"{name}:{_line_of(text, match.start())}: an END line and a BEGIN line are "
                f"glued together (a file without a final newline joined by cat); read as "
                f"two blocks"
            )
    text = _GLUED_RE.sub(r"\1\n\2", text)
    blocks = []
    previous_end = 0
    for match in _BLOCK_RE.finditer(text):
        _check_no_lost_begin(text, previous_end, match.start(), name)
        label = match["label"]
        line = _line_of(text, match.start())
        headers, der = _decode_body(match["body"], label, f"{name}:{line}")
        attributes = dict(_ATTRIBUTE_RE.findall(text[previous_end:match.start()]))
        blocks.append(PemBlock(label, der, line, headers, attributes))
        previous_end = match.end()
    _check_no_lost_begin(text, previous_end, len(text), name)
    return blocks


def _check_no_lost_begin(text: str, start: int, end: int, name: str) -> None:
    """Reject a BEGIN line between two blocks (or at the end) that has no END line."""
    lost = _BEGIN_RE.search(text, start, end)
    if lost is None:
        return
    raise ArtifactError(
        f"{name}:{_line_of(text, lost.start())}: the '{lost['label']}' block has a BEGIN line "
        f"but no matching END line; the file is cut short or damaged (download or copy it "
        f"again)"
    )


def _decode_body(body: str, label: str, where: str) -> tuple[dict[str, str], bytes]:
    if "\\n" in body:
        body = body.replace("\\r", "").replace("\\n", "\n")  # PEM pasted from a JSON string
    headers: dict[str, str] = {}
    body_lines: list[str] = []
    for raw_line in body.split("\n"):
        stripped = raw_line.strip()
        if not stripped:
            continue
        if ":" in stripped and not body_lines:
            key, _, value = stripped.partition(":")
            headers[key.strip()] = value.strip()
            continue
        body_lines.append(stripped)
    try:
        return headers, base64.b64decode("".join(body_lines), validate=True)
    except (binascii.Error, ValueError):
        raise ArtifactError(
            f"{where}: the PEM block '{label}' holds invalid base64 (the file may be damaged "
            f"or cut short)"
        ) from None


def der_length(data: bytes) -> int | None:
    """Return the total length the DER header at the start of *data* announces, if sane."""
    return asn1.declared_length(data)


def looks_like_pkcs7(der: bytes) -> bool:
    return asn1.content_info_type(der) == "1.2.840.113549.1.7.2"


def looks_like_pkcs12(der: bytes) -> bool:
    return asn1.looks_like_pkcs12(der)


def _quietly(notes: list[str], where: str, loader: Callable[[], _T]) -> _T:
    """Run a cryptography loader, turning its warnings into notes.

    cryptography warns on non-strict DER (BER lengths, unsorted SETs from
    ``openssl crl2pkcs7``) and on serial numbers that RFC 5280 forbids. The
    data still reads, so the warning becomes a note for the user.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = loader()
    for warning in caught:
        message = str(warning.message).split(". ")[0].rstrip(".")
        if "falling back to parsing as BER" in message:
            # openssl crl2pkcs7 and many CAs write this; it reads the same.
            log.debug("%s: PKCS#7 is not strict DER; read as BER", where)
            continue
        note = f"{where}: {message}"
        if note not in notes:
            notes.append(note)
    return result


def load_pkcs7_der(der: bytes, notes: list[str] | None = None,
                   where: str = "") -> list[x509.Certificate]:
    """Return the certificates of PKCS#7 signed data (BER lengths accepted)."""
    return list(_quietly(notes if notes is not None else [], where,
                         lambda: pkcs7.load_der_pkcs7_certificates(der)))


def _load_cert_der(der: bytes, notes: list[str] | None = None,
                   where: str = "") -> x509.Certificate:
    length = der_length(der)
    if length is not None and length < len(der):
        der = der[:length]  # TRUSTED CERTIFICATE carries aux data after the certificate
    return _quietly(notes if notes is not None else [], where,
                    lambda: x509.load_der_x509_certificate(der))


_PARSE_ERROR_RE = re.compile(r"ParseError \{ kind: (?P<kind>\w+).*?location: \[(?P<where>.*)\]")


def _parse_error(exc: Exception) -> str:
    """Shorten cryptography's parser error to the kind of damage and where it is."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    match = _PARSE_ERROR_RE.search(text)
    if match is None:
        return text[:160]
    fields = re.findall(r'"([^"]+)"', match["where"])
    place = f" in {fields[-1]}" if fields else ""
    return f"invalid ASN.1 ({match['kind']}{place})"


def read_file(path: Path, *, expected: str = "certificate material") -> tuple[bytes, str]:
    try:
        raw = read_limited(path, MAX_ARTIFACT_BYTES)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path}: is a folder, expected a file with {expected}") from None
    except FileRejected as exc:
        raise ArtifactError(f"{path}: {exc.reason}; expected a file with {expected}") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}") from None
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
        known = describe_text(text)
        if known is not None:
            raise ArtifactError(f"{name}: is {known[0]}, not certificate material; {known[1]}")
        stripped = text.strip()
        compact = re.sub(r"\s+", "", stripped)
        if compact and re.fullmatch(r"[A-Za-z0-9+/=_-]+", compact):
            der = _decode_bare_base64(compact)
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


def _decode_bare_base64(compact: str) -> bytes:
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _inspect_der(path: Path, der: bytes) -> Contents:
    name = str(path)
    if der[:1] != b"\x30":
        known = describe_binary(der)
        if known is not None:
            raise ArtifactError(f"{name}: is {known[0]}, not certificate material; {known[1]}")
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
    contents = Contents(path, "")
    if length is not None and length < len(der):
        parts = asn1.split_concatenated(der)
        if parts is not None and len(parts) > 1:
            return _inspect_der_sequence(path, parts)
        if der[length:].strip(b"\x00\r\n\t "):
            contents.notes.append(
                f"{name}: {len(der) - length} bytes after the end of the DER data were ignored"
            )
        der = der[:length]
    _identify_der(name, der, contents)
    return contents


def _inspect_der_sequence(path: Path, parts: list[bytes]) -> Contents:
    """Read DER elements stored back to back, as some tools write a chain."""
    contents = Contents(path, f"{len(parts)} DER certificates stored back to back")
    for index, part in enumerate(parts, 1):
        where = f"{path} (DER element {index})"
        try:
            contents.add_cert(_load_cert_der(part, contents.notes, where), f"DER element {index}")
        except Exception as exc:  # noqa: BLE001 - cryptography raises several types
            raise ArtifactError(
                f"{where}: the file holds {len(parts)} DER elements back to back, and element "
                f"{index} is not a readable certificate ({_parse_error(exc)})"
            ) from None
    return contents


def _identify_der(name: str, der: bytes, contents: Contents) -> None:
    """Fill *contents* from one DER element, trying each kind in turn."""
    if looks_like_pkcs12(der):
        contents.description = "DER PKCS#12 (PFX) file"
        contents.pkcs12 = True
        contents.pkcs12_der = der
        return
    content_type = asn1.content_info_type(der)
    if content_type is not None:
        for cert in _read_pkcs7(name, der, content_type, contents.notes):
            contents.add_cert(cert, "PKCS#7")
        contents.description = f"DER PKCS#7 bundle of {_count(len(contents.certs), 'certificate')}"
        return
    try:
        contents.add_cert(_load_cert_der(der, contents.notes, name), "DER")
        contents.description = "DER certificate"
        return
    except Exception as exc:  # noqa: BLE001 - ValueError, InvalidVersion, UnsupportedAlgorithm
        if asn1.looks_like_certificate(der):
            raise ArtifactError(
                f"{name}: is a DER X.509 certificate that cannot be parsed: "
                f"{_parse_error(exc)}; the CA or the tool that wrote it made an invalid "
                f"certificate"
            ) from None
    pair = asn1.certificate_pair(der)
    if pair:
        for index, part in enumerate(pair, 1):
            try:
                contents.add_cert(_load_cert_der(part, contents.notes, name),
                                  f"certificate pair, element {index}")
            except Exception as exc:  # noqa: BLE001 - ValueError, InvalidVersion and others
                raise ArtifactError(f"{name}: is an X.509 certificate pair whose certificate "
                                    f"{index} cannot be parsed: {_parse_error(exc)}") from None
        contents.description = f"DER X.509 certificate pair ({_count(len(pair), 'certificate')})"
        return
    for what, loader, target in _DER_LOADERS:
        try:
            item = _quietly(contents.notes, name, functools.partial(loader, der))
        except Exception:  # noqa: BLE001 - each loader raises its own error types
            continue
        if target is not None:
            getattr(contents, target).append(item)
        contents.description = f"DER {what}"
        if target is None:
            raise ArtifactError(f"{name}: is a DER {what}, not certificate material")
        return
    key_block = _der_private_key(der)
    if key_block is not None:
        contents.key_blocks.append(key_block)
        contents.description = ("DER encrypted private key" if key_block.encrypted
                                else "DER private key")
        return
    raise ArtifactError(
        f"{name}: is DER data of an unknown kind, not a certificate, PKCS#7, PKCS#12, CSR, "
        f"CRL or private key (each was tried)"
    )


_DER_LOADERS: list[tuple[str, Callable[[bytes], Any], str | None]] = [
    ("certificate request", x509.load_der_x509_csr, "csrs"),
    ("certificate revocation list (CRL)", x509.load_der_x509_crl, "crls"),
    ("public key", serialization.load_der_public_key, "public_keys"),
    ("OCSP response", ocsp.load_der_ocsp_response, None),
    ("OCSP request", ocsp.load_der_ocsp_request, None),
]


def _der_private_key(der: bytes) -> PemBlock | None:
    """Recognise a DER private key, plain or encrypted, without decrypting it."""
    if asn1.encrypted_pkcs8_algorithm(der) is not None:
        return PemBlock("ENCRYPTED PRIVATE KEY", der, 0)
    try:
        serialization.load_der_private_key(der, password=None)
    except TypeError:
        return PemBlock("ENCRYPTED PRIVATE KEY", der, 0)
    except Exception:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm and others
        return None
    return PemBlock("PRIVATE KEY", der, 0)


def _read_pkcs7(where: str, der: bytes, content_type: str,
                notes: list[str]) -> list[x509.Certificate]:
    if content_type != "1.2.840.113549.1.7.2":
        kind = asn1.oid_name(content_type)
        raise ArtifactError(
            f"{where}: is a PKCS#7/CMS {kind} message, not a certificate bundle (a CA reply "
            f"is signed-data with certificates); ask for the certificate as .p7b, .cer or .crt"
        )
    try:
        certs = load_pkcs7_der(der, notes, where)
    except Exception as exc:  # noqa: BLE001 - ValueError and UnsupportedAlgorithm
        if "no certificate data" in str(exc):
            certs = []
        else:
            raise Pkcs7Unreadable(
                f"{where}: PKCS#7 signed data that cannot be read as a certificate bundle: "
                f"{_parse_error(exc)}"
            ) from None
    if not certs:
        raise ArtifactError(
            f"{where}: is a PKCS#7 bundle with no certificates in it; ask the CA for the "
            f"certificate again"
        )
    return certs


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
        kinds.append(_read_block(name, block, contents))
    contents.description = _describe_kinds([k for k in kinds if k])
    return contents


def _read_block(name: str, block: PemBlock, contents: Contents) -> str:
    """Add one PEM block's content to *contents*; return what it was ('' when ignored)."""
    where = f"{name}:{block.line}"
    label = block.label
    friendly = block.attributes.get("friendlyName")
    if label in CERT_LABELS | PKCS7_LABELS | PKCS12_LABELS:
        return _read_cert_block(where, block, contents, friendly)

    if label in CSR_LABELS:
        try:
            contents.csrs.append(_quietly(contents.notes, where,
                                          lambda: x509.load_der_x509_csr(block.der)))
        except Exception as exc:  # noqa: BLE001 - ValueError, InvalidVersion and others
            raise ArtifactError(
                f"{where}: the certificate request block is damaged: {_parse_error(exc)}"
            ) from None
        return "certificate request"

    if label in KEY_LABELS:
        contents.key_blocks.append(block)
        return "encrypted private key" if block.encrypted else "private key"

    if label in PUBLIC_KEY_LABELS:
        try:
            contents.public_keys.append(_load_public_block(block))
        except Exception as exc:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm
            raise ArtifactError(f"{where}: the public key block is damaged: "
                                f"{_parse_error(exc)}") from None
        return "public key"

    if label in CRL_LABELS:
        try:
            contents.crls.append(x509.load_der_x509_crl(block.der))
        except Exception as exc:  # noqa: BLE001 - ValueError and others
            raise ArtifactError(f"{where}: the CRL block is damaged: "
                                f"{_parse_error(exc)}") from None
        return "certificate revocation list (CRL)"

    if label in IGNORED_LABELS:
        return ""
    contents.unknown_labels.append(label)
    hint = foreign_label_hint(label)
    if hint is not None:
        contents.notes.append(f"{where}: the '{label}' block is {hint}")
    return f"'{label}' block"


def _load_public_block(block: PemBlock) -> Any:
    if block.label == "RSA PUBLIC KEY":
        pem = (f"-----BEGIN RSA PUBLIC KEY-----\n{base64.encodebytes(block.der).decode()}"
               f"-----END RSA PUBLIC KEY-----\n").encode()
        return serialization.load_pem_public_key(pem)
    return serialization.load_der_public_key(block.der)


def _read_cert_block(where: str, block: PemBlock, contents: Contents,
                     friendly: str | None) -> str:
    """Read a certificate, PKCS#7 or PKCS#12 block by its content, whatever its label."""
    der = block.der
    if looks_like_pkcs12(der):
        if contents.pkcs12_der is not None:
            raise ArtifactError(f"{where}: a second PKCS#12 block; give one PFX per file")
        contents.pkcs12 = True
        contents.pkcs12_der = der
        if block.label not in PKCS12_LABELS:
            contents.notes.append(f"{where}: a PKCS#12 file under a '{block.label}' label; "
                                  f"read as PKCS#12")
        return "PKCS#12"
    content_type = asn1.content_info_type(der)
    if content_type is not None:
        for cert in _read_pkcs7(where, der, content_type, contents.notes):
            contents.add_cert(cert, f"PKCS#7 at line {block.line}")
        if block.label not in PKCS7_LABELS:
            contents.notes.append(
                f"{where}: a PKCS#7 bundle under a '{block.label}' label; read as PKCS#7"
            )
        return "PKCS#7"
    if block.label in PKCS7_LABELS | PKCS12_LABELS:
        raise ArtifactError(
            f"{where}: the '{block.label}' block is neither PKCS#7 signed data nor PKCS#12 "
            f"(checked the ASN.1 content type)"
        )
    try:
        cert = _load_cert_der(der, contents.notes, where)
    except Exception as exc:  # noqa: BLE001 - ValueError, InvalidVersion and others
        length = der_length(der)
        if length is not None and length > len(der):
            reason = (f"the block is cut short: its DER header announces {length} bytes but "
                      f"the block has {len(der)}")
        else:
            reason = _parse_error(exc)
        raise ArtifactError(
            f"{where}: the '{block.label}' block is not a valid X.509 certificate (tried "
            f"X.509 certificate, PKCS#7 and PKCS#12): {reason}"
        ) from None
    contents.add_cert(cert, f"line {block.line}", friendly)
    return "certificate"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _describe_kinds(kinds: list[str]) -> str:
    if not kinds:
        return "PEM file with no certificate, key or request"
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    parts = [_count(n, k) if n > 1 else k for k, n in counts.items()]
    return "PEM " + ", ".join(parts)


def open_pkcs12(contents: Contents, passwords: Sequence[Secret] = ()) -> None:
    """Open the PKCS#12 data in *contents*, adding its key and certificates.

    Without passwords, a PFX protected by no password (or an empty one) is
    opened; otherwise the contents stay closed. With passwords, each is tried,
    and ArtifactError is raised when none opens the file.
    """
    der = contents.pkcs12_der
    if der is None or contents.pkcs12_opened:
        return
    candidates: list[bytes | None] = [s.value for s in passwords] if passwords else [None, b""]
    bundle = None
    for password in candidates:
        try:
            bundle = _quietly(contents.notes, str(contents.path),
                              functools.partial(pkcs12.load_pkcs12, der, password))
            break
        except ValueError:
            continue
        except Exception as exc:  # noqa: BLE001 - UnsupportedAlgorithm and others
            raise ArtifactError(f"{contents.path}: cannot open the PKCS#12 file: "
                                f"{_parse_error(exc)}") from None
    if bundle is None:
        if not passwords:
            return
        sources = ", ".join(s.ref.describe() for s in passwords)
        raise ArtifactError(
            f"{contents.path}: cannot open the PKCS#12 file with the password from {sources}: "
            f"wrong password, or an algorithm this cryptography build cannot read (RC2-40 "
            f"needs OpenSSL's legacy provider)"
        )
    _add_pkcs12(contents, bundle)


def _add_pkcs12(contents: Contents, bundle: pkcs12.PKCS12KeyAndCertificates) -> None:
    contents.pkcs12_opened = True
    if bundle.key is not None:
        contents.keys.append(bundle.key)
    entries = ([bundle.cert] if bundle.cert is not None else []) + list(bundle.additional_certs)
    for index, entry in enumerate(entries):
        name = entry.friendly_name.decode("utf-8", "replace") if entry.friendly_name else None
        where = "PKCS#12, linked to the key" if index == 0 and bundle.cert else "PKCS#12"
        contents.add_cert(entry.certificate, where, name)
    parts = []
    if bundle.key is not None:
        parts.append("a private key")
    if entries:
        parts.append(_count(len(entries), "certificate"))
    contents.description = (contents.description or "PKCS#12 (PFX) file") + (
        f" with {' and '.join(parts)}" if parts else ", empty")


def read_contents(path: Path, expected: str = "certificate material",
                  passwords: Sequence[Secret] = ()) -> Contents:
    """Read and identify *path*; a PKCS#12 file is opened when it can be."""
    raw, _ = read_file(path, expected=expected)
    contents = inspect_bytes(path, raw)
    if contents.pkcs12:
        open_pkcs12(contents, passwords)
    return contents


def what_it_holds(contents: Contents) -> str:
    """Return a short phrase for what a file holds, for 'X is ..., not Y' messages."""
    if contents.pkcs12 and not contents.pkcs12_opened:
        return "a PKCS#12 (PFX) file protected by a password"
    if contents.unknown_labels and not (contents.certs or contents.key_blocks or contents.keys
                                        or contents.csrs):
        return f"PEM label '{contents.unknown_labels[0]}'"
    return contents.description


def read_certificates(path: Path, passwords: Sequence[Secret] = (), *,
                      allow_pkcs12: bool = False) -> Contents:
    """Read every certificate in *path*; fail naming what the file is when it has none.

    PKCS#12 is accepted only with *allow_pkcs12*, so that a PFX given where a
    plain certificate belongs is reported rather than unpacked.
    """
    contents = read_contents(path, "certificates", passwords if allow_pkcs12 else ())
    if contents.pkcs12 and not allow_pkcs12:
        raise ArtifactError(
            f"{path}: is a PKCS#12 (PFX) file; certificates are expected here "
            f"(PKCS#7, PEM or DER)"
        )
    if contents.pkcs12 and not contents.pkcs12_opened:
        raise PasswordNeeded(
            f"{path}: is a PKCS#12 (PFX) file protected by a password; name the password "
            f"source (env:NAME or file:PATH)"
        )
    if not contents.certs:
        raise ArtifactError(
            f"{path}: is {with_article(what_it_holds(contents))}, not a certificate; expected a "
            f"certificate or a PKCS#7 bundle (PEM or DER)"
        )
    return contents


def with_article(phrase: str) -> str:
    if phrase.startswith(("a ", "an ", "PEM label")) or phrase[:1].isdigit():
        return phrase
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def read_csr(path: Path) -> x509.CertificateSigningRequest:
    contents = read_contents(path, "a certificate request")
    if len(contents.csrs) != 1:
        what = what_it_holds(contents) if not contents.csrs else f"{len(contents.csrs)} requests"
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
        what = with_article(contents.description) if contents else "not PKCS#12 data"
        extra = ("; it contains no private key"
                 if contents and not (contents.key_blocks or contents.keys) else "")
        raise ArtifactError(f"{path}: is {what}, not a PKCS#12 file{extra}")
    length = der_length(raw)
    if length is not None and length > len(raw):
        raise ArtifactError(
            f"{path}: the PKCS#12 file is cut short: its header announces {length} bytes but "
            f"the file has {len(raw)}; copy it again"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pkcs12.load_pkcs12(raw, password)
    except ValueError:
        raise ArtifactError(
            f"{path}: cannot open the PKCS#12 file: wrong password, or an algorithm this "
            f"cryptography build cannot read"
        ) from None
