"""Sign a CSR with a throwaway two-level CA and reply with a DER PKCS#7 bundle.

The CA (a root and an issuing CA, EC P-256 keys) is made once in ``ca_dir``
and reused, so re-runs sign with the same CA. It is meant for demos, tests
and internal sites: nothing outside trusts it until its root is installed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from certpipe.artifacts import checks
from certpipe.artifacts.chain import issued_by
from certpipe.artifacts.intake import read_certificates, read_csr
from certpipe.artifacts.keys import read_private_key
from certpipe.errors import ArtifactError, CheckFailed
from certpipe.fsutil import KEY_MODE, atomic_output, atomic_write
from certpipe.steps.base import InputRef, Step, StepContext, StepResult

ROOT_DAYS = 3650
ISSUING_DAYS = 1825

# Extension sections for the CA certificates and the leaf, in one config file.
_CA_CONFIG = """\
# Written by certpipe for its local CA.
[req]
prompt = no
utf8 = yes
string_mask = utf8only
distinguished_name = dn

[dn]
CN = placeholder

[root_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[issuing_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

# openssl x509 loads the system CA bundle on every call (about 20 ms with
# OpenSSL 3.0); it needs none of it to sign.
_NO_CA_BUNDLE = {"SSL_CERT_FILE": "/dev/null"}


@dataclass(frozen=True)
class LocalCaStep(Step):
    kind = "local_ca"

    name: str
    csr: str
    days: int
    ca_dir: str
    ca_name: str
    out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "LocalCaStep":
        return cls(
            name=settings["name"],
            csr=settings["csr"],
            days=settings.get("days", 397),
            ca_dir=settings.get("ca_dir", "local-ca"),
            ca_name=settings.get("ca_name", "certpipe local test CA"),
            out=settings["out"],
        )

    def inputs(self) -> list[InputRef]:
        return [(("csr",), self.csr)]

    def outputs(self) -> dict[str, str]:
        return {"out": self.out, "ca_dir": self.ca_dir}

    def settings(self) -> dict[str, Any]:
        return {"days": self.days, "ca_name": self.ca_name}

    def run(self, ctx: StepContext) -> StepResult:
        result = StepResult()
        ca_dir = ctx.path(self.ca_dir)
        ca_dir.mkdir(parents=True, exist_ok=True)
        config = ca_dir / "ca.cnf"
        if not config.exists():
            atomic_write(config, _CA_CONFIG.encode())
        root_key, root = ca_dir / "root.key", ca_dir / "root.pem"
        issuing_key, issuing = ca_dir / "issuing.key", ca_dir / "issuing.pem"

        if not (root_key.exists() and root.exists()):
            self._make_key(ctx, root_key)
            with atomic_output(root) as temp:
                ctx.openssl.run(
                    ["req", "-x509", "-new", "-config", str(config), "-key", str(root_key),
                     "-subj", self._subject("Root"), "-utf8", "-extensions", "root_ext",
                     "-days", str(ROOT_DAYS), "-sha256", "-out", str(temp)],
                    step=self.name, timeout=ctx.timeout,
                )
            result.made.append(f"{self.ca_dir}/root.pem")
        if not (issuing_key.exists() and issuing.exists()):
            self._make_key(ctx, issuing_key)
            request = ctx.state_dir() / f"{self.name}.issuing.csr"
            with atomic_output(request) as temp:
                ctx.openssl.run(
                    ["req", "-new", "-config", str(config), "-key", str(issuing_key),
                     "-subj", self._subject("Issuing"), "-utf8", "-out", str(temp)],
                    step=self.name, timeout=ctx.timeout,
                )
            with atomic_output(issuing) as temp:
                self._sign(ctx, request, root, root_key, ISSUING_DAYS, config, "issuing_ext",
                           temp)
            request.unlink()
            result.made.append(f"{self.ca_dir}/issuing.pem")
        self._check_ca(ctx, root, root_key, issuing, issuing_key)

        csr_path = ctx.path(self.csr)
        try:
            csr = read_csr(csr_path)
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None
        checks.check_csr_signature(csr, csr_path)
        leaf_config = ctx.state_dir() / f"{self.name}.leaf.cnf"
        atomic_write(leaf_config, self._leaf_extensions(csr).encode(), mode=0o600)
        leaf = ctx.state_dir() / f"{self.name}.leaf.pem"
        with atomic_output(leaf) as temp:
            self._sign(ctx, csr_path, issuing, issuing_key, self.days, leaf_config, "leaf_ext",
                       temp)
        out = ctx.path(self.out)
        with atomic_output(out) as temp:
            ctx.openssl.run(
                ["crl2pkcs7", "-nocrl", "-certfile", str(leaf), "-certfile", str(issuing),
                 "-certfile", str(root), "-outform", "DER", "-out", str(temp)],
                step=self.name, timeout=ctx.timeout,
            )
            self._check_reply(temp, out, csr)
        leaf.unlink()
        result.made.append(self.out)
        result.checks.append("local CA signed the CSR")
        return result

    @staticmethod
    def _check_reply(written: Path, shown: Path, csr: Any) -> None:
        """Check that the reply openssl wrote holds a certificate for the CSR's key."""
        try:
            certs = read_certificates(written).certs
        except ArtifactError as exc:
            detail = str(exc).replace(str(written), str(shown))
            raise CheckFailed(f"openssl wrote an unreadable reply: {detail}") from None
        if not any(cert.public_key() == csr.public_key() for cert in certs):
            raise CheckFailed(f"{shown}: the reply openssl wrote holds no certificate for the "
                              f"CSR's key; the signing call failed")

    def _subject(self, role: str) -> str:
        # The name is checked by the schema to hold no '/' or control characters
        # that would split -subj; escape anyway so odd names stay literal.
        cn = f"{self.ca_name} {role}".replace("\\", "\\\\").replace("/", "\\/")
        return f"/CN={cn.replace('+', chr(92) + '+')}"

    def _make_key(self, ctx: StepContext, path: Path) -> None:
        if path.exists():
            return  # a CA key is never replaced; its certificate is made again
        with atomic_output(path, KEY_MODE) as temp:
            ctx.openssl.run(
                ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-pkeyopt", "ec_param_enc:named_curve", "-out", str(temp)],
                step=self.name, timeout=ctx.timeout,
            )

    def _sign(self, ctx: StepContext, request: Path, ca_cert: Path, ca_key: Path, days: int,
              config: Path, section: str, out: Path) -> None:
        ctx.openssl.run(
            ["x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-set_serial", "0x" + secrets.token_hex(16), "-days", str(days), "-sha256",
             "-extfile", str(config), "-extensions", section, "-out", str(out)],
            step=self.name, timeout=ctx.timeout, extra_env=_NO_CA_BUNDLE,
        )

    def _check_ca(self, ctx: StepContext, root: Path, root_key: Path, issuing: Path,
                  issuing_key: Path) -> None:
        try:
            root_cert = read_certificates(root).certs[0]
            issuing_cert = read_certificates(issuing).certs[0]
            keys = [(root_cert, root, read_private_key(root_key), root_key),
                    (issuing_cert, issuing, read_private_key(issuing_key), issuing_key)]
        except ArtifactError as exc:
            raise CheckFailed(f"the local CA in {self.ca_dir} is damaged: {exc}") from None
        for cert, cert_path, key, key_path in keys:
            checks.check_cert_matches_key(cert, cert_path, key, key_path)
            checks.check_validity(cert, cert_path, ctx.now, "local CA certificate")
        if not issued_by(issuing_cert, root_cert):
            raise CheckFailed(f"{issuing} was not issued by {root}; delete {self.ca_dir} to "
                              f"make a new local CA")

    @staticmethod
    def _leaf_extensions(csr: Any) -> str:
        found = checks.alt_names(csr) or ([], [])
        entries = [f"DNS:{name}" for name in found[0]] + [f"IP:{ip}" for ip in found[1]]
        usage = "digitalSignature, keyEncipherment" if isinstance(
            csr.public_key(), rsa.RSAPublicKey) else "digitalSignature"
        lines = [
            "[leaf_ext]",
            "basicConstraints = critical, CA:FALSE",
            f"keyUsage = critical, {usage}",
            "extendedKeyUsage = serverAuth",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid:always",
        ]
        if entries:
            lines.append("subjectAltName = " + ", ".join(entries))
        return "\n".join(lines) + "\n"
