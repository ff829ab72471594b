"""``certpipe inspect``: summarise certificates, keys, CSRs, PKCS#7 and PKCS#12 files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from certpipe.errors import EXIT_FAILED, EXIT_OK, UsageError
from certpipe.secrets import Secret, SecretError, SecretRef

# Item fields in the order the text output shows them, with their labels.
TEXT_FIELDS = [
    ("role", "role"),
    ("subject", "subject"),
    ("issuer", "issuer"),
    ("subject_alt_names", "names (SAN)"),
    ("not_valid_before", "valid from"),
    ("not_valid_after", "valid until"),
    ("validity", "status"),
    ("key", "key"),
    ("encryption", "encryption"),
    ("public_key_sha256", "public key SHA-256"),
    ("signature", "signature"),
    ("signature_valid", "signature valid"),
    ("extended_key_usage", "extended key usage"),
    ("serial", "serial"),
    ("sha256", "SHA-256"),
    ("sha1_thumbprint", "SHA-1 (thumbprint)"),
    ("friendly_name", "friendly name"),
    ("last_update", "last update"),
    ("next_update", "next update"),
    ("revoked", "revoked entries"),
]


def add_password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-env", action="append", default=[], metavar="NAME",
                        help="environment variable with a password for PKCS#12 files and "
                             "encrypted keys (repeatable; each password is tried)")
    parser.add_argument("--password-file", action="append", default=[], type=Path,
                        metavar="PATH",
                        help="file holding such a password on one line (repeatable)")


def read_passwords(args: argparse.Namespace) -> list[Secret]:
    """Read the passwords named on the command line; a missing one is a usage error."""
    refs = [SecretRef(f"env:{name}") for name in args.password_env]
    refs += [SecretRef(f"file:{path}") for path in args.password_file]
    secrets = []
    for ref in refs:
        try:
            secrets.append(ref.read())
        except SecretError as exc:
            raise UsageError(str(exc)) from None
    return secrets


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE",
                        help="certificate, key, CSR, PKCS#7 or PKCS#12 files (PEM or DER), "
                             "or folders of them")
    add_password_options(parser)
    parser.add_argument("-r", "--recursive", action="store_true",
                        help="also read the files in subfolders of a folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def main(args: argparse.Namespace) -> int:
    from certpipe.artifacts.describe import chains, expand_paths, group_by_public_key
    from certpipe.artifacts.describe import inspect_file

    passwords = read_passwords(args)
    not_walked: list[str] = []
    files = expand_paths(args.files, args.recursive, not_walked)
    if not files:
        detail = "; ".join(f"skipped {note}" for note in not_walked)
        raise UsageError("no files to inspect: the folders given are empty"
                         if not detail else f"no files to inspect: {detail}")
    reports = [inspect_file(path, passwords) for path in files]
    groups = group_by_public_key(reports)
    chain_list = chains(reports)
    if args.json:
        document = {
            "files": [r.to_json() for r in reports],
            "belong_together": [g.to_json() for g in groups if len(g.members) > 1],
            "chains": [[{"path": str(i.path), "index": i.index, "subject": i.fields["subject"]}
                        for i in chain] for chain in chain_list],
            "folder_entries_skipped": not_walked,
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_text(sys.stdout, reports, groups, chain_list)
        for note in not_walked:
            print(f"note: skipped {note}")
    return EXIT_FAILED if any(r.error for r in reports) else EXIT_OK


def print_text(out: TextIO, reports: Sequence[Any], groups: Sequence[Any],
               chain_list: Sequence[Sequence[Any]]) -> None:
    for report in reports:
        if report.error:
            print(f"{report.path}: cannot be read: {_strip_path(report.error, report.path)}",
                  file=out)
            continue
        print(f"{report.path}: {report.description}", file=out)
        for note in report.notes:
            print(f"  note: {_strip_path(note, report.path)}", file=out)
        for item in report.items:
            _print_item(out, item)
    if len(reports) > 1:
        _print_relations(out, groups, chain_list)


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _print_item(out: TextIO, item: Any) -> None:
    print(f"  #{item.index} {item.kind} ({item.where})", file=out)
    for key, label in TEXT_FIELDS:
        value = item.fields.get(key)
        if value is None or value == [] or value == "":
            continue
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"      {label + ':':<22}{value}", file=out)
    for problem in item.problems:
        print(f"      problem: {problem}", file=out)


def _print_relations(out: TextIO, groups: Sequence[Any],
                     chain_list: Sequence[Sequence[Any]]) -> None:
    print("", file=out)
    together = [g for g in groups if len({m.path for m in g.members}) > 1 or len(g.members) > 1]
    if together:
        print("belong together (same public key):", file=out)
        for group in together:
            members = ", ".join(f"{m.label} ({m.kind})" for m in group.members)
            print(f"  {group.key_type} {group.public_key_sha256[:16]}...: {members}", file=out)
    else:
        print("belong together: nothing; no two files share a public key", file=out)
    for group in groups:
        kinds = {m.kind for m in group.members}
        has_key = bool(kinds & {"private key", "encrypted private key"})
        certs = [m for m in group.members if m.kind == "certificate"
                 and m.fields.get("role") == "leaf (end entity)"]
        if certs and not has_key:
            names = ", ".join(f"{m.label} ({m.fields['subject']})" for m in certs)
            print(f"  no private key among these files for {names}", file=out)
    for chain in chain_list:
        if len(chain) > 1:
            steps = " -> ".join(f"{i.label} ({i.fields['subject']})" for i in chain)
            print(f"chain: {steps}", file=out)
