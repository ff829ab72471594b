"""Sign a CSR with a throwaway two-level CA and reply with a DER PKCS#7 bundle.

The CA (a root and an issuing CA, EC P-256 keys) is made once in ``ca_dir``
and reused, so re-runs sign with the same CA. It is meant for demos, tests
and internal sites: nothing outside trusts it until its root is installed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from certpipe.errors import ArtifactError, CheckFailed
from certpipe.fsutil import KEY_MODE
from certpipe.steps.base import Action, Command, ConfigFile, InputRef, Step, StepContext
from certpipe.steps.base import StepResult, execute

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

_GENPKEY_EC = ("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-pkeyopt", "ec_param_enc:named_curve")


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

    def ca_commands(self, paths: Mapping[str, str],
                    serial: str | None = None) -> list[Action]:
        """Make the root and issuing CA where missing; *paths* needs ca_dir and work.

        Each call is skipped when the files in its ``unless_exists`` existed
        before the step began: a CA key is never replaced, and a missing CA
        certificate is made again from its key.
        """
        files = self.ca_files(paths["ca_dir"])
        config, root_key, root = files["config"], files["root_key"], files["root"]
        issuing_key, issuing = files["issuing_key"], files["issuing"]
        request = os.path.join(paths["work"], f"{self.name}.issuing.csr")
        return [
            ConfigFile(config, _CA_CONFIG, mode=0o644, unless_exists=(config,),
                       note="extensions of the local CA certificates"),
            Command(_GENPKEY_EC + ("-out", root_key), output=root_key, output_mode=KEY_MODE,
                    unless_exists=(root_key,), note="root CA key"),
            Command(("req", "-x509", "-new", "-config", config, "-key", root_key,
                     "-subj", self._subject("Root"), "-utf8", "-extensions", "root_ext",
                     "-days", str(ROOT_DAYS), "-sha256", "-out", root),
                    output=root, unless_exists=(root_key, root), note="root CA certificate"),
            Command(_GENPKEY_EC + ("-out", issuing_key), output=issuing_key,
                    output_mode=KEY_MODE, unless_exists=(issuing_key,),
                    note="issuing CA key"),
            Command(("req", "-new", "-config", config, "-key", issuing_key,
                     "-subj", self._subject("Issuing"), "-utf8", "-out", request),
                    output=request, unless_exists=(issuing_key, issuing),
                    note="issuing CA request"),
            self._sign_command(request, root, root_key, ISSUING_DAYS, config, "issuing_ext",
                               issuing, serial, unless_exists=(issuing_key, issuing),
                               note="root CA signs the issuing CA"),
        ]

    def leaf_commands(self, paths: Mapping[str, str], leaf_extensions: str | None,
                      serial: str | None = None) -> list[Action]:
        """Sign the CSR and bundle the reply; *paths* needs csr, out, ca_dir and work.

        *leaf_extensions* is the text of :meth:`leaf_extensions`, made from
        the CSR; None stands for "made from the CSR at run time".
        """
        files = self.ca_files(paths["ca_dir"])
        leaf_config = os.path.join(paths["work"], f"{self.name}.leaf.cnf")
        leaf = os.path.join(paths["work"], f"{self.name}.leaf.pem")
        return [
            ConfigFile(leaf_config, leaf_extensions,
                       note="leaf certificate extensions, subjectAltName copied from the CSR"),
            self._sign_command(paths["csr"], files["issuing"], files["issuing_key"], self.days,
                               leaf_config, "leaf_ext", leaf, serial,
                               note="issuing CA signs the CSR"),
            Command(("crl2pkcs7", "-nocrl", "-certfile", leaf, "-certfile", files["issuing"],
                     "-certfile", files["root"], "-outform", "DER", "-out", paths["out"]),
                    output=paths["out"], note="reply as a DER PKCS#7 bundle"),
        ]

    def commands(self, paths: Mapping[str, str]) -> list[Action]:
        return self.ca_commands(paths) + self.leaf_commands(paths, None)

    @staticmethod
    def ca_files(ca_dir: str) -> dict[str, str]:
        names = {"config": "ca.cnf", "root_key": "root.key", "root": "root.pem",
                 "issuing_key": "issuing.key", "issuing": "issuing.pem"}
        return {role: os.path.join(ca_dir, name) for role, name in names.items()}

    def run(self, ctx: StepContext) -> StepResult:
        from cryptography.hazmat.primitives.asymmetric import rsa

        from certpipe.artifacts import checks
        from certpipe.artifacts.intake import read_csr

        result = StepResult()
        csr_path = ctx.path(self.csr)
        try:
            csr = read_csr(csr_path)
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None
        checks.check_csr_signature(csr, csr_path)

        ca_dir = ctx.path(self.ca_dir)
        ca_dir.mkdir(parents=True, exist_ok=True)
        paths = {"csr": str(csr_path), "out": str(ctx.path(self.out)), "ca_dir": str(ca_dir),
                 "work": str(ctx.state_dir())}
        files = {role: Path(path) for role, path in self.ca_files(str(ca_dir)).items()}
        before = {role: path.exists() for role, path in files.items()}
        execute(ctx, self.name, self.ca_commands(paths))
        for role in ("root", "issuing"):
            if not (before[role] and before[f"{role}_key"]):
                result.made.append(f"{self.ca_dir}/{files[role].name}")
        Path(paths["work"], f"{self.name}.issuing.csr").unlink(missing_ok=True)
        self._check_ca(ctx, files["root"], files["root_key"], files["issuing"],
                       files["issuing_key"])

        rsa_key = isinstance(csr.public_key(), rsa.RSAPublicKey)
        found = checks.alt_names(csr) or ([], [])
        extensions = self.leaf_extensions(found[0], found[1], rsa_key)

        def check_reply(command: Any, temp: Path) -> None:
            if command.output == paths["out"]:
                self._check_reply(temp, Path(paths["out"]), csr)

        execute(ctx, self.name, self.leaf_commands(paths, extensions), check_reply)
        Path(paths["work"], f"{self.name}.leaf.pem").unlink(missing_ok=True)
        result.made.append(self.out)
        result.checks.append("local CA signed the CSR")
        return result

    @staticmethod
    def _check_reply(written: Path, shown: Path, csr: Any) -> None:
        """Check that the reply openssl wrote contains a certificate for the CSR's key."""
        from certpipe.artifacts.intake import read_certificates

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

    def _sign_command(self, request: str, ca_cert: str, ca_key: str, days: int, config: str,
                      section: str, out: str, serial: str | None,
                      unless_exists: tuple[str, ...] = (), note: str = "") -> Command:
        return Command(
            ("x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key,
             "-set_serial", serial or "0x" + secrets.token_hex(16), "-days", str(days),
             "-sha256", "-extfile", config, "-extensions", section, "-out", out),
            output=out, extra_env=_NO_CA_BUNDLE, unless_exists=unless_exists, note=note,
        )

    def _check_ca(self, ctx: StepContext, root: Path, root_key: Path, issuing: Path,
                  issuing_key: Path) -> None:
        from certpipe.artifacts import checks
        from certpipe.artifacts.chain import issued_by
        from certpipe.artifacts.intake import read_certificates
        from certpipe.artifacts.keys import read_private_key

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
    def leaf_extensions(dns: list[str], ips: list[str], rsa_key: bool) -> str:
        """Return the ``[leaf_ext]`` config section for a leaf with these names."""
        entries = [f"DNS:{name}" for name in dns] + [f"IP:{ip}" for ip in ips]
        usage = "digitalSignature, keyEncipherment" if rsa_key else "digitalSignature"
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
