"""Summaries of artifacts for ``certpipe inspect`` and ``certpipe match``.

Each file becomes a FileReport: what the file is and one Item per
certificate, key, CSR, public key or CRL in it, with the fields an admin
compares (subject, names, validity, key, fingerprints) and any problems.
Items that share a public key belong together.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certpipe.artifacts import checks
from certpipe.artifacts.chain import build_chain, is_ca, is_self_signed
from certpipe.artifacts.intake import (
    MAX_ARTIFACT_BYTES, Contents, PemBlock, read_contents, with_article,
)
from certpipe.artifacts.keys import (
    describe_key_type, key_cipher, load_key_block, public_key_fingerprint,
)
from certpipe.errors import ArtifactError
from certpipe.fsutil import describe_file_type
from certpipe.secrets import Secret

# File name endings and the content they promise, for "the name says X" notes.
EXTENSION_PROMISES = {
    ".pfx": "PKCS#12", ".p12": "PKCS#12",
    ".p7b": "PKCS#7", ".p7c": "PKCS#7",
    ".csr": "certificate request", ".req": "certificate request",
    ".key": "private key",
}


@dataclass
class Item:
    """One certificate, key, CSR, public key or CRL found in a file."""

    path: Path
    index: int
    kind: str
    where: str
    fields: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    public_key_sha256: str | None = None
    key_type: str | None = None
    obj: Any = None

    @property
    def label(self) -> str:
        return f"{self.path} #{self.index}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "kind": self.kind, "where": self.where}
        data.update(self.fields)
        data["problems"] = self.problems
        return data


@dataclass
class FileReport:
    path: Path
    description: str = ""
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "description": self.description,
            "error": self.error,
            "notes": self.notes,
            "items": [item.to_json() for item in self.items],
        }


def inspect_file(path: Path, passwords: Sequence[Secret] = (),
                 now: dt.datetime | None = None) -> FileReport:
    """Read *path* by content and describe everything in it; errors go into the report."""
    now = now or dt.datetime.now(dt.timezone.utc)
    report = FileReport(path)
    try:
        contents = read_contents(path, passwords=passwords)
    except ArtifactError as exc:
        report.error = str(exc)
        return report
    report.description = contents.description
    report.notes = list(contents.notes)
    _note_extension(path, contents, report)
    _add_items(contents, report, passwords, now)
    return report


def _note_extension(path: Path, contents: Contents, report: FileReport) -> None:
    promise = EXTENSION_PROMISES.get(path.suffix.lower())
    if promise is None:
        return
    holds = {
        "PKCS#12": contents.pkcs12,
        "PKCS#7": any(w.startswith("PKCS#7") for w in contents.cert_where),
        "certificate request": bool(contents.csrs),
        "private key": bool(contents.key_blocks or contents.keys),
    }[promise]
    if not holds:
        report.notes.append(f"the name ends in {path.suffix}, which suggests {promise}, but "
                            f"the file is {with_article(contents.description)}; certpipe goes by "
                            f"the content")


def _add_items(contents: Contents, report: FileReport, passwords: Sequence[Secret],
               now: dt.datetime) -> None:
    def add(item: Item) -> None:
        item.index = len(report.items) + 1
        report.items.append(item)

    if contents.pkcs12 and not contents.pkcs12_opened:
        item = Item(contents.path, 0, "PKCS#12 (locked)", "whole file")
        item.problems.append("protected by a password; give it with --password-env NAME or "
                             "--password-file PATH")
        add(item)
    for key in contents.keys:
        add(_key_item(contents.path, key, "PKCS#12"))
    for block in contents.key_blocks:
        add(_key_block_item(contents.path, block, passwords))
    for cert, where, name in zip(contents.certs, contents.cert_where, contents.cert_names,
                                  strict=True):
        add(_cert_item(contents.path, cert, where, name, now))
    for csr in contents.csrs:
        add(_csr_item(contents.path, csr))
    for public_key in contents.public_keys:
        item = _key_item(contents.path, public_key, "public key block")
        item.kind = "public key"
        add(item)
    for crl in contents.crls:
        add(_crl_item(contents.path, crl))


def _key_item(path: Path, key: Any, where: str) -> Item:
    public = key.public_key() if hasattr(key, "public_key") else key
    item = Item(path, 0, "private key", where, obj=key)
    item.key_type = describe_key_type(key)
    item.public_key_sha256 = public_key_fingerprint(public)
    item.fields["key"] = item.key_type
    item.fields["public_key_sha256"] = item.public_key_sha256
    return item


def _key_block_item(path: Path, block: PemBlock, passwords: Sequence[Secret]) -> Item:
    where = f"line {block.line}" if block.line else "DER"
    if not block.encrypted:
        try:
            item = _key_item(path, load_key_block(block, path, None), where)
        except ArtifactError as exc:
            item = Item(path, 0, "private key", where)
            item.problems.append(str(exc))
        _add_attributes(item, block)
        return item
    cipher = key_cipher(block)
    for password in passwords:
        try:
            key = load_key_block(block, path, password)
        except ArtifactError:
            continue
        item = _key_item(path, key, where)
        item.kind = "encrypted private key"
        item.fields["encryption"] = f"{cipher}, opened with the password from " \
                                    f"{password.ref.describe()}"
        _add_attributes(item, block)
        return item
    item = Item(path, 0, "encrypted private key", where)
    item.fields["encryption"] = cipher
    item.problems.append(
        "encrypted; give its passphrase with --password-env NAME or --password-file PATH"
        if not passwords else "none of the given passwords opens it"
    )
    _add_attributes(item, block)
    return item


def _add_attributes(item: Item, block: PemBlock) -> None:
    if "friendlyName" in block.attributes:
        item.fields["friendly_name"] = block.attributes["friendlyName"]


def _cert_role(cert: x509.Certificate) -> str:
    if is_self_signed(cert):
        return "root CA (self-signed)" if is_ca(cert) else "self-signed certificate"
    return "intermediate CA" if is_ca(cert) else "leaf (end entity)"


def _cert_item(path: Path, cert: x509.Certificate, where: str, name: str | None,
               now: dt.datetime) -> Item:
    item = Item(path, 0, "certificate", where, obj=cert)
    public = cert.public_key()
    item.key_type = describe_key_type(public)
    item.public_key_sha256 = public_key_fingerprint(public)
    role = _cert_role(cert)
    fields = item.fields
    fields["role"] = role
    fields["subject"] = cert.subject.rfc4514_string()
    fields["issuer"] = cert.issuer.rfc4514_string()
    fields["subject_alt_names"] = _alt_name_list(cert)
    fields["not_valid_before"] = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    fields["not_valid_after"] = f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    fields["validity"] = _validity_text(cert, now)
    fields["key"] = item.key_type
    fields["public_key_sha256"] = item.public_key_sha256
    fields["signature"] = _signature_name(cert)
    fields["extended_key_usage"] = _extended_key_usage(cert)
    fields["serial"] = format(cert.serial_number, "x")
    fields["sha256"] = cert.fingerprint(hashes.SHA256()).hex()
    # Windows shows the SHA-1 fingerprint as the thumbprint (certutil, MMC, IIS bindings).
    fields["sha1_thumbprint"] = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303
    if name:
        fields["friendly_name"] = name
    item.problems = checks.cert_problems(cert, now, is_root=role.startswith("root"))
    return item


def _csr_item(path: Path, csr: x509.CertificateSigningRequest) -> Item:
    item = Item(path, 0, "certificate request", "CSR", obj=csr)
    public = csr.public_key()
    item.key_type = describe_key_type(public)
    item.public_key_sha256 = public_key_fingerprint(public)
    item.fields["subject"] = csr.subject.rfc4514_string()
    item.fields["subject_alt_names"] = _alt_name_list(csr)
    item.fields["key"] = item.key_type
    item.fields["public_key_sha256"] = item.public_key_sha256
    item.fields["signature"] = _signature_name(csr)
    item.fields["signature_valid"] = csr.is_signature_valid
    if not csr.is_signature_valid:
        item.problems.append("the CSR's signature is invalid; the file is damaged")
    item.problems += checks.alt_name_problems(csr, "CSR")
    return item


def _crl_item(path: Path, crl: x509.CertificateRevocationList) -> Item:
    item = Item(path, 0, "certificate revocation list", "CRL", obj=crl)
    item.fields["issuer"] = crl.issuer.rfc4514_string()
    item.fields["last_update"] = f"{crl.last_update_utc:%Y-%m-%d %H:%M} UTC"
    next_update = crl.next_update_utc
    item.fields["next_update"] = f"{next_update:%Y-%m-%d %H:%M} UTC" if next_update else None
    item.fields["revoked"] = len(crl)
    return item


def _alt_name_list(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    found = checks.alt_names(obj)
    if found is None:
        return []
    return [f"DNS:{name}" for name in found[0]] + [f"IP:{address}" for address in found[1]]


def _validity_text(cert: x509.Certificate, now: dt.datetime) -> str:
    problem = checks.validity_problem(cert, now)
    if problem:
        return problem
    days = (cert.not_valid_after_utc - now).days
    return f"valid, {days} day(s) left"


def _signature_name(obj: x509.Certificate | x509.CertificateSigningRequest) -> str:
    oid = obj.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def _extended_key_usage(cert: x509.Certificate) -> list[str]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [getattr(oid, "_name", None) or oid.dotted_string for oid in usage]


@dataclass
class Group:
    """Items that share one public key: a key, its CSRs and its certificates."""

    public_key_sha256: str
    key_type: str
    members: list[Item]

    def to_json(self) -> dict[str, Any]:
        return {
            "public_key_sha256": self.public_key_sha256,
            "key": self.key_type,
            "members": [{"path": str(m.path), "index": m.index, "kind": m.kind}
                        for m in self.members],
        }


def group_by_public_key(reports: Sequence[FileReport]) -> list[Group]:
    """Group the items of all files by public key, in the order first seen."""
    groups: dict[str, Group] = {}
    for report in reports:
        for item in report.items:
            if item.public_key_sha256 is None:
                continue
            group = groups.setdefault(item.public_key_sha256,
                                      Group(item.public_key_sha256, item.key_type or "", []))
            group.members.append(item)
    return list(groups.values())


def chains(reports: Sequence[FileReport], now: dt.datetime | None = None) -> list[list[Item]]:
    """Order the certificates of all files into one chain per leaf, leaf first."""
    items = [i for r in reports for i in r.items if i.kind == "certificate"]
    by_fingerprint = {i.fields["sha256"]: i for i in reversed(items)}
    certs = [i.obj for i in by_fingerprint.values()]
    result = []
    for item in by_fingerprint.values():
        cert = item.obj
        if is_ca(cert) or is_self_signed(cert):
            continue
        chain = build_chain(cert, certs, now=now)
        result.append([by_fingerprint[c.fingerprint(hashes.SHA256()).hex()]
                       for c in chain.certificates])
    return result


def expand_paths(paths: Sequence[Path], recursive: bool = False,
                 skipped: list[str] | None = None) -> list[Path]:
    """Replace each folder by the files in it (sorted, hidden files left out).

    In a folder, entries that are not regular files after following symlinks
    (FIFOs, devices, sockets) and files larger than MAX_ARTIFACT_BYTES are left
    out with a note in *skipped*, so one stray download or pipe does not fail
    the walk. A path named directly is kept, and reading it reports the problem.
    """
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        pattern = "**/*" if recursive else "*"
        for found in sorted(path.glob(pattern)):
            if any(part.startswith(".") for part in found.relative_to(path).parts):
                continue
            problem = _walk_problem(found)
            if problem is None:
                files.append(found)
            elif problem and skipped is not None:
                skipped.append(f"{found}: {problem}")
    return files


def _walk_problem(path: Path) -> str | None:
    """Return why a folder entry is skipped, "" for a subfolder, or None to read it."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return ""
    if not stat.S_ISREG(info.st_mode):
        return f"is {describe_file_type(info.st_mode)}, not a regular file"
    if info.st_size > MAX_ARTIFACT_BYTES:
        return (f"{info.st_size} bytes is too large for certificate material (the limit "
                f"is {MAX_ARTIFACT_BYTES} bytes)")
    return None
