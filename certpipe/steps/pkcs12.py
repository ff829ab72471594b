"""Export key, leaf and chain into a .pfx with ``openssl pkcs12 -export``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from certpipe.artifacts import checks
from certpipe.artifacts.chain import issued_by
from certpipe.artifacts.intake import load_pkcs12_file, read_certificates
from certpipe.artifacts.keys import cert_fingerprint, read_private_key
from certpipe.errors import ArtifactError, CheckFailed
from certpipe.fsutil import atomic_output
from certpipe.openssl import PASSIN_VAR, PASSOUT_VAR
from certpipe.secrets import SecretRef
from certpipe.steps.base import InputRef, Step, StepContext, StepResult, secret_ref

# Algorithm flags per profile. compat writes PBE-SHA1-3DES for key and
# certificates with a SHA-1 MAC, which every Windows version imports and
# OpenSSL 3 writes without the legacy provider; modern is OpenSSL 3's default
# (AES-256-CBC, PBKDF2, SHA-256 MAC), which needs Windows 10 1709 or Server 2019.
PROFILE_FLAGS = {
    "compat": ["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
    "modern": ["-certpbe", "AES-256-CBC", "-keypbe", "AES-256-CBC", "-macalg", "sha256"],
}


@dataclass(frozen=True)
class Pkcs12Step(Step):
    kind = "pkcs12"

    name: str
    key: str
    key_passphrase: SecretRef | None
    cert: str
    chain: str | None
    friendly_name: str | None
    password: SecretRef
    profile: str
    out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Pkcs12Step":
        return cls(
            name=settings["name"],
            key=settings["key"],
            key_passphrase=secret_ref(settings, "key_passphrase"),
            cert=settings["cert"],
            chain=settings.get("chain"),
            friendly_name=settings.get("friendly_name"),
            password=SecretRef(settings["password"]),
            profile=settings.get("profile", "compat"),
            out=settings["out"],
        )

    def inputs(self) -> list[InputRef]:
        refs: list[InputRef] = [(("key",), self.key), (("cert",), self.cert)]
        if self.chain:
            refs.append((("chain",), self.chain))
        return refs

    def outputs(self) -> dict[str, str]:
        return {"out": self.out}

    def settings(self) -> dict[str, Any]:
        return {
            "friendly_name": self.friendly_name,
            "password": self.password.source,
            "key_passphrase": None if self.key_passphrase is None else self.key_passphrase.source,
            "profile": self.profile,
        }

    def export_args(self, key: str, cert: str, chain: str | None, name: str, out: str,
                    passin: bool) -> list[str]:
        args = ["pkcs12", "-export", "-inkey", key, "-in", cert]
        if chain:
            args += ["-certfile", chain]
        args += ["-name", name, *PROFILE_FLAGS[self.profile]]
        args += ["-passout", f"env:{PASSOUT_VAR}" if not self.password.is_none else "pass:"]
        if passin:
            args += ["-passin", f"env:{PASSIN_VAR}"]
        return args + ["-out", out]

    def run(self, ctx: StepContext) -> StepResult:
        password = ctx.secret(self.password)
        passphrase = ctx.secret(self.key_passphrase)
        key_path, cert_path = ctx.path(self.key), ctx.path(self.cert)
        chain_path = ctx.path(self.chain) if self.chain else None
        try:
            key = read_private_key(key_path, passphrase)
            leaf_contents = read_certificates(cert_path)
            chain = read_certificates(chain_path).certs if chain_path and _has_pem(
                chain_path) else []
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None
        if len(leaf_contents.certs) != 1:
            raise CheckFailed(f"{cert_path} holds {len(leaf_contents.certs)} certificates; "
                              f"give the leaf alone as cert and the rest as chain")
        leaf = leaf_contents.certs[0]
        checks.check_cert_matches_key(leaf, cert_path, key, key_path)
        _check_order(leaf, chain, cert_path, chain_path)
        name = self.friendly_name or default_friendly_name(leaf)

        out = ctx.path(self.out)
        with atomic_output(out, mode=0o600) as temp:
            ctx.openssl.run(
                self.export_args(str(key_path), str(cert_path),
                                 str(chain_path) if chain else None, name, str(temp),
                                 passphrase is not None),
                step=self.name, passin=passphrase,
                passout=None if self.password.is_none else password, timeout=ctx.timeout,
            )
            verify_pfx(temp, out, password.value if password else b"", key, leaf, chain, name)
        return StepResult(
            made=[self.out],
            checks=[
                f".pfx opens with the password from {self.password.describe()}",
                f".pfx holds the key, the leaf and {len(chain)} chain certificate(s) in order",
                "key in the .pfx matches the leaf",
                f"friendly name {name!r}",
            ],
        )


def _has_pem(path: Path) -> bool:
    """An empty chain file (a self-signed leaf, say) means no chain certificates."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return True  # let the reader report the missing file


def default_friendly_name(leaf: x509.Certificate) -> str:
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else leaf.subject.rfc4514_string()
    return f"{cn} {leaf.not_valid_after_utc:%Y-%m-%d}"


def _check_order(leaf: x509.Certificate, chain: list[x509.Certificate], cert_path: Path,
                 chain_path: Path | None) -> None:
    current = leaf
    for index, cert in enumerate(chain, 1):
        if not issued_by(current, cert):
            raise CheckFailed(
                f"{chain_path}: certificate {index} ({cert.subject.rfc4514_string()}) did not "
                f"issue {current.subject.rfc4514_string()}; the chain must start with the "
                f"issuer of {cert_path} and go up one issuer at a time"
            )
        current = cert


def verify_pfx(path: Path, shown: Path, password: bytes, key: Any, leaf: x509.Certificate,
               chain: list[x509.Certificate], name: str) -> None:
    """Read the .pfx back and check it holds exactly key, leaf and chain."""
    try:
        bundle = load_pkcs12_file(path, password)
    except ArtifactError as exc:
        detail = str(exc).replace(str(path), str(shown))
        raise CheckFailed(f"the .pfx openssl wrote cannot be read back: {detail}") from None
    if bundle.key is None:
        raise CheckFailed(f"{shown} holds no private key")
    if bundle.cert is None:
        raise CheckFailed(f"{shown} holds no certificate linked to its key")
    leaf_in_pfx = bundle.cert.certificate
    if cert_fingerprint(leaf_in_pfx) != cert_fingerprint(leaf):
        raise CheckFailed(f"{shown}: the certificate linked to the key is not the leaf")
    checks.check_cert_matches_key(leaf_in_pfx, shown, bundle.key, shown)
    if bundle.key.public_key() != key.public_key():
        raise CheckFailed(f"{shown}: the key in the .pfx is not the pipeline's key")
    found = [cert_fingerprint(c.certificate) for c in bundle.additional_certs]
    wanted = [cert_fingerprint(c) for c in chain]
    if found != wanted:
        raise CheckFailed(f"{shown}: the chain in the .pfx ({len(found)} certificates) is not "
                          f"the expected chain ({len(wanted)} certificates, issuer first)")
    friendly = bundle.cert.friendly_name
    if friendly is not None and friendly != name.encode("utf-8"):
        raise CheckFailed(f"{shown}: friendly name is {friendly!r}, expected {name!r}")
