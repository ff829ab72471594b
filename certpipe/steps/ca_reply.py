"""Take in the CA's reply: pick the leaf by the key, order the chain, write PEM files.

The reply is recognised by content. PKCS#7 and DER certificates are turned
into PEM by openssl; the result is read back and compared with what
cryptography reads from the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certpipe.artifacts import checks
from certpipe.artifacts.chain import Chain, build_chain, ca_issuers_urls, find_leaf, issued_by
from certpipe.artifacts.chain import is_self_signed
from certpipe.artifacts.intake import (
    ArtifactError, Contents, inspect_bytes, looks_like_pkcs7, read_certificates, read_csr,
    read_file,
)
from certpipe.artifacts.keys import cert_fingerprint, public_key_fingerprint, read_private_key
from certpipe.errors import CheckFailed, Pending
from certpipe.fsutil import atomic_write
from certpipe.secrets import SecretRef
from certpipe.steps.base import InputRef, Step, StepContext, StepResult, secret_ref


@dataclass(frozen=True)
class CaReplyStep(Step):
    kind = "ca_reply"

    name: str
    reply: str
    key: str
    key_passphrase: SecretRef | None
    csr: str | None
    extra_certs: tuple[str, ...]
    include_root: bool
    allow_incomplete_chain: bool
    weak_signature: str
    cert_out: str
    chain_out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "CaReplyStep":
        return cls(
            name=settings["name"],
            reply=settings["reply"],
            key=settings["key"],
            key_passphrase=secret_ref(settings, "key_passphrase"),
            csr=settings.get("csr"),
            extra_certs=tuple(settings.get("extra_certs", [])),
            include_root=settings.get("include_root", False),
            allow_incomplete_chain=settings.get("allow_incomplete_chain", False),
            weak_signature=settings.get("weak_signature", "fail"),
            cert_out=settings["cert_out"],
            chain_out=settings["chain_out"],
        )

    def inputs(self) -> list[InputRef]:
        refs: list[InputRef] = [(("reply",), self.reply), (("key",), self.key)]
        if self.csr:
            refs.append((("csr",), self.csr))
        refs += [(("extra_certs", i), path) for i, path in enumerate(self.extra_certs)]
        return refs

    def outputs(self) -> dict[str, str]:
        return {"cert_out": self.cert_out, "chain_out": self.chain_out}

    def settings(self) -> dict[str, Any]:
        return {
            "include_root": self.include_root,
            "allow_incomplete_chain": self.allow_incomplete_chain,
            "weak_signature": self.weak_signature,
            "key_passphrase": None if self.key_passphrase is None else self.key_passphrase.source,
        }

    def pending_message(self, ctx: StepContext) -> str:
        reply = ctx.path(self.reply)
        send = f"send {ctx.path(self.csr)} to your CA" if self.csr else "request the certificate"
        return (
            f"waiting for the CA's reply: {send}, save its answer (.p7b, .cer or .crt; PEM or "
            f"DER) as {reply}, then run the same command again"
        )

    def run(self, ctx: StepContext) -> StepResult:
        reply_path = ctx.path(self.reply)
        if not reply_path.exists():
            raise Pending(self.pending_message(ctx))
        result = StepResult()
        key_path = ctx.path(self.key)
        key = self._load(lambda: read_private_key(key_path, ctx.secret(self.key_passphrase)))
        reply = self._load(lambda: read_certificates(reply_path))
        result.notes += reply.notes
        certs = self._convert(ctx, reply_path, reply)
        origin = {cert_fingerprint(c): reply_path for c in certs}
        pool = list(certs)
        for extra in self.extra_certs:
            for path, cert in self._read_extra(ctx.path(extra)):
                origin.setdefault(cert_fingerprint(cert), path)
                pool.append(cert)

        leaf = find_leaf(certs, key.public_key())
        csr = None
        if self.csr:
            csr_path = ctx.path(self.csr)
            csr = self._load(lambda: read_csr(csr_path))
        if leaf is None:
            raise CheckFailed(self._no_leaf_message(certs, reply_path, key, key_path, csr))
        leaf_path = origin[cert_fingerprint(leaf)]
        checks.check_cert_matches_key(leaf, leaf_path, key, key_path)
        result.checks.append(
            f"certificate public key is the key's (SHA-256 "
            f"{public_key_fingerprint(key.public_key())})"
        )
        if csr is not None:
            csr_path = ctx.path(self.csr or "")
            checks.check_cert_matches_csr(leaf, leaf_path, csr, csr_path)
            found = checks.alt_names(csr) or ([], [])
            checks.check_cert_covers(leaf, leaf_path, found[0], found[1])
            result.checks.append("certificate covers every name of the CSR")
            if leaf.subject != csr.subject:
                result.notes.append(
                    f"the CA changed the subject: requested {csr.subject.rfc4514_string()!r}, "
                    f"issued {leaf.subject.rfc4514_string()!r}"
                )
        checks.check_cn_in_alt_names(leaf, leaf_path, "certificate")
        checks.check_validity(leaf, leaf_path, ctx.now)
        result.checks.append(f"certificate valid until {leaf.not_valid_after_utc:%Y-%m-%d}")

        chain = build_chain(leaf, pool)
        self._check_chain(ctx, chain, origin, leaf_path, result)
        server_chain = chain.server_chain(self.include_root)
        atomic_write(ctx.path(self.cert_out), _pem([leaf]))
        atomic_write(ctx.path(self.chain_out), _pem(server_chain))
        result.made += [self.cert_out, self.chain_out]
        return result

    @staticmethod
    def _load(reader: Any) -> Any:
        try:
            return reader()
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None

    def _convert(self, ctx: StepContext, path: Path, contents: Contents) -> list[x509.Certificate]:
        """Turn PKCS#7 or DER into PEM with openssl and compare with cryptography's reading."""
        raw, _ = read_file(path)
        if raw.lstrip()[:1] == b"-" or b"-----BEGIN" in raw[:4096]:
            if "PKCS#7" not in contents.description:
                return contents.certs  # already PEM certificates: nothing to convert
            args = ["pkcs7", "-inform", "PEM", "-in", str(path), "-print_certs"]
        elif looks_like_pkcs7(raw):
            args = ["pkcs7", "-inform", "DER", "-in", str(path), "-print_certs"]
        elif raw[:1] == b"\x30":
            args = ["x509", "-inform", "DER", "-in", str(path), "-outform", "PEM"]
        else:
            return contents.certs  # base64 or UTF-16 text: cryptography's reading stands
        outcome = ctx.openssl.run(args, step=self.name, timeout=ctx.timeout,
                                  extra_env={"SSL_CERT_FILE": "/dev/null"})
        converted = inspect_bytes(path, outcome.stdout).certs
        ours = sorted(cert_fingerprint(c) for c in contents.certs)
        theirs = sorted(cert_fingerprint(c) for c in converted)
        if ours != theirs:
            raise CheckFailed(
                f"{path}: openssl found {len(theirs)} certificates and cryptography "
                f"{len(ours)}, or different ones; the file may be damaged"
            )
        return converted

    @staticmethod
    def _read_extra(path: Path) -> list[tuple[Path, x509.Certificate]]:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        found = []
        for file in files:
            try:
                contents = read_certificates(file)
            except ArtifactError as exc:
                if path.is_dir():
                    continue  # folders may hold keys and notes too
                raise CheckFailed(str(exc)) from None
            found += [(file, cert) for cert in contents.certs]
        return found

    def _no_leaf_message(self, certs: list[x509.Certificate], reply_path: Path, key: Any,
                         key_path: Path, csr: Any) -> str:
        leaves = [c for c in certs if not _is_ca(c)] or certs
        leaf = leaves[0]
        lines = [
            f"the certificate does not belong to the key: no certificate in {reply_path} "
            f"carries the public key of {key_path} (SHA-256 "
            f"{public_key_fingerprint(key.public_key())}); {reply_path} holds "
            f"{leaf.subject.rfc4514_string()!r} with public key SHA-256 "
            f"{public_key_fingerprint(leaf.public_key())}."
        ]
        if csr is not None:
            if csr.public_key() == leaf.public_key():
                lines.append(
                    f"{reply_path} matches the CSR {self.csr}, but {key_path} does not: the "
                    f"key for this certificate is wherever {self.csr} was generated."
                )
            else:
                lines.append(f"It does not match the CSR {self.csr} either.")
        lines.append(
            "No .pfx is made: IIS would import this certificate without a private key and it "
            "would vanish on refresh. The right key is wherever the CSR for this certificate "
            "was made: export a .pfx there, or have the CA re-issue the certificate for a CSR "
            f"made from {key_path}"
        )
        return "\n".join(lines)

    def _check_chain(self, ctx: StepContext, chain: Chain, origin: dict[str, Path],
                     leaf_path: Path, result: StepResult) -> None:
        def source(cert: x509.Certificate) -> Path:
            return origin.get(cert_fingerprint(cert), leaf_path)

        for cert in chain.intermediates + ([chain.root] if chain.root else []):
            checks.check_validity(cert, source(cert), ctx.now, "CA certificate")
        for cert, role in [(chain.leaf, "certificate")] + [
            (c, "intermediate CA certificate") for c in chain.intermediates
        ]:
            weak = checks.weak_signature(cert)
            if weak:
                message = checks.weak_signature_message(cert, source(cert), weak, role)
                if self.weak_signature == "fail":
                    raise CheckFailed(message + " (or set weak_signature: warn to go on)")
                result.notes.append("warning: " + message)
        for cert in chain.unused:
            if chain.complete or is_self_signed(cert):
                result.notes.append(
                    f"left out {cert.subject.rfc4514_string()!r} from {source(cert)}: "
                    f"not part of the leaf's chain"
                )
        if not chain.complete:
            message = self._incomplete_message(chain, source)
            if not self.allow_incomplete_chain:
                raise CheckFailed(message + "; no .pfx is made without the full chain (set "
                                  "allow_incomplete_chain: true to go on anyway)")
            result.notes.append("warning: " + message)
        else:
            result.checks.append(
                f"chain complete: {len(chain.intermediates)} intermediate(s) up to "
                f"{chain.root.subject.rfc4514_string() if chain.root else 'a self-signed leaf'!r}"
            )

    def _incomplete_message(self, chain: Chain, source: Any) -> str:
        last = chain.missing_issuer_of
        assert last is not None
        lines = [
            f"chain incomplete: issuer {last.issuer.rfc4514_string()!r} of "
            f"{last.subject.rfc4514_string()!r} ({source(last)}) is not among the inputs"
        ]
        urls = ca_issuers_urls(last)
        if urls:
            lines.append(f"the certificate names {', '.join(urls)} as the place to get it; "
                         f"save it and list it under extra_certs")
        else:
            lines.append("get the issuing CA certificate from the CA and list it under "
                         "extra_certs")
        for cert in chain.unused:
            if not is_self_signed(cert) and not issued_by(last, cert):
                lines.append(f"{source(cert)} ({cert.subject.rfc4514_string()}) did not issue "
                             f"{source(last)}")
        return "; ".join(lines)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(Encoding.PEM) for cert in certs)
