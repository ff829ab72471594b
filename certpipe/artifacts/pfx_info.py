"""Read which algorithms a PKCS#12 (.pfx) file really uses, and judge where it imports.

``read_pfx`` walks the file's ASN.1 itself (RFC 7292): the encryption of
each certificate container and key bag with its PBES2 parameters and
iteration counts, and the MAC digest and iterations. With the password it
also verifies the MAC and decrypts the containers to list every bag.
``judge`` decides whether a target such as Windows Server 2016 imports a set
of algorithms, and why not. Nothing here starts openssl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from certpipe.artifacts import asn1, pbe
from certpipe.artifacts.asn1 import DerError, Element
from certpipe.artifacts.pbe import NOT_ENCRYPTED, DerivationRefused, Encryption, Mac
from certpipe.artifacts.pfx_targets import TARGETS, Target, Verdict, judge
from certpipe.errors import ArtifactError
from certpipe.fsutil import FileRejected, read_limited

MAX_PFX_BYTES = 10_000_000

DATA = "1.2.840.113549.1.7.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
ENVELOPED_DATA = "1.2.840.113549.1.7.3"
ENCRYPTED_DATA = "1.2.840.113549.1.7.6"

BAG_KINDS = {
    "1.2.840.113549.1.12.10.1.1": "key",
    "1.2.840.113549.1.12.10.1.2": "shrouded key",
    "1.2.840.113549.1.12.10.1.3": "certificate",
    "1.2.840.113549.1.12.10.1.4": "CRL",
    "1.2.840.113549.1.12.10.1.5": "secret",
    "1.2.840.113549.1.12.10.1.6": "safe contents",
}
X509_CERTIFICATE = "1.2.840.113549.1.9.22.1"

FRIENDLY_NAME = "1.2.840.113549.1.9.20"
LOCAL_KEY_ID = "1.2.840.113549.1.9.21"
MS_CSP_NAME = "1.3.6.1.4.1.311.17.1"
ATTRIBUTE_NAMES = {
    FRIENDLY_NAME: "friendlyName",
    LOCAL_KEY_ID: "localKeyID",
    MS_CSP_NAME: "Microsoft CSP Name",
    "1.3.6.1.4.1.311.17.2": "Microsoft Local Key Set",
    "2.5.29.15": "X509v3 Key Usage",
}


class WrongPassword(ArtifactError):
    """The MAC does not verify with the given password."""


@dataclass
class Bag:
    """One SafeBag: a key, a certificate or something else, with its attributes."""

    kind: str
    container: int
    encryption: Encryption | None = None  # shrouded key bags: the key's own encryption
    friendly_name: str | None = None
    local_key_id: bytes | None = None
    csp_name: str | None = None
    attributes: tuple[str, ...] = ()
    certificate_der: bytes | None = None
    encrypted_key: bytes = field(default=b"", repr=False)  # shrouded key bags only
    key_decrypts: bool | None = None  # None until tried with a password


@dataclass
class Container:
    """One ContentInfo of the AuthenticatedSafe: plain data or password-encrypted data."""

    index: int
    kind: str  # data, encrypted, enveloped, unknown
    encryption: Encryption
    bags: list[Bag] | None = None  # None while the content is not decrypted
    not_read: str | None = None  # why bags is None


@dataclass(frozen=True)
class Algorithms:
    """The algorithms that protect certificates, keys and integrity of one PKCS#12 file.

    ``certificates`` has one entry per container with certificates;
    a container that could not be decrypted counts as one, as OpenSSL,
    Windows and Java keep certificates there (``certificates_assumed``).
    ``keys`` has one entry per key bag. ``others`` lists every other
    encryption found, so that a judge sees all of them.
    """

    certificates: tuple[Encryption, ...]
    keys: tuple[Encryption, ...]
    mac: Mac | None
    others: tuple[Encryption, ...] = ()
    certificates_assumed: bool = False

    def everything(self) -> tuple[Encryption, ...]:
        return self.certificates + self.keys + self.others


@dataclass
class PfxInfo:
    name: str
    integrity: str  # password (a MAC), public-key, none
    mac: Mac | None
    containers: list[Container]
    password_checked: bool = False
    password_form: str | None = None  # how the MAC password was encoded: see pbe.bmp_password
    notes: list[str] = field(default_factory=list)

    def bags(self, kind: str | None = None) -> list[Bag]:
        found = []
        for container in self.containers:
            found += [bag for bag in container.bags or [] if kind is None or bag.kind == kind]
        return found

    def algorithms(self) -> Algorithms:
        certificates: list[Encryption] = []
        keys: list[Encryption] = []
        others: list[Encryption] = []
        assumed = False
        for container in self.containers:
            if container.bags is None:
                certificates.append(container.encryption)
                assumed = True
                continue
            kinds = {bag.kind for bag in container.bags}
            if "certificate" in kinds:
                certificates.append(container.encryption)
            elif container.kind != "data":
                others.append(container.encryption)
            for bag in container.bags:
                if bag.kind == "shrouded key" and bag.encryption is not None:
                    keys.append(bag.encryption)
                elif bag.kind == "key":
                    keys.append(container.encryption)
        return Algorithms(tuple(certificates), tuple(keys), self.mac, tuple(others), assumed)


def read_pfx_file(path: Path, password: bytes | None = None) -> PfxInfo:
    """Read *path* as PKCS#12; see read_pfx."""
    try:
        raw = read_limited(path, MAX_PFX_BYTES)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path}: is a folder, expected a PKCS#12 (.pfx) file") from None
    except FileRejected as exc:
        raise ArtifactError(f"{path}: {exc.reason}; expected a PKCS#12 (.pfx) file") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}") from None
    return read_pfx(raw, str(path), password)


def read_pfx(raw: bytes, name: str, password: bytes | None = None) -> PfxInfo:
    """Walk the PKCS#12 structure in *raw*.

    Without *password* only what is stored in plain is read: the MAC
    parameters, the encryption of each container and of key bags kept in
    plain containers. With it, the MAC must verify (WrongPassword
    otherwise) and encrypted containers are decrypted and listed too.
    """
    if len(raw) > MAX_PFX_BYTES:
        raise ArtifactError(f"{name}: {len(raw)} bytes is too large for a PKCS#12 file")
    if not raw.strip():
        raise ArtifactError(f"{name}: the file is empty, expected a PKCS#12 (.pfx) file")
    if raw[:1] != b"\x30":
        hint = ""
        if b"-----BEGIN " in raw[:4096]:
            hint = " (it is PEM text; a .pfx is binary DER)"
        raise ArtifactError(f"{name}: not a PKCS#12 file{hint}")
    try:
        return _read(raw, name, password)
    except DerError as exc:
        raise ArtifactError(f"{name}: not a valid PKCS#12 file: {exc}") from None


def _read(raw: bytes, name: str, password: bytes | None) -> PfxInfo:
    top = asn1.sequence(asn1.parse_single(raw, "PFX"), "PFX", 2)
    version = asn1.integer(top[0], "PFX version")
    if version != 3:
        raise DerError(f"PFX version is {version}, expected 3")
    content_type, content = _content_info(top[1], "authSafe")
    mac = pbe.parse_mac(top[2]) if len(top) > 2 else None
    if content_type == SIGNED_DATA:
        info = PfxInfo(name, "public-key", mac, [])
        info.notes.append("uses public-key integrity (signed); certpipe reads only "
                          "password-integrity PKCS#12 files")
        return info
    if content_type != DATA or content is None:
        raise DerError(f"authSafe has content type {content_type}, expected data")
    safe_bytes = asn1.octets(content, "authSafe content")
    info = PfxInfo(name, "password" if mac else "none", mac, [])
    if mac is not None and password is not None:
        info.password_form = _check_mac(mac, password, safe_bytes, name)
        info.password_checked = info.password_form is not None
    elif mac is None:
        info.notes.append("has no MAC: nothing protects it against changes")

    authenticated_safe = asn1.sequence(asn1.parse_single(safe_bytes, "AuthenticatedSafe"),
                                      "AuthenticatedSafe")
    for index, item in enumerate(authenticated_safe):
        info.containers.append(_container(index, item, password, info))
    if password is not None:
        _try_key_bags(info, password)
    if password is not None and mac is None:
        info.password_checked = any(c.kind == "encrypted" and c.bags is not None
                                    for c in info.containers) or any(
            bag.key_decrypts for bag in info.bags("shrouded key"))
    return info


def _try_key_bags(info: PfxInfo, password: bytes) -> None:
    """Decrypt each shrouded key bag, so that a key under another password is noticed."""
    forms = [info.password_form] if info.password_form not in (None, "pbkdf2") else \
        pbe.password_forms(password)
    for bag in info.bags("shrouded key"):
        if bag.encryption is None:
            continue
        for form in forms:
            try:
                plain = pbe.decrypt(bag.encryption, password, form, bag.encrypted_key)
                asn1.sequence(asn1.parse_single(plain, "PrivateKeyInfo"), "PrivateKeyInfo", 3)
            except DerivationRefused:
                break
            except (ValueError, DerError):
                bag.key_decrypts = False
                continue
            bag.key_decrypts = True
            break
        if bag.key_decrypts is False and info.mac is not None:
            info.notes.append(f"the key bag ({bag.encryption.describe()}) does not decrypt with "
                              f"the password that verifies the MAC")


def _content_info(element: Element, what: str) -> tuple[str, Element | None]:
    items = asn1.sequence(element, what, 1)
    content_type = asn1.oid(items[0], f"{what} content type")
    content = asn1.explicit(items[1], 0, f"{what} content") if len(items) > 1 else None
    return content_type, content


def _check_mac(mac: Mac, password: bytes, safe_bytes: bytes, name: str) -> str | None:
    forms = ["pbkdf2"] if mac.pbmac1 else pbe.password_forms(password)
    try:
        for form in forms:
            if pbe.mac_matches(mac, password, form, safe_bytes):
                return form
    except DerivationRefused as exc:
        raise ArtifactError(f"{name}: cannot verify the MAC: {exc}") from None
    raise WrongPassword(f"{name}: the MAC does not verify: wrong password, or the file was "
                        f"changed after it was written")


def _container(index: int, item: Element, password: bytes | None, info: PfxInfo) -> Container:
    content_type, content = _content_info(item, f"AuthenticatedSafe item {index + 1}")
    if content_type == DATA:
        if content is None:
            raise DerError(f"AuthenticatedSafe item {index + 1} has no content")
        bags = _safe_contents(asn1.octets(content, "SafeContents"), index)
        return Container(index, "data", NOT_ENCRYPTED, bags)
    if content_type == ENVELOPED_DATA:
        return Container(index, "enveloped", Encryption("unknown", "public-key encryption"),
                         None, "encrypted to a public key, which certpipe does not read")
    if content_type != ENCRYPTED_DATA or content is None:
        return Container(index, "unknown", Encryption("unknown", f"content {content_type}"),
                         None, "unknown content type")
    fields = asn1.sequence(content, "EncryptedData", 2)
    inner = asn1.sequence(fields[1], "EncryptedContentInfo", 2)
    encryption = pbe.parse_algorithm(inner[1], "EncryptedContentInfo algorithm")
    container = Container(index, "encrypted", encryption)

    if len(inner) < 3:
        container.bags = []
        return container
    if password is None:
        container.not_read = "no password given"
        return container

    ciphertext = asn1.implicit_octets(inner[2], "encrypted content")
    forms = [info.password_form] if info.password_form not in (None, "pbkdf2") else \
        pbe.password_forms(password)
    for form in forms:
        try:
            plain = pbe.decrypt(encryption, password, form, ciphertext)
            container.bags = _safe_contents(plain, index)
            return container
        except DerivationRefused as exc:
            container.not_read = str(exc)
            return container
        except (ValueError, DerError):
            continue
    container.not_read = "does not decrypt with the password"
    info.notes.append(f"container {index + 1} ({encryption.describe()}) does not decrypt with "
                      f"the password that verifies the MAC")
    return container


def _safe_contents(data: bytes, index: int) -> list[Bag]:
    element = asn1.parse_single(data, "SafeContents")
    return _bags(asn1.sequence(element, "SafeContents"), index, 0)


def _bags(elements: list[Element], index: int, depth: int) -> list[Bag]:
    bags = []
    for element in elements:
        items = asn1.sequence(element, "SafeBag", 2)
        bag_oid = asn1.oid(items[0], "SafeBag type")
        kind = BAG_KINDS.get(bag_oid, f"unknown bag {bag_oid}")
        value = asn1.explicit(items[1], 0, "SafeBag value")
        if kind == "safe contents":
            if depth >= 8:
                raise DerError(f"at byte {element.offset}: SafeContents nested too deeply")
            bags += _bags(asn1.sequence(value, "nested SafeContents"), index, depth + 1)
            continue
        bag = Bag(kind, index)
        if kind == "shrouded key":
            fields = asn1.sequence(value, "EncryptedPrivateKeyInfo", 2)
            bag.encryption = pbe.parse_algorithm(fields[0], "shrouded key bag algorithm")
            bag.encrypted_key = asn1.octets(fields[1], "shrouded key bag data")
        elif kind == "certificate":
            fields = asn1.sequence(value, "CertBag", 2)
            if asn1.oid(fields[0], "CertBag type") == X509_CERTIFICATE:
                bag.certificate_der = asn1.octets(asn1.explicit(fields[1], 0, "certificate"),
                                                 "certificate")
        if len(items) > 2:
            _read_attributes(items[2], bag)
        bags.append(bag)
    return bags


def _read_attributes(element: Element, bag: Bag) -> None:
    if not element.is_universal(asn1.SET):
        return
    names = []
    for attribute in element.children():
        items = asn1.sequence(attribute, "bag attribute", 1)
        attribute_oid = asn1.oid(items[0], "bag attribute type")
        names.append(ATTRIBUTE_NAMES.get(attribute_oid, attribute_oid))
        values = items[1].children() if len(items) > 1 and items[1].constructed else []
        if not values:
            continue
        if attribute_oid == FRIENDLY_NAME:
            bag.friendly_name = asn1.text_string(values[0], "friendlyName")
        elif attribute_oid == LOCAL_KEY_ID:
            bag.local_key_id = asn1.octets(values[0], "localKeyID")
        elif attribute_oid == MS_CSP_NAME:
            bag.csp_name = asn1.text_string(values[0], "Microsoft CSP Name")
    bag.attributes = tuple(names)


def describe(info: PfxInfo) -> list[str]:
    """Return lines that describe what protects the file, in openssl's terms."""
    algorithms = info.algorithms()
    lines = []
    if info.mac is not None:
        checked = "password verified" if info.password_checked else "password not checked"
        lines.append(f"MAC: {info.mac.describe()} ({checked})")
    else:
        lines.append(f"MAC: none ({info.integrity} integrity)")

    cert_count = len(info.bags("certificate"))
    for encryption in _unique(algorithms.certificates):
        suffix = " (contents not decrypted)" if algorithms.certificates_assumed else ""
        lines.append(f"certificates: {encryption.describe()}{suffix}")
    for encryption in _unique(algorithms.keys):
        lines.append(f"key: {encryption.describe()}")
    for encryption in _unique(algorithms.others):
        lines.append(f"other contents: {encryption.describe()}")
    keys = len(info.bags("shrouded key")) + len(info.bags("key"))
    unread = [c for c in info.containers if c.bags is None]
    if not unread:
        lines.append(f"bags: {keys} key(s), {cert_count} certificate(s)")
    else:
        lines.append(f"bags: {keys} key(s) and {cert_count} certificate(s) in plain "
                     f"containers; {len(unread)} encrypted container(s) not decrypted")

    for bag in info.bags():
        if bag.friendly_name:
            lines.append(f"friendly name ({bag.kind} bag): {bag.friendly_name!r}")
        if bag.csp_name:
            lines.append(f"Microsoft CSP name ({bag.kind} bag): {bag.csp_name!r}")
    for container in info.containers:
        if container.not_read and container.not_read != "no password given":
            lines.append(f"container {container.index + 1} not read: {container.not_read}")
    if info.password_form == "bytes":
        lines.append("warning: the MAC was made from the password's bytes, not its characters "
                     "(LibreSSL and OpenSSL before 1.1.0 do this with non-ASCII passwords); "
                     "Windows and Java will call the password wrong")
    lines += [f"note: {note}" for note in info.notes]
    return lines


def _unique(items: tuple[Encryption, ...]) -> list[Encryption]:
    seen: list[Encryption] = []
    for item in items:
        key = (item.scheme, item.name, item.cipher, item.prf, item.iterations)
        if key not in [(s.scheme, s.name, s.cipher, s.prf, s.iterations) for s in seen]:
            seen.append(item)
    return seen

__all__ = [
    "Algorithms", "Bag", "Container", "PfxInfo", "TARGETS", "Target", "Verdict", "WrongPassword",
    "describe", "judge", "read_pfx", "read_pfx_file",
]
