"""A small DER/BER reader for telling structures apart before parsing them.

cryptography parses certificates, keys and PKCS#7 fully, but its errors say
little about what a file is when it is something else. These helpers read
just the outer tag-length-value layers, so intake can name a CRL, an OCSP
response, a PKCS#7 envelope or an encrypted key precisely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
CONTEXT_0 = 0xA0
CONTEXT_1 = 0xA1

# OIDs (dotted form) that intake names in its messages.
OID_NAMES = {
    "1.2.840.113549.1.7.1": "data",
    "1.2.840.113549.1.7.2": "signed-data",
    "1.2.840.113549.1.7.3": "enveloped-data",
    "1.2.840.113549.1.7.4": "signed-and-enveloped-data",
    "1.2.840.113549.1.7.5": "digested-data",
    "1.2.840.113549.1.7.6": "encrypted-data",
    "1.2.840.113549.1.9.16.1.23": "authenticated-enveloped-data",
    "1.2.840.113549.1.5.13": "PBES2",
    "1.2.840.113549.1.5.3": "PBE-MD5-DES",
    "1.2.840.113549.1.5.10": "PBE-SHA1-DES",
    "1.2.840.113549.1.12.1.3": "PBE-SHA1-3DES",
    "1.2.840.113549.1.12.1.6": "PBE-SHA1-RC2-40",
    "1.2.840.113549.1.12.1.5": "PBE-SHA1-RC2-128",
    "2.16.840.1.101.3.4.1.2": "AES-128-CBC",
    "2.16.840.1.101.3.4.1.22": "AES-192-CBC",
    "2.16.840.1.101.3.4.1.42": "AES-256-CBC",
    "1.2.840.113549.3.7": "DES-EDE3-CBC",
    "1.3.14.3.2.7": "DES-CBC",
    "1.2.840.113549.3.2": "RC2-CBC",
}


@dataclass(frozen=True)
class Element:
    """One tag-length-value element; *content* is None for BER indefinite lengths."""

    tag: int
    header_length: int
    content: bytes | None
    total_length: int | None  # bytes taken by header and content


def read_element(data: bytes, offset: int = 0) -> Element | None:
    """Read the element at *offset*; return None when the header is invalid or cut short."""
    if len(data) < offset + 2:
        return None
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        return None  # multi-byte tags do not occur in the structures read here
    first = data[offset + 1]
    if first < 0x80:
        length, header = first, 2
    elif first == 0x80:
        return Element(tag, 2, None, None)  # BER indefinite length
    else:
        count = first & 0x7F
        if count > 4 or len(data) < offset + 2 + count:
            return None
        length = int.from_bytes(data[offset + 2:offset + 2 + count], "big")
        header = 2 + count
    end = offset + header + length
    content = data[offset + header:end] if end <= len(data) else None
    return Element(tag, header, content, header + length)


def declared_length(data: bytes) -> int | None:
    """Return the length the outer DER header announces, or None for BER or a bad header."""
    element = read_element(data)
    if element is None or element.total_length is None:
        return None
    return element.total_length


def children(content: bytes) -> Iterator[Element]:
    """Yield the elements inside a constructed element's content, stopping at any damage."""
    offset = 0
    while offset < len(content):
        element = read_element(content, offset)
        if element is None or element.content is None or element.total_length is None:
            return
        yield element
        offset += element.total_length


def split_concatenated(data: bytes) -> list[bytes] | None:
    """Split DER elements stored back to back; None unless the whole input is used up."""
    parts = []
    offset = 0
    while offset < len(data):
        element = read_element(data, offset)
        if element is None or element.content is None or element.total_length is None:
            return None
        if element.tag != SEQUENCE:
            return None
        parts.append(data[offset:offset + element.total_length])
        offset += element.total_length
    return parts


def decode_oid(content: bytes) -> str:
    """Return the dotted form of an OBJECT IDENTIFIER's content octets."""
    if not content:
        return ""
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0] if arcs else 0
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in head + arcs[1:])


def oid_name(dotted: str) -> str:
    return OID_NAMES.get(dotted, dotted)


def outer_children(data: bytes) -> list[Element]:
    """Return the elements inside the outer SEQUENCE, or [] when it is not one."""
    outer = read_element(data)
    if outer is None or outer.tag != SEQUENCE or outer.content is None:
        return []
    return list(children(outer.content))


def content_info_type(data: bytes) -> str | None:
    """Return the content type OID of a PKCS#7/CMS ContentInfo, or None for other data.

    A ContentInfo is SEQUENCE { contentType OID, [0] EXPLICIT content OPTIONAL }.
    BER indefinite lengths are common in PKCS#7, so the OID is read from the
    bytes directly after the outer header.
    """
    outer = read_element(data)
    if outer is None or outer.tag != SEQUENCE:
        return None
    first = read_element(data, outer.header_length)
    if first is None or first.tag != OID or first.content is None:
        return None
    dotted = decode_oid(first.content)
    return dotted if dotted.startswith("1.2.840.113549.1.7.") or dotted.startswith(
        "1.2.840.113549.1.9.16.1.") else None


def looks_like_pkcs12(data: bytes) -> bool:
    """PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData OPTIONAL }."""
    outer = read_element(data)
    if outer is None or outer.tag != SEQUENCE:
        return False
    version = read_element(data, outer.header_length)
    if version is None or version.tag != INTEGER or version.content != b"\x03":
        return False
    assert version.total_length is not None
    return content_info_type(data[outer.header_length + version.total_length:]) is not None


def encrypted_pkcs8_algorithm(der: bytes) -> str | None:
    """Name the cipher of an EncryptedPrivateKeyInfo (PBES2 names its inner cipher)."""
    parts = outer_children(der)
    if len(parts) != 2 or parts[0].tag != SEQUENCE or parts[1].tag != OCTET_STRING:
        return None
    algorithm = list(children(parts[0].content or b""))
    if not algorithm or algorithm[0].tag != OID:
        return None
    scheme = decode_oid(algorithm[0].content or b"")
    if scheme != "1.2.840.113549.1.5.13" or len(algorithm) < 2:
        return oid_name(scheme)
    # PBES2-params ::= SEQUENCE { keyDerivationFunc, encryptionScheme }
    params = list(children(algorithm[1].content or b""))
    if len(params) == 2:
        cipher = list(children(params[1].content or b""))
        if cipher and cipher[0].tag == OID:
            return f"PBES2 {oid_name(decode_oid(cipher[0].content or b''))}"
    return "PBES2"


def looks_like_certificate(der: bytes) -> bool:
    """Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version?, INTEGER serial, ... }, ... }."""
    parts = outer_children(der)
    if len(parts) != 3 or parts[0].tag != SEQUENCE or parts[2].tag != BIT_STRING:
        return False
    tbs = list(children(parts[0].content or b""))
    if tbs and tbs[0].tag == CONTEXT_0:
        tbs = tbs[1:]  # the version; a v1 certificate has none
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo; a CRL
    # has a time where a certificate has its validity SEQUENCE.
    return (len(tbs) >= 6 and tbs[0].tag == INTEGER and tbs[1].tag == SEQUENCE
            and tbs[3].tag == SEQUENCE and tbs[5].tag == SEQUENCE)


def certificate_pair(der: bytes) -> list[bytes]:
    """Return the certificates of an X.509 CertificatePair ([0] forward, [1] reverse)."""
    parts = outer_children(der)
    if not parts or len(parts) > 2 or any(p.tag not in (CONTEXT_0, CONTEXT_1) for p in parts):
        return []
    found = []
    for part in parts:
        inner = read_element(part.content or b"")
        content = part.content or b""
        if inner is None or inner.tag != SEQUENCE or inner.total_length != len(content):
            return []
        found.append(part.content or b"")
    return found
