"""Take in the CA's reply: pick the leaf by the key, order the chain, write PEM files.

The reply is recognised by content: PKCS#7 (PEM, DER or under a CERTIFICATE
label), certificates in PEM or DER in any order, or PKCS#12. PKCS#7 and DER
certificates are also read by openssl, and both readings must agree.
Missing intermediates come from extra_certs. The chain is then checked:
complete, every certificate within its validity period, every issuer a CA,
no SHA-1 or MD5 signature below the root, and leading to a trust anchor.
"""

from __future__ import annotations

import base64
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from certpipe.errors import CertpipeError, CheckFailed, Pending
from certpipe.fsutil import atomic_write
from certpipe.openssl import OpenSSLCallFailed
from certpipe.secrets import SecretRef
from certpipe.steps.base import Action, Command, InputRef, Step, StepContext, StepResult
from certpipe.steps.base import secret_ref

if TYPE_CHECKING:
    from cryptography import x509

    from certpipe.artifacts.chain import Chain
    from certpipe.artifacts.intake import Contents
    from certpipe.artifacts.trust import AnchorSet


# openssl x509 and pkcs7 need no CA bundle; without one they start faster.
_NO_CA_BUNDLE = {"SSL_CERT_FILE": "/dev/null"}


@dataclass(frozen=True)
class CaReplyStep(Step):
    kind = "ca_reply"
    # The reply certifies the key: it must not be left behind by a new key.
    key_bound_inputs = ("reply",)

    name: str
    reply: str
    reply_password: SecretRef | None
    key: str
    key_passphrase: SecretRef | None
    csr: str | None
    extra_certs: tuple[str, ...]
    include_root: bool
    allow_incomplete_chain: bool
    weak_signature: str
    trust_anchors: str | tuple[str, ...]
    untrusted_chain: str
    cert_out: str
    chain_out: str
    fullchain_out: str | None

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "CaReplyStep":
        anchors = settings.get("trust_anchors", "system")
        if isinstance(anchors, list):
            anchors = tuple(anchors)
        default_untrusted = "warn" if anchors == "system" else "fail"
        return cls(
            name=settings["name"],
            reply=settings["reply"],
            reply_password=secret_ref(settings, "reply_password"),
            key=settings["key"],
            key_passphrase=secret_ref(settings, "key_passphrase"),
            csr=settings.get("csr"),
            extra_certs=tuple(settings.get("extra_certs", [])),
            include_root=settings.get("include_root", False),
            allow_incomplete_chain=settings.get("allow_incomplete_chain", False),
            weak_signature=settings.get("weak_signature", "fail"),
            trust_anchors=anchors,
            untrusted_chain=settings.get("untrusted_chain", default_untrusted),
            cert_out=settings["cert_out"],
            chain_out=settings["chain_out"],
            fullchain_out=settings.get("fullchain_out"),
        )

    def inputs(self) -> list[InputRef]:
        refs: list[InputRef] = [(("reply",), self.reply), (("key",), self.key)]
        if self.csr:
            refs.append((("csr",), self.csr))
        refs += [(("extra_certs", i), path) for i, path in enumerate(self.extra_certs)]
        if isinstance(self.trust_anchors, tuple):
            refs += [(("trust_anchors", i), p) for i, p in enumerate(self.trust_anchors)]
        return refs

    def outputs(self) -> dict[str, str]:
        outputs = {"cert_out": self.cert_out, "chain_out": self.chain_out}
        if self.fullchain_out:
            outputs["fullchain_out"] = self.fullchain_out
        return outputs

    def settings(self) -> dict[str, Any]:
        return {
            "include_root": self.include_root,
            "allow_incomplete_chain": self.allow_incomplete_chain,
            "weak_signature": self.weak_signature,
            "trust_anchors": self.trust_anchors,
            "untrusted_chain": self.untrusted_chain,
            "key_passphrase": None if self.key_passphrase is None else self.key_passphrase.source,
            "reply_password": None if self.reply_password is None else self.reply_password.source,
        }

    def commands(self, paths: Mapping[str, str],
                 reply_format: str | None = None) -> list[Action]:
        """Return the conversion call for a reply in *reply_format* (see :func:`sniff_reply`).

        *paths* needs ``reply``. The leaf and chain files are written by certpipe,
        not openssl. With no format known (the reply is not there yet), the
        DER PKCS#7 form is returned with a note.
        """
        # NOTE: run() builds these argument lists in _convert, not here; the test
        # that compares plan's command lines with run's calls keeps them in step.
        reply = paths["reply"]
        args = {
            "pkcs7-pem": ("pkcs7", "-inform", "PEM", "-in", reply, "-print_certs"),
            "pkcs7-der": ("pkcs7", "-inform", "DER", "-in", reply, "-print_certs"),
            "der": ("x509", "-inform", "DER", "-in", reply, "-outform", "PEM"),
        }
        if reply_format in ("pem", "pkcs12"):
            return []  # read by certpipe itself, with no openssl call
        note = "" if reply_format else "the form depends on the reply's content"
        return [Command(args[reply_format or "pkcs7-der"],
                        extra_env={"SSL_CERT_FILE": "/dev/null"}, note=note)]

    def pending_message(self, ctx: StepContext) -> str:
        reply = ctx.path(self.reply)
        send = f"send {ctx.path(self.csr)} to your CA" if self.csr else "request the certificate"
        return (
            f"waiting for the CA's reply: {send}, save its answer (.p7b, .cer or .crt; PEM or "
            f"DER) as {reply}, then run the same command again"
        )

    def run(self, ctx: StepContext) -> StepResult:
        from certpipe.artifacts.chain import build_chain, find_leaf
        from certpipe.artifacts.intake import read_csr
        from certpipe.artifacts.keys import read_private_key

        reply_path = ctx.path(self.reply)
        if not reply_path.exists():
            raise Pending(self.pending_message(ctx))
        result = StepResult()
        key_path = ctx.path(self.key)
        key = _load(lambda: read_private_key(key_path, ctx.secret(self.key_passphrase)))
        reply = self._read_reply(ctx, reply_path, result)
        pool = _Pool(result)
        pool.add_all(reply_path, reply.certs)
        for extra in self.extra_certs:
            for path, cert in _read_extra(ctx.path(extra), result):
                pool.add(path, cert, extra=True)

        leaf = find_leaf(reply.certs, key.public_key())
        csr = _load(lambda: read_csr(ctx.path(self.csr))) if self.csr else None
        if leaf is None:
            backup = self._replaced_key_of(ctx, reply, key_path)
            if backup is not None:
                raise Pending(self._replaced_key_message(ctx, reply_path, key_path, backup))
            raise CheckFailed(self._no_leaf_message(ctx, reply, reply_path, key, key_path, csr))
        leaf_path = pool.source(leaf)
        self._check_leaf(ctx, leaf, leaf_path, key, key_path, csr, result)

        anchors = self._anchors(ctx, pool)
        chain = build_chain(leaf, pool.certs, anchors.certs, ctx.now)
        _ChainReview(self, ctx, chain, pool, anchors, result).run()

        pem_leaf = _pem([leaf])
        pem_chain = _pem(chain.server_chain(self.include_root))
        atomic_write(ctx.path(self.cert_out), pem_leaf)
        atomic_write(ctx.path(self.chain_out), pem_chain)
        result.made += [self.cert_out, self.chain_out]
        if self.fullchain_out:
            atomic_write(ctx.path(self.fullchain_out), pem_leaf + pem_chain)
            result.made.append(self.fullchain_out)
        return result

    def _read_reply(self, ctx: StepContext, path: Path, result: StepResult) -> Contents:
        from certpipe.artifacts.intake import ArtifactError, Pkcs7Unreadable

        try:
            reply = self._read_reply_file(ctx, path)
        except Pkcs7Unreadable as exc:
            reply = self._openssl_fallback(ctx, path, str(exc))
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None
        result.notes += reply.notes
        if not reply.pkcs12:
            reply.certs = self._cross_check(ctx, path, reply, result)
        return reply

    def _read_reply_file(self, ctx: StepContext, path: Path) -> Contents:
        """Read the reply; the password is read only for a PKCS#12 file that needs one."""
        from certpipe.artifacts.intake import PasswordNeeded, read_certificates

        try:
            return read_certificates(path, allow_pkcs12=True)
        except PasswordNeeded:
            password = ctx.secret(self.reply_password)
            if password is None:
                raise CheckFailed(f"{path}: is a PKCS#12 (PFX) file protected by a password; "
                                  f"set reply_password (env:NAME or file:PATH)") from None
        return read_certificates(path, [password], allow_pkcs12=True)

    def _openssl_fallback(self, ctx: StepContext, path: Path, problem: str) -> Contents:
        """Read PKCS#7 that cryptography rejects with ``openssl pkcs7 -print_certs``."""
        from certpipe.artifacts.intake import ArtifactError, inspect_bytes, read_file

        raw, _ = read_file(path)
        inform = "DER" if raw[:1] == b"\x30" else "PEM"
        args = ["pkcs7", "-inform", inform, "-in", str(path), "-print_certs"]
        try:
            outcome = ctx.openssl.run(args, step=self.name, timeout=ctx.timeout,
                                      extra_env=_NO_CA_BUNDLE)
            contents = inspect_bytes(path, outcome.stdout)
        except (OpenSSLCallFailed, ArtifactError):
            raise CheckFailed(f"{problem}; openssl pkcs7 -inform {inform} could not read it "
                              f"either") from None
        if not contents.certs:
            raise CheckFailed(f"{problem}; openssl found no certificates in it either")
        contents.notes.append(f"{path}: read with openssl pkcs7 ({problem})")
        return contents

    def _cross_check(self, ctx: StepContext, path: Path, contents: Contents,
                     result: StepResult) -> list[x509.Certificate]:
        """Read PKCS#7 and DER with openssl too, and compare with cryptography's reading."""
        from certpipe.artifacts.intake import inspect_bytes
        from certpipe.artifacts.keys import cert_fingerprint

        args = _openssl_reader_args(path, contents)
        if args is None:
            return contents.certs
        try:
            outcome = ctx.openssl.run(args, step=self.name, timeout=ctx.timeout,
                                      extra_env=_NO_CA_BUNDLE)
        except OpenSSLCallFailed as exc:
            result.notes.append(f"warning: openssl could not read {path} ({exc.summary}); "
                                f"going on with certpipe's own reading of it")
            return contents.certs
        converted = inspect_bytes(path, outcome.stdout).certs
        ours = sorted(cert_fingerprint(c) for c in contents.certs)
        theirs = sorted(cert_fingerprint(c) for c in converted)
        if ours != theirs:
            raise CheckFailed(
                f"{path}: openssl found {len(theirs)} certificates and cryptography "
                f"{len(ours)}, or different ones; the file may be damaged"
            )
        result.checks.append(f"openssl and cryptography read the same {len(ours)} "
                             f"certificate(s) from {path.name}")
        return contents.certs

    def _check_leaf(self, ctx: StepContext, leaf: x509.Certificate, leaf_path: Path, key: Any,
                    key_path: Path, csr: Any, result: StepResult) -> None:
        from certpipe.artifacts import checks
        from certpipe.artifacts.keys import public_key_fingerprint

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

    def _anchors(self, ctx: StepContext, pool: "_Pool") -> AnchorSet:
        from certpipe.artifacts.chain import is_self_signed
        from certpipe.artifacts.trust import AnchorSet, system_anchors

        if self.trust_anchors == "system":
            return system_anchors()
        if self.trust_anchors == "reply":
            roots = [c for c in pool.certs if is_self_signed(c)]
            return AnchorSet("the root in the reply (trust_anchors: reply)", roots)
        anchors = AnchorSet("trust_anchors (" + ", ".join(self.trust_anchors) + ")")
        for entry in self.trust_anchors:
            path = ctx.path(entry)
            found = _read_extra(path, None)
            if not found:
                raise CheckFailed(f"trust_anchors: no certificate found in {path}; list "
                                  f"files with the trusted root certificates")
            anchors.certs += [cert for _, cert in found]
        return anchors

    def _replaced_key_of(self, ctx: StepContext, reply: Contents, key_path: Path) -> Path | None:
        """Return the backup of a replaced key that the reply's leaf belongs to, or None.

        The private_key step keeps a replaced key beside the new one as
        KEY.replaced-TIMESTAMP, so a reply that fits such a backup was issued
        before the key was replaced and is waiting to be superseded.
        """
        from certpipe.artifacts.chain import find_leaf
        from certpipe.artifacts.keys import read_private_key

        backups = sorted(key_path.parent.glob(glob.escape(key_path.name) + ".replaced-*"),
                         reverse=True)
        for backup in backups:
            try:
                old_key = read_private_key(backup, ctx.secret(self.key_passphrase))
            except CertpipeError:
                continue  # unreadable with this step's passphrase, so it cannot be compared
            if find_leaf(reply.certs, old_key.public_key()) is not None:
                return backup
        return None

    def _replaced_key_message(self, ctx: StepContext, reply_path: Path, key_path: Path,
                              backup: Path) -> str:
        request = (f"Send the new CSR {ctx.path(self.csr)} to your CA" if self.csr
                   else f"Request a certificate for the new key {key_path}")
        return (
            f"waiting for the CA's reply for the new key: {reply_path} holds the certificate "
            f"for the replaced key, which is kept as {backup}. {request}, save the CA's "
            f"answer as {reply_path} in place of the old reply, then run the same command "
            f"again"
        )

    def _no_leaf_message(self, ctx: StepContext, reply: Contents, reply_path: Path, key: Any,
                         key_path: Path, csr: Any) -> str:
        from certpipe.artifacts.chain import find_leaf, is_ca
        from certpipe.artifacts.keys import public_key_fingerprint

        certs = reply.certs
        leaf = next((c for c in certs if not is_ca(c)), certs[0])
        key_fingerprint = public_key_fingerprint(key.public_key())
        lines = [
            f"the certificate does not belong to the key: no certificate in {reply_path} "
            f"carries the public key of {key_path}, so their public keys differ. {reply_path} "
            f"holds {leaf.subject.rfc4514_string()!r} with public key SHA-256 "
            f"{public_key_fingerprint(leaf.public_key())}; {key_path} has public key SHA-256 "
            f"{key_fingerprint}."
        ]
        if reply.keys and find_leaf(certs, reply.keys[0].public_key()) is not None:
            lines.append(f"{reply_path} carries its own private key, which fits that "
                         f"certificate: use the key from the .pfx, not {key_path}.")
        if csr is not None:
            csr_path = ctx.path(self.csr or "")
            if csr.public_key() == leaf.public_key():
                lines.append(
                    f"{reply_path} matches the CSR {csr_path}, but not {key_path}: the key for "
                    f"this certificate is wherever {csr_path} was generated."
                )
            else:
                lines.append(f"It does not match the CSR {csr_path} either.")
        lines.append(
            "No .pfx is made: IIS would import this certificate without a private key and it "
            "would vanish on refresh. The right key is wherever the CSR for this certificate "
            "was made: export a .pfx there, or have the CA re-issue the certificate for a CSR "
            f"made from {key_path} (re-key)"
        )
        return "\n".join(lines)


class _Pool:
    """The certificates at hand, without duplicates, each with the file it came from."""

    def __init__(self, result: StepResult):
        from cryptography import x509

        self.result = result
        self.certs: list[x509.Certificate] = []
        self.origin: dict[str, Path] = {}
        self.extra: set[str] = set()

    def add_all(self, path: Path, certs: list[x509.Certificate]) -> None:
        for cert in certs:
            self.add(path, cert)

    def add(self, path: Path, cert: x509.Certificate, extra: bool = False) -> None:
        from certpipe.artifacts.keys import cert_fingerprint

        fingerprint = cert_fingerprint(cert)
        if fingerprint in self.origin:
            first = self.origin[fingerprint]
            where = "again" if first == path else f"also in {first}"
            self.result.notes.append(
                f"dropped a duplicate of {cert.subject.rfc4514_string()!r} from {path} "
                f"({where})"
            )
            return
        self.origin[fingerprint] = path
        self.certs.append(cert)
        if extra:
            self.extra.add(fingerprint)

    def source(self, cert: x509.Certificate) -> Path:
        from certpipe.artifacts.keys import cert_fingerprint

        return self.origin.get(cert_fingerprint(cert), Path("(trust anchors)"))

    def is_extra(self, cert: x509.Certificate) -> bool:
        from certpipe.artifacts.keys import cert_fingerprint

        return cert_fingerprint(cert) in self.extra


class _ChainReview:
    """The chain checks of one run, in the order a user should read their results."""

    def __init__(self, step: CaReplyStep, ctx: StepContext, chain: Chain, pool: _Pool,
                 anchors: AnchorSet, result: StepResult):
        self.step = step
        self.ctx = ctx
        self.chain = chain
        self.pool = pool
        self.anchors = anchors
        self.result = result

    def run(self) -> None:
        self.check_complete()
        self.check_validity()
        self.check_issuers()
        self.check_signatures()
        self.check_trust()
        self.note_unused()

    def describe(self, cert: x509.Certificate) -> str:
        if self.chain.root_from_anchors and cert is self.chain.root:
            return f"{cert.subject.rfc4514_string()!r} (from {self.anchors.source})"
        return f"{cert.subject.rfc4514_string()!r} ({self.pool.source(cert)})"

    def check_complete(self) -> None:
        top_ca = self.chain.root_missing_above
        if top_ca is not None:
            self.result.notes.append(
                f"the root {top_ca.issuer.rfc4514_string()!r} that issued "
                f"{top_ca.subject.rfc4514_string()!r} is not among the inputs; the chain is "
                f"taken to end below it, as servers send it. If that issuer is not a root but "
                f"another intermediate CA, add it to extra_certs"
            )
        if self.chain.complete:
            top = self.chain.root or self.chain.anchor or top_ca
            name = top.subject.rfc4514_string() if top else "a self-signed leaf"
            self.result.checks.append(
                f"chain complete: {len(self.chain.intermediates)} intermediate(s) up to {name!r}"
            )
            return
        message = self.incomplete_message()
        if not self.step.allow_incomplete_chain:
            raise CheckFailed(message + "; no .pfx is made without the full chain (set "
                              "allow_incomplete_chain: true to go on anyway)")
        self.result.notes.append("warning: " + message)

    def incomplete_message(self) -> str:
        from certpipe.artifacts.chain import ca_issuers_urls, is_ca, is_self_signed, issued_by

        last = self.chain.missing_issuer_of
        assert last is not None
        lines = [
            f"chain incomplete: issuer {last.issuer.rfc4514_string()!r} of "
            f"{last.subject.rfc4514_string()!r} ({self.pool.source(last)}) is not among the "
            f"inputs"
        ]
        urls = ca_issuers_urls(last)
        if urls:
            lines.append(f"the certificate names {', '.join(urls)} as the place to get it; "
                         f"save it and list it under extra_certs")
        else:
            lines.append("get the issuing CA certificate from the CA and list it under "
                         "extra_certs")
        for cert in self.chain.unused:
            if is_self_signed(cert) or issued_by(last, cert):
                continue
            if cert.subject == last.issuer:
                lines.append(f"{self.pool.source(cert)} ({cert.subject.rfc4514_string()}) has "
                             f"the issuer's name but its key did not sign "
                             f"{self.pool.source(last)}")
            elif is_ca(cert):
                lines.append(f"{self.pool.source(cert)} ({cert.subject.rfc4514_string()}) did "
                             f"not issue {self.pool.source(last)}")
        return "; ".join(lines)

    def check_validity(self) -> None:
        from certpipe.artifacts import checks

        for cert in self.chain.certificates:
            problem = checks.validity_problem(cert, self.ctx.now)
            if problem is None:
                continue
            role = "certificate" if cert is self.chain.leaf else "CA certificate"
            advice = ("check this machine's clock or wait" if "not valid yet" in problem
                      else "get a current one from the CA")
            raise CheckFailed(f"the {role} {self.describe(cert)} {problem}; {advice}")
        self.result.checks.append("every certificate of the chain is within its validity "
                                  "period")

    def check_issuers(self) -> None:
        from certpipe.artifacts import checks

        issuers = self.chain.intermediates + ([self.chain.root] if self.chain.root else [])
        for below, cert in enumerate(issuers):
            problem = checks.ca_problem(cert, below)
            if problem is not None:
                raise CheckFailed(
                    f"{self.describe(cert)} cannot issue certificates: {problem}. TLS clients "
                    f"reject this chain; ask the CA for its correct CA certificate"
                )

    def check_signatures(self) -> None:
        from certpipe.artifacts import checks

        signed = [(self.chain.leaf, "certificate")] + [
            (c, "intermediate CA certificate") for c in self.chain.intermediates
        ]
        for cert, role in signed:
            weak = checks.weak_signature(cert)
            if not weak:
                continue
            message = checks.weak_signature_message(cert, self.pool.source(cert), weak, role)
            if self.step.weak_signature == "fail":
                raise CheckFailed(message + " (or set weak_signature: warn to go on)")
            self.result.notes.append("warning: " + message)

    def check_trust(self) -> None:
        anchor = self.chain.anchor
        if anchor is not None:
            self.result.checks.append(
                f"chain leads to trust anchor {anchor.subject.rfc4514_string()!r} from "
                f"{self.anchors.source}"
            )
            return
        message = self.untrusted_message()
        if self.step.untrusted_chain == "fail":
            raise CheckFailed(message + " (or set untrusted_chain: warn to go on)")
        self.result.notes.append("warning: " + message)

    def untrusted_message(self) -> str:
        top = self.chain.certificates[-1]
        if not self.chain.complete:
            what = "the chain is incomplete"
        elif self.chain.root_missing_above is not None:
            what = (f"the chain ends at {top.subject.rfc4514_string()!r}, whose issuer "
                    f"{top.issuer.rfc4514_string()!r} is not known")
        else:
            what = f"the chain ends at {top.subject.rfc4514_string()!r}"
        if self.step.trust_anchors == "reply" and self.chain.root is None:
            return (f"trust_anchors is 'reply' but the reply and extra_certs hold no "
                    f"self-signed root for this chain ({what}); add the root to extra_certs "
                    f"or list it under trust_anchors")
        text = f"the chain does not lead to a trust anchor in {self.anchors.source}: {what}"
        if self.step.trust_anchors == "system":
            text += (". Clients that do not trust this root reject the certificate. For a "
                     "local or internal CA this is expected: list its root under "
                     "trust_anchors, or set trust_anchors: reply to trust the root the reply "
                     "carries")
        return text

    def note_unused(self) -> None:
        from_extra = 0
        for cert in self.chain.unused:
            if self.pool.is_extra(cert):
                from_extra += 1
                continue
            self.result.notes.append(
                f"left out {cert.subject.rfc4514_string()!r} from {self.pool.source(cert)}: "
                f"not part of the leaf's chain"
            )
        if from_extra:
            self.result.notes.append(f"{from_extra} certificate(s) from extra_certs are not "
                                     f"part of the leaf's chain and were left out")


def _load(reader: Any) -> Any:
    from certpipe.artifacts.intake import ArtifactError

    try:
        return reader()
    except ArtifactError as exc:
        raise CheckFailed(str(exc)) from None


def _openssl_reader_args(path: Path, contents: Contents) -> list[str] | None:
    """Return the openssl command that reads the same certificates, where one exists."""
    from certpipe.artifacts.intake import looks_like_pkcs7, read_file

    if contents.description.startswith("bare base64") or not contents.certs:
        return None
    places = set(contents.cert_where)
    if places == {"DER"}:
        return ["x509", "-inform", "DER", "-in", str(path), "-outform", "PEM"]
    if places == {"PKCS#7"}:
        raw, _ = read_file(path)
        if looks_like_pkcs7(raw):
            return ["pkcs7", "-inform", "DER", "-in", str(path), "-print_certs"]
        return None  # BER or otherwise odd DER: certpipe's own reading is used
    if len(places) == 1 and next(iter(places)).startswith("PKCS#7 at line "):
        raw, _ = read_file(path)
        if raw.startswith(b"-----BEGIN "):
            return ["pkcs7", "-inform", "PEM", "-in", str(path), "-print_certs"]
    return None  # PEM certificates, UTF-16 or text around the block: nothing to convert


def _read_extra(path: Path, result: StepResult | None) -> list[tuple[Path, x509.Certificate]]:
    """Read the certificates of a file, or of every file in a folder."""
    from certpipe.artifacts.intake import ArtifactError, read_certificates

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        files = [path]
    found = []
    skipped = 0
    for file in files:
        try:
            contents = read_certificates(file)
        except ArtifactError as exc:
            if path.is_dir():
                skipped += 1  # folders may hold keys and notes too
                continue
            raise CheckFailed(str(exc)) from None
        found += [(file, cert) for cert in contents.certs]
    if skipped and result is not None:
        result.notes.append(f"{path}: skipped {skipped} file(s) that hold no certificate")
    return found


def _pem(certs: list[x509.Certificate]) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(cert.public_bytes(Encoding.PEM) for cert in certs)


def sniff_reply(raw: bytes) -> str:
    """Classify a reply as ``pkcs7-pem``, ``pkcs7-der``, ``pkcs12``, ``der``, ``pem`` or ``other``.

    The result names the conversion that :meth:`CaReplyStep.commands` gives;
    it reads only the bytes, so ``plan`` needs no certificate parser.
    """
    from certpipe.artifacts.intake import looks_like_pkcs12, looks_like_pkcs7

    if raw.lstrip()[:1] == b"-" or b"-----BEGIN" in raw[:4096]:
        text = raw.decode("latin-1")
        for label in ("PKCS7", "PKCS #7 SIGNED DATA", "CERTIFICATE CHAIN"):
            if f"-----BEGIN {label}-----" in text:
                return "pkcs7-pem"
        start = text.find("-----BEGIN CERTIFICATE-----")
        end = text.find("-----END", start)
        if start >= 0 and end > start:
            body = "".join(text[start + 27:end].split())
            try:
                der = base64.b64decode(body[:64] + "=" * (-len(body[:64]) % 4))
            except ValueError:
                der = b""
            if looks_like_pkcs7(der):
                return "pkcs7-pem"
        return "pem"
    if looks_like_pkcs7(raw):
        return "pkcs7-der"
    if looks_like_pkcs12(raw):
        return "pkcs12"
    if raw[:1] == b"\x30":
        return "der"
    return "other"
