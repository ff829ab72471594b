"""Make a CSR with ``openssl req`` from a generated config file.

A config file keeps subject values literal: commas, slashes, plus signs and
non-ASCII text need no ``-subj`` escaping, which openssl versions treat
differently (OpenSSL 3.0 always splits on '+').
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from certpipe.errors import ArtifactError, CheckFailed, PipelineError
from certpipe.openssl import PASSIN_VAR
from certpipe.secrets import SecretRef
from certpipe.steps.base import Action, Command, ConfigFile, InputRef, Step, StepContext
from certpipe.steps.base import StepResult, execute, reject_control_chars
from certpipe.steps.base import secret_ref

# Characters that openssl's config parser (crypto/conf/conf_def.c, with the
# classes from crypto/conf/keysets.pl) treats specially inside a value: the
# escape '\\', the quotes '"', "'" and '`', the comment '#', and '$' for
# variable expansion. ';' starts a comment only in the Windows flavour of the
# parser but is escaped too. A backslash before any of them yields the
# character itself. Control characters and leading or trailing spaces, which
# the parser also changes, are rejected when the pipeline is loaded.
_CONF_SPECIAL = frozenset('\\"\'`#;$')


def conf_escape(value: str) -> str:
    """Escape *value* for the right-hand side of an openssl config line."""
    return "".join("\\" + c if c in _CONF_SPECIAL else c for c in value)


@dataclass(frozen=True)
class CsrStep(Step):
    kind = "csr"

    name: str
    key: str
    key_passphrase: SecretRef | None
    subject: tuple[tuple[str, str], ...]
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    digest: str
    out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "CsrStep":
        subject: list[tuple[str, str]] = []
        for attribute, value in settings["subject"].items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                reject_control_chars(item, f"subject.{attribute}")
                if item != item.strip():
                    raise PipelineError(
                        f"subject.{attribute} {item!r} starts or ends with a space; remove it"
                    )
                subject.append((attribute, item))
        sans = settings.get("subject_alt_names", {})
        dns = [d.lower().rstrip(".") for d in sans.get("dns", [])]
        ips = []
        for text in sans.get("ip", []):
            try:
                ips.append(str(ipaddress.ip_address(text)))
            except ValueError:
                raise PipelineError(
                    f"subject_alt_names.ip: {text!r} is not an IPv4 or IPv6 address"
                ) from None
        cns = [v for k, v in subject if k == "CN"]
        if not cns and not dns and not ips:
            raise PipelineError("needs a CN in subject or at least one subject_alt_names entry")
        for cn in cns:
            _add_cn(cn, dns, ips)
        return cls(
            name=settings["name"],
            key=settings["key"],
            key_passphrase=secret_ref(settings, "key_passphrase"),
            subject=tuple(subject),
            dns=tuple(dict.fromkeys(dns)),
            ips=tuple(dict.fromkeys(ips)),
            digest=settings.get("digest", "sha256"),
            out=settings["out"],
        )

    def inputs(self) -> list[InputRef]:
        return [(("key",), self.key)]

    def outputs(self) -> dict[str, str]:
        return {"out": self.out}

    def settings(self) -> dict[str, Any]:
        return {"subject": self.subject, "dns": self.dns, "ips": self.ips,
                "digest": self.digest, "key_passphrase": _source(self.key_passphrase)}

    def config_text(self) -> str:
        lines = [
            "# Written by certpipe for one 'openssl req' call.",
            "[req]",
            "prompt = no",
            "utf8 = yes",
            "string_mask = utf8only",
            "distinguished_name = dn",
            "req_extensions = ext",
            "",
            "[dn]",
        ]
        counts: dict[str, int] = {}
        for attribute, value in self.subject:
            index = counts.get(attribute, 0)
            counts[attribute] = index + 1
            lines.append(f"{index}.{attribute} = {conf_escape(value)}")
        lines += ["", "[ext]", "subjectAltName = @alt_names", "", "[alt_names]"]
        lines += [f"DNS.{i} = {conf_escape(name)}" for i, name in enumerate(self.dns, 1)]
        lines += [f"IP.{i} = {address}" for i, address in enumerate(self.ips, 1)]
        return "\n".join(lines) + "\n"

    def req_args(self, config: str, key_path: str, out: str, passin: bool) -> list[str]:
        args = ["req", "-new", "-config", config, "-key", key_path, f"-{self.digest}",
                "-utf8", "-out", out]
        if passin:
            args += ["-passin", f"env:{PASSIN_VAR}"]
        return args

    def commands(self, paths: Mapping[str, str]) -> list[Action]:
        """Return the config file and the ``openssl req`` call for *paths*.

        *paths* needs key, out and work; the config file goes into work.
        """
        config = os.path.join(paths["work"], f"{self.name}.req.cnf")
        return [
            ConfigFile(config, self.config_text(), note="openssl req config"),
            Command(tuple(self.req_args(config, paths["key"], paths["out"],
                                        self.key_passphrase is not None)),
                    output=paths["out"], passin=self.key_passphrase),
        ]

    def run(self, ctx: StepContext) -> StepResult:
        from certpipe.artifacts.keys import public_key_fingerprint, read_private_key

        key_path = ctx.path(self.key)
        passphrase = ctx.secret(self.key_passphrase)
        try:
            key = read_private_key(key_path, passphrase)
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None
        out = ctx.path(self.out)
        paths = {"key": str(key_path), "out": str(out), "work": str(ctx.state_dir())}
        execute(ctx, self.name, self.commands(paths),
                lambda command, temp: self.check(temp, out, key, key_path))
        return StepResult(
            made=[self.out],
            checks=[
                "CSR signature valid",
                f"CSR public key is the key's (SHA-256 {public_key_fingerprint(key.public_key())})",
                "subject and subjectAltName are exactly those requested",
            ],
        )

    def check(self, written: Any, shown: Any, key: Any, key_path: Any) -> None:
        from certpipe.artifacts import checks
        from certpipe.artifacts.intake import read_csr

        try:
            csr = read_csr(written)
        except ArtifactError as exc:
            detail = str(exc).replace(str(written), str(shown))
            raise CheckFailed(f"openssl wrote an unreadable CSR: {detail}") from None
        checks.check_csr_signature(csr, shown)
        checks.check_csr_matches_key(csr, shown, key, key_path)
        checks.check_subject(csr.subject, self.subject, shown)
        checks.check_csr_alt_names(csr, shown, self.dns, self.ips)
        checks.check_cn_in_alt_names(csr, shown, "CSR")


_DNS_RE = re.compile(
    r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$"
)


def _add_cn(cn: str, dns: list[str], ips: list[str]) -> None:
    try:
        address = str(ipaddress.ip_address(cn))
    except ValueError:
        if not _DNS_RE.match(cn.lower().rstrip(".")):
            raise PipelineError(
                f"subject.CN {cn!r} is not a host name or IP address; a server certificate's "
                f"CN must be one of its names, because certpipe also puts it in "
                f"subjectAltName"
            ) from None
        if cn.lower().rstrip(".") not in dns:
            dns.insert(0, cn.lower().rstrip("."))
        return
    if address not in ips:
        ips.insert(0, address)


def _source(ref: SecretRef | None) -> str | None:
    return None if ref is None else ref.source
