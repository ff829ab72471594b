"""``certpipe match``: find the private key (or CSR) that fits a certificate."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certpipe.commands.inspect import add_password_options, read_passwords
from certpipe.errors import EXIT_FAILED, EXIT_OK, UsageError

KEY_KINDS = ("private key", "encrypted private key")

# Explanation printed after "none matches": where the missing key usually is.
ELSEWHERE = (
    "The private key for this certificate was most likely made elsewhere: on the machine or "
    "in the tool where its CSR was created. A request made in IIS, with certreq or in the "
    "Windows certificate snap-in keeps its key in that Windows machine's key store; other "
    "tools keep it in their own store (a Java keystore, a cloud key vault, another server's "
    "files). That is why IIS makes such a certificate disappear: 'Complete Certificate "
    "Request' on a machine without the key imports a certificate with no private key, and "
    "IIS Manager drops it from the list on the next refresh. Ways out: export a .pfx "
    "(certificate with private key) on the machine that made the request, or make a new key "
    "and CSR and have the CA re-issue (re-key) the certificate for it."
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cert", type=Path, metavar="CERT",
                        help="the certificate (PEM, DER, PKCS#7 or PKCS#12), or a CSR")
    parser.add_argument("candidates", type=Path, nargs="+", metavar="KEY_OR_FOLDER",
                        help="private keys, CSRs or PKCS#12 files, or folders of them")
    add_password_options(parser)
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="also search the subfolders of a folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


@dataclass
class Search:
    """The keys and CSRs checked against one target certificate."""

    target: Any
    keys: list[Any] = field(default_factory=list)
    csrs: list[Any] = field(default_factory=list)
    unreadable_keys: list[Any] = field(default_factory=list)

    def fitting(self, kinds: tuple[str, ...]) -> list[Any]:
        found = self.keys if kinds == KEY_KINDS else self.csrs
        return [i for i in found if i.public_key_sha256 == self.target.public_key_sha256]

    def to_json(self) -> dict[str, Any]:
        def entry(item: Any) -> dict[str, Any]:
            return {"path": str(item.path), "index": item.index, "kind": item.kind}

        return {
            "certificate": {**entry(self.target), "subject": self.target.fields.get("subject"),
                            "public_key_sha256": self.target.public_key_sha256},
            "keys_checked": len(self.keys),
            "csrs_checked": len(self.csrs),
            "matching_keys": [entry(i) for i in self.fitting(KEY_KINDS)],
            "matching_csrs": [entry(i) for i in self.fitting(("certificate request",))],
            "keys_not_read": [{**entry(i), "problem": i.problems[0]}
                              for i in self.unreadable_keys],
        }


def main(args: argparse.Namespace) -> int:
    from certpipe.artifacts.describe import expand_paths, inspect_file

    passwords = read_passwords(args)
    cert_report = inspect_file(args.cert, passwords)
    if cert_report.error:
        raise UsageError(f"CERT {cert_report.error}")
    targets = _targets(cert_report)
    if not targets:
        raise UsageError(f"{args.cert}: holds {cert_report.description}; expected a "
                         f"certificate or a CSR to match keys against")
    not_walked: list[str] = []
    files = expand_paths(args.candidates, args.recursive, not_walked)
    reports = [inspect_file(path, passwords) for path in files]
    searches = [_search(target, reports) for target in targets]
    if args.json:
        json.dump({"searches": [s.to_json() for s in searches],
                   "files_skipped": [{"path": str(r.path), "problem": r.error}
                                     for r in reports if r.error],
                   "folder_entries_skipped": not_walked},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(searches, reports, len(files))
        for note in not_walked:
            print(f"note: skipped {note}")
    found = all(s.fitting(KEY_KINDS) or (not s.keys and s.fitting(("certificate request",)))
                for s in searches)
    return EXIT_OK if found else EXIT_FAILED


def _targets(report: Any) -> list[Any]:
    """Return CERT's leaf certificates, else its CA certificates, else its CSRs."""
    certs = [i for i in report.items if i.kind == "certificate"]
    leaves = [i for i in certs if i.fields["role"] in ("leaf (end entity)",
                                                        "self-signed certificate")]
    if leaves or certs:
        return leaves or certs
    return [i for i in report.items if i.kind == "certificate request"]


def _search(target: Any, reports: list[Any]) -> Search:
    search = Search(target)
    for report in reports:
        for item in report.items:
            if item.kind in KEY_KINDS:
                if item.public_key_sha256 is None:
                    search.unreadable_keys.append(item)
                else:
                    search.keys.append(item)
            elif item.kind == "certificate request" and item is not target:
                search.csrs.append(item)
    return search


def _print(searches: list[Search], reports: list[Any], file_count: int) -> None:
    skipped = [r for r in reports if r.error]
    for search in searches:
        target = search.target
        subject = target.fields.get("subject") or "(empty subject)"
        print(f"{target.kind}: {subject} ({target.label})")
        print(f"  {target.key_type}, public key SHA-256 {target.public_key_sha256}")
        print(f"checked {_count(len(search.keys), 'private key')} and "
              f"{_count(len(search.csrs), 'CSR')} in {_count(file_count, 'file')}")
        for item in search.unreadable_keys:
            print(f"  not checked: {item.label}: {item.problems[0]}")
        for report in skipped:
            print(f"  skipped: {report.error}")
        keys = search.fitting(KEY_KINDS)
        csrs = search.fitting(("certificate request",))
        for item in keys:
            print(f"match: {item.label} ({item.kind}, {item.key_type})")
        for item in csrs:
            print(f"CSR fits: {item.label} (the request this certificate was issued for)")
        if not keys:
            _print_none(search, csrs)


def _print_none(search: Search, csrs: list[Any]) -> None:
    if not search.keys and csrs:
        return
    print(f"none matches: none of the {_count(len(search.keys), 'private key')} checked "
          f"carries this certificate's public key.")
    if search.unreadable_keys:
        print(f"({_count(len(search.unreadable_keys), 'encrypted key')} could not be opened; "
              f"give the passphrase with --password-env or --password-file to check "
              f"{'it' if len(search.unreadable_keys) == 1 else 'them'} too.)")
    if csrs:
        print(f"The CSR {csrs[0].label} fits, so the key is wherever that CSR was generated.")
    print(ELSEWHERE)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
