"""``certpipe pfx-check``: show which algorithms a .pfx uses and whether a target imports it.

Reads the file in-process (no openssl). Without a password it sees the MAC
and the encryption of every container and of key bags kept in plain; with
one it also verifies the MAC and lists every bag.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from certpipe.errors import EXIT_FAILED, EXIT_OK, UsageError

# Targets judged when none is named: one of each family.
OVERVIEW_TARGETS = ("windows-server-2016", "windows-server-2019", "openssl-3", "openssl-1.1.1",
                    "java")


def register(parser: argparse.ArgumentParser) -> None:
    from certpipe.artifacts.pfx_targets import TARGETS

    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help=".pfx or .p12 file")
    parser.add_argument("--target", action="append", default=[], choices=list(TARGETS),
                        metavar="TARGET",
                        help="program or Windows version that must import the file "
                             f"(repeatable; one of: {', '.join(TARGETS)}); the command exits "
                             f"1 unless each one imports it")
    parser.add_argument("--password", metavar="SOURCE",
                        help="password source: env:NAME, file:PATH, prompt or none (empty); "
                             "with it the MAC is verified and every bag is listed")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")


def main(args: argparse.Namespace) -> int:
    from certpipe.artifacts.pfx_info import TARGETS, WrongPassword, describe, judge
    from certpipe.artifacts.pfx_info import read_pfx_file
    from certpipe.errors import ArtifactError
    from certpipe.secrets import SecretRef

    password = None
    if args.password is not None:
        if not _valid_source(args.password):
            raise UsageError(f"--password {args.password!r}: use env:NAME, file:PATH, prompt "
                             f"or none")
        password = SecretRef(args.password, Path.cwd()).read("PKCS#12 password").value
    names = args.target or list(OVERVIEW_TARGETS)
    status = EXIT_OK
    for path in args.files:
        try:
            info = read_pfx_file(path, password)
        except WrongPassword as exc:
            print(f"certpipe: {exc} (password from {args.password})", file=sys.stderr)
            status = EXIT_FAILED
            continue
        except ArtifactError as exc:
            print(f"certpipe: {exc}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        verdicts = [judge(info.algorithms(), TARGETS[name]) for name in names]
        if args.target and not all(v.importable for v in verdicts):
            status = EXIT_FAILED
        if args.json:
            print(json.dumps(_as_json(path, info, verdicts), sort_keys=True))
            continue
        print(f"{path}:")
        for line in describe(info):
            print(f"  {line}")
        for verdict in verdicts:
            print(f"  {verdict.describe()}")
            for warning in verdict.warnings:
                print(f"    warning: {warning}")
            if not verdict.importable and verdict.target.profile == "compat":
                print("    fix: export again for this target with certpipe (pkcs12 step, "
                      f"target: {verdict.target.name}) or with openssl pkcs12 -export "
                      "-certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1")
    return status


def _valid_source(source: str) -> bool:
    return source in ("none", "prompt") or (source.startswith(("env:", "file:"))
                                            and len(source) > 5)


def _as_json(path: Path, info: Any, verdicts: list[Any]) -> dict[str, Any]:
    algorithms = info.algorithms()

    def encryption(item: Any) -> dict[str, Any]:
        return {"scheme": item.scheme, "name": item.name, "oid": item.oid,
                "cipher": item.cipher, "prf": item.prf, "iterations": item.iterations,
                "description": item.describe()}

    mac = algorithms.mac
    return {
        "file": str(path),
        "integrity": info.integrity,
        "password_checked": info.password_checked,
        "mac": None if mac is None else {"digest": mac.digest, "iterations": mac.iterations,
                                         "pbmac1": mac.pbmac1, "description": mac.describe()},
        "certificates": [encryption(e) for e in algorithms.certificates],
        "certificates_assumed": algorithms.certificates_assumed,
        "keys": [encryption(e) for e in algorithms.keys],
        "bags": [{"kind": b.kind, "container": b.container, "friendly_name": b.friendly_name}
                 for b in info.bags()],
        "notes": info.notes,
        "verdicts": [{"target": v.target.name, "status": v.status, "importable": v.importable,
                      "reasons": list(v.reasons), "warnings": list(v.warnings)}
                     for v in verdicts],
    }
