"""A small reader for DER and BER encodings (ITU-T X.690), enough to walk PKCS#12.

Windows, Java and old Netscape code write PKCS#12 files with BER indefinite
lengths and constructed OCTET STRINGs, so both are accepted. Every length is
checked against the data, so a damaged or hostile file raises DerError and
never reads past its end.
"""

from __future__ import annotations

from dataclasses import dataclass

from certpipe.errors import ArtifactError

MAX_DEPTH = 64

UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0, 1, 2, 3

# Universal tag numbers used by PKCS#12.
BOOLEAN = 1
INTEGER = 2
BIT_STRING = 3
OCTET_STRING = 4
NULL = 5
OID = 6
UTF8_STRING = 12
SEQUENCE = 16
SET = 17
PRINTABLE_STRING = 19
IA5_STRING = 22
BMP_STRING = 30

_NAMES = {
    INTEGER: "INTEGER", OCTET_STRING: "OCTET STRING", OID: "OBJECT IDENTIFIER",
    SEQUENCE: "SEQUENCE", SET: "SET", NULL: "NULL", BMP_STRING: "BMPString",
}


class DerError(ArtifactError):
    """The data is not the ASN.1 structure the reader expects."""


@dataclass(frozen=True)
class Element:
    """One ASN.1 element: its tag, where it starts, and its content octets."""

    tag_class: int
    constructed: bool
    number: int
    offset: int
    content: bytes
    indefinite: bool = False

    def is_universal(self, number: int) -> bool:
        return self.tag_class == UNIVERSAL and self.number == number

    def is_context(self, number: int) -> bool:
        return self.tag_class == CONTEXT and self.number == number

    def describe(self) -> str:
        if self.tag_class == UNIVERSAL:
            return _NAMES.get(self.number, f"universal tag {self.number}")
        kind = {APPLICATION: "application", CONTEXT: "context", PRIVATE: "private"}
        return f"[{self.number}] ({kind[self.tag_class]} tag)"

    def children(self, depth: int = 0) -> list["Element"]:
        """Parse the content of a constructed element into its elements."""
        if not self.constructed:
            raise DerError(f"at byte {self.offset}: expected a constructed element, "
                           f"found primitive {self.describe()}")
        return parse_all(self.content, self.offset, depth + 1)


def _read_header(data: bytes, pos: int, base: int) -> tuple[int, bool, int, int, int | None]:
    """Return (class, constructed, number, content start, length or None for indefinite)."""
    if pos >= len(data):
        raise DerError(f"at byte {base + pos}: data ends where an element should start")
    first = data[pos]
    tag_class = first >> 6
    constructed = bool(first & 0x20)
    number = first & 0x1F
    pos += 1

    if number == 0x1F:  # high tag number form: base-128 digits follow
        number = 0
        while True:
            if pos >= len(data):
                raise DerError(f"at byte {base + pos}: the data ends inside a tag")
            byte = data[pos]
            pos += 1
            number = (number << 7) | (byte & 0x7F)
            if number > 0xFFFFFF:
                raise DerError(f"at byte {base + pos}: tag number too large")
            if not byte & 0x80:
                break

    if pos >= len(data):
        raise DerError(f"at byte {base + pos}: the data ends before a length")
    length_byte = data[pos]
    pos += 1
    if length_byte < 0x80:
        return tag_class, constructed, number, pos, length_byte
    if length_byte == 0x80:
        if not constructed:
            raise DerError(f"at byte {base + pos - 1}: indefinite length on a primitive element")
        return tag_class, constructed, number, pos, None
    count = length_byte & 0x7F
    if count > 4 or pos + count > len(data):
        raise DerError(f"at byte {base + pos - 1}: invalid length field")
    length = int.from_bytes(data[pos:pos + count], "big")
    return tag_class, constructed, number, pos + count, length


def parse_one(data: bytes, pos: int = 0, base: int = 0, depth: int = 0) -> tuple[Element, int]:
    """Parse the element at *pos*; return it and the position after it.

    *base* is the offset of *data* within the whole file, for messages.
    """
    if depth > MAX_DEPTH:
        raise DerError(f"at byte {base + pos}: nested more than {MAX_DEPTH} levels deep")
    tag_class, constructed, number, start, length = _read_header(data, pos, base)
    if length is not None:
        end = start + length
        if end > len(data):
            raise DerError(
                f"at byte {base + pos}: the element announces {length} bytes but only "
                f"{len(data) - start} follow; the file is cut short or damaged"
            )
        element = Element(tag_class, constructed, number, base + pos, data[start:end])
        return element, end
    # Indefinite length: elements follow until an end-of-contents marker (00 00).
    cursor = start
    while True:
        if cursor + 2 > len(data):
            raise DerError(f"at byte {base + pos}: an indefinite-length element is not closed")
        if data[cursor] == 0 and data[cursor + 1] == 0:
            break
        _, cursor = parse_one(data, cursor, base, depth + 1)
    element = Element(tag_class, constructed, number, base + pos, data[start:cursor],
                      indefinite=True)
    return element, cursor + 2


def parse_all(data: bytes, base: int = 0, depth: int = 0) -> list[Element]:
    elements = []
    pos = 0
    while pos < len(data):
        element, pos = parse_one(data, pos, base, depth)
        elements.append(element)
    return elements


def parse_single(data: bytes, what: str) -> Element:
    """Parse *data* as exactly one element; trailing bytes other than zeros are an error."""
    element, end = parse_one(data)
    if data[end:].strip(b"\x00"):
        raise DerError(f"{what}: {len(data) - end} unexpected bytes after the end of the data")
    return element


def expect(element: Element, number: int, what: str) -> Element:
    if not element.is_universal(number):
        raise DerError(f"at byte {element.offset}: {what} should be "
                       f"{_NAMES.get(number, number)}, found {element.describe()}")
    return element


def sequence(element: Element, what: str, minimum: int = 0) -> list[Element]:
    items = expect(element, SEQUENCE, what).children()
    if len(items) < minimum:
        raise DerError(f"at byte {element.offset}: {what} has {len(items)} elements, "
                       f"expected at least {minimum}")
    return items


def integer(element: Element, what: str) -> int:
    content = expect(element, INTEGER, what).content
    if not content:
        raise DerError(f"at byte {element.offset}: {what} is an empty INTEGER")
    return int.from_bytes(content, "big", signed=True)


def oid(element: Element, what: str) -> str:
    content = expect(element, OID, what).content
    if not content or content[-1] & 0x80:
        raise DerError(f"at byte {element.offset}: {what} is not a valid OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


def octets(element: Element, what: str) -> bytes:
    """Return the bytes of an OCTET STRING, joining the pieces of a BER constructed one."""
    if element.tag_class == UNIVERSAL and element.number != OCTET_STRING:
        raise DerError(f"at byte {element.offset}: {what} should be OCTET STRING, "
                       f"found {element.describe()}")
    return implicit_octets(element, what)


def implicit_octets(element: Element, what: str, depth: int = 0) -> bytes:
    """Return the bytes of an OCTET STRING whatever its tag (for [0] IMPLICIT fields)."""
    if not element.constructed:
        return element.content
    if depth > MAX_DEPTH:
        raise DerError(f"at byte {element.offset}: {what} is nested too deeply")
    return b"".join(implicit_octets(part, what, depth + 1) for part in element.children())


def explicit(element: Element, number: int, what: str) -> Element:
    """Return the single element inside an ``[number] EXPLICIT`` wrapper."""
    if not element.is_context(number) or not element.constructed:
        raise DerError(f"at byte {element.offset}: {what} should be [{number}] EXPLICIT, "
                       f"found {element.describe()}")
    inner = element.children()
    if len(inner) != 1:
        raise DerError(f"at byte {element.offset}: {what} holds {len(inner)} elements, "
                       f"expected one")
    return inner[0]


def bmp_string(element: Element, what: str) -> str:
    content = expect(element, BMP_STRING, what).content
    if len(content) % 2:
        raise DerError(f"at byte {element.offset}: {what} has an odd number of bytes")
    return content.decode("utf-16-be", "replace")


def text_string(element: Element, what: str) -> str:
    """Decode BMPString, UTF8String, PrintableString or IA5String."""
    if element.is_universal(BMP_STRING):
        return bmp_string(element, what)
    if element.tag_class == UNIVERSAL and element.number in (UTF8_STRING, PRINTABLE_STRING,
                                                              IA5_STRING):
        return element.content.decode("utf-8", "replace")
    raise DerError(f"at byte {element.offset}: {what} should be a string, "
                   f"found {element.describe()}")
