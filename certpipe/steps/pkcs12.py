"""Export key, leaf and chain into a .pfx with ``openssl pkcs12 -export``.

The algorithms come from the pipeline's target (the Windows version or
program that imports the file), a named profile, or explicit settings.
After the export the file is read back in-process: its certificate and key
encryption, iteration counts and MAC must be exactly what was asked, and
every named target must import them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from certpipe.artifacts.pbe import NOT_ENCRYPTED, Encryption, Mac
from certpipe.artifacts.pfx_info import (
    TARGETS, Algorithms, PfxInfo, Target, WrongPassword, judge, read_pfx,
)
from certpipe.artifacts.pfx_targets import WINDOWS_ITERATION_LIMIT, recommended_profile
from certpipe.errors import ArtifactError, CheckFailed, PipelineError
from certpipe.fsutil import atomic_output, atomic_write
from certpipe.openssl import PASSIN_VAR, PASSOUT_VAR, OpenSSL, parse_version
from certpipe.secrets import SecretRef
from certpipe.steps.base import Action, Command, InputRef, Step, StepContext, StepResult
from certpipe.steps.base import reject_control_chars, secret_ref
from certpipe.steps.material import (
    CHAIN_INCLUDE, certificates_pem, keep_other_key, load_material, read_secret,
)

if TYPE_CHECKING:
    from cryptography import x509


# The openssl that plan and script write commands for when none is at hand.
OPENSSL_3 = parse_version("OpenSSL 3.0.0")

# The iteration count pkcs12 uses when a pipeline names none; it is
# PKCS12_DEFAULT_ITER in OpenSSL 1.1.1, 3.x and LibreSSL alike.
DEFAULT_ITERATIONS = 2048
MAX_ITERATIONS = 2_000_000

# openssl's -certpbe/-keypbe names for the pipeline's encryption values. A
# cipher name selects PBES2 with PBKDF2 (hmacWithSHA256 in OpenSSL 1.1.1
# and later); PBE-SHA1-3DES is the PKCS#12 scheme every Windows imports.
# RC2 and RC4 are missing on purpose: certpipe never writes them.
OPENSSL_PBE = {
    "pbe-sha1-3des": "PBE-SHA1-3DES",
    "aes-128-cbc": "AES-128-CBC",
    "aes-192-cbc": "AES-192-CBC",
    "aes-256-cbc": "AES-256-CBC",
    "none": "NONE",
}
MAC_DIGESTS = ("sha1", "sha256", "sha384", "sha512")


@dataclass(frozen=True)
class Pkcs12Algorithms:
    """Certificate encryption, key encryption and MAC digest, in pipeline terms."""

    certificates: str
    key: str
    mac: str

    def flags(self) -> list[str]:
        return ["-certpbe", OPENSSL_PBE[self.certificates], "-keypbe", OPENSSL_PBE[self.key],
                "-macalg", self.mac]

    def describe(self) -> str:
        return (f"certificates {self.certificates}, key {self.key}, "
                f"MAC {self.mac.upper().replace('SHA', 'SHA-')}")


# compat: PBE-SHA1-3DES for key and certificates with a SHA-1 MAC, which
# every Windows version imports and OpenSSL 3 writes without the legacy
# provider. modern: AES-256-CBC with PBKDF2 (hmacWithSHA256) and a SHA-256
# MAC, which Windows imports from Windows 10 1709 and Server 2019 on.
PROFILES = {
    "compat": Pkcs12Algorithms("pbe-sha1-3des", "pbe-sha1-3des", "sha1"),
    "modern": Pkcs12Algorithms("aes-256-cbc", "aes-256-cbc", "sha256"),
}


def expected_encryption(value: str, iterations: int) -> Encryption:
    """Return what read_pfx reports for an encryption the pipeline requests."""
    if value == "none":
        return NOT_ENCRYPTED
    if value == "pbe-sha1-3des":
        return Encryption("pkcs12-pbe", "pbeWithSHA1And3-KeyTripleDES-CBC",
                          "1.2.840.113549.1.12.1.3", "3DES", None, iterations)
    return Encryption("pbes2", "PBES2", "1.2.840.113549.1.5.13", value.upper(),
                      "hmacWithSHA256", iterations)


@dataclass(frozen=True)
class Pkcs12Step(Step):
    kind = "pkcs12"

    name: str
    key: str
    key_passphrase: SecretRef | None
    cert: str
    chain: str | None
    chain_include: str | None  # None: the chain file as it is
    friendly_name: str | None
    password: SecretRef
    targets: tuple[str, ...]
    profile: str  # compat, modern or custom
    profile_given: bool  # False when certpipe picked the profile (from targets or default)
    algorithms: Pkcs12Algorithms
    iterations: int | None
    nomaciter: bool
    csp: str | None
    out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Pkcs12Step":
        targets = settings.get("target", [])
        targets = (targets,) if isinstance(targets, str) else tuple(dict.fromkeys(targets))
        unknown = [t for t in targets if t not in TARGETS]
        if unknown:
            raise PipelineError(f"target {unknown[0]!r} is unknown; known targets: "
                                f"{', '.join(TARGETS)}")
        profile = settings.get("profile")
        custom = {k: settings[k] for k in ("cert_encryption", "key_encryption", "mac")
                  if k in settings}
        if custom and profile not in (None, "custom"):
            raise PipelineError(f"{', '.join(custom)} apply only to profile: custom; remove "
                                f"them or set profile: custom")
        if profile == "custom" or custom:
            missing = [k for k in ("cert_encryption", "key_encryption", "mac") if k not in custom]
            if missing:
                raise PipelineError(f"profile: custom needs {', '.join(missing)}")
            algorithms = Pkcs12Algorithms(custom["cert_encryption"], custom["key_encryption"],
                                          custom["mac"])
            profile = "custom"
        else:
            if profile is None:
                profile = recommended_profile([TARGETS[t] for t in targets])
            algorithms = PROFILES[profile]
        if algorithms.key == "none":
            raise PipelineError("key_encryption: none would store the private key in plain; "
                                "choose an encryption")
        friendly_name = settings.get("friendly_name")
        if friendly_name is not None:
            reject_control_chars(friendly_name, "friendly_name")
        csp = settings.get("csp")
        if csp is not None:
            reject_control_chars(csp, "csp")
        step = cls(
            name=settings["name"],
            key=settings["key"],
            key_passphrase=secret_ref(settings, "key_passphrase"),
            cert=settings["cert"],
            chain=settings.get("chain"),
            chain_include=settings.get("chain_include"),
            friendly_name=friendly_name,
            password=SecretRef(settings["password"]),
            targets=targets,
            profile=profile,
            profile_given="profile" in settings or bool(custom),
            algorithms=algorithms,
            iterations=settings.get("iterations"),
            nomaciter=settings.get("nomaciter", False),
            csp=csp,
            out=settings["out"],
        )
        step.check_targets()
        return step

    def check_targets(self) -> None:
        """Raise PipelineError when a named target cannot import what the settings ask for."""
        if self.chain_include not in (None, *CHAIN_INCLUDE):
            raise PipelineError(f"chain_include {self.chain_include!r} is unknown")
        if self.iterations is not None and not 1 <= self.iterations <= MAX_ITERATIONS:
            raise PipelineError(f"iterations must be between 1 and {MAX_ITERATIONS}")
        expected = self.expected()
        for name in self.targets:
            verdict = judge(expected, TARGETS[name])
            if verdict.importable:
                continue
            fix = f"use profile: {TARGETS[name].profile}"
            if (self.iterations or 0) > WINDOWS_ITERATION_LIMIT and "windows" in name:
                fix += f" and at most {WINDOWS_ITERATION_LIMIT} iterations"
            raise PipelineError(
                f"target {name} ({TARGETS[name].title}) {verdict.status} with "
                f"{self._chosen()}: {'; '.join(verdict.reasons)}. {fix.capitalize()}, or "
                f"remove the profile setting to let the target choose"
            )

    def _chosen(self) -> str:
        if self.profile == "custom":
            return f"the custom algorithms ({self.algorithms.describe()})"
        return f"profile {self.profile} ({self.algorithms.describe()})"

    def expected(self) -> Algorithms:
        """The algorithms the exported file must use, as read_pfx reports them."""
        iterations = self.iterations or DEFAULT_ITERATIONS
        mac_iterations = 1 if self.nomaciter else iterations
        return Algorithms(
            certificates=(expected_encryption(self.algorithms.certificates, iterations),),
            keys=(expected_encryption(self.algorithms.key, iterations),),
            mac=Mac(self.algorithms.mac, mac_iterations, b"", b""),
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
            "chain_include": self.chain_include,
            "targets": list(self.targets),
            "profile": self.profile,
            "algorithms": [self.algorithms.certificates, self.algorithms.key, self.algorithms.mac],
            "iterations": self.iterations,
            "nomaciter": self.nomaciter,
            "csp": self.csp,
        }

    def export_args(self, openssl: Any, key: str, bundle: str, name: str, out: str,
                    passin: bool) -> list[str]:
        """Build the ``pkcs12 -export`` arguments this openssl accepts for the settings.

        Raise OpenSSLNotUsable (exit 2) when the openssl cannot write what the
        settings ask for.
        """
        caps = openssl.capabilities
        iterations = self.iterations or DEFAULT_ITERATIONS
        args = ["pkcs12", "-export", "-inkey", key, "-in", bundle, "-name", name]
        args += self.algorithms.flags()
        if caps.pkcs12_iter:
            args += ["-iter", str(iterations)]  # explicit, so that a new default changes nothing
        else:
            openssl.require(iterations == caps.pkcs12_default_iterations,
                            f"step '{self.name}': iterations: {iterations}",
                            "OpenSSL 3.0 or newer (pkcs12 -iter)")
        if self.nomaciter:
            args.append("-nomaciter")  # after -iter, which would reset the MAC count
        if self.csp:
            openssl.require(caps.pkcs12_csp, f"step '{self.name}': csp",
                            "OpenSSL, or LibreSSL before 4.0 (pkcs12 -CSP)")
            args += ["-CSP", self.csp]
        args += ["-passout", f"env:{PASSOUT_VAR}" if not self.password.is_none else "pass:"]
        if passin:
            args += ["-passin", f"env:{PASSIN_VAR}"]
        return args + ["-out", out]

    def commands(self, paths: Mapping[str, str], friendly_name: str | None = None,
                 openssl: Any = None) -> list[Action]:
        """Return the export call; *paths* needs key, cert, out, and chain when it has certificates.

        Without *friendly_name* and the pipeline's own, the name shows as a
        placeholder, because the default is read from the certificate.
        Without *openssl*, the options are those OpenSSL 3 accepts. A run
        joins leaf and chain into one file for ``-in``. The listed form gives
        the chain with ``-certfile``, which yields the same bags in the same order.
        """
        name = self.friendly_name or friendly_name or "<CN> <expiry date YYYY-MM-DD>"
        if openssl is None:
            openssl = OpenSSL("openssl", OPENSSL_3)
        args = self.export_args(openssl, paths["key"], paths["cert"], name, paths["out"],
                                self.key_passphrase is not None)
        if paths.get("chain"):
            at = args.index("-name")
            args[at:at] = ["-certfile", paths["chain"]]
        return [Command(tuple(args), output=paths["out"], output_mode=0o600,
                        passin=self.key_passphrase,
                        passout=None if self.password.is_none else self.password)]

    def run(self, ctx: StepContext) -> StepResult:
        passphrase = read_secret(ctx, self.key_passphrase, f"passphrase of {self.key}")
        material = load_material(ctx, key=self.key, key_passphrase=passphrase, cert=self.cert,
                                 chain=self.chain, chain_include=self.chain_include)
        password = read_secret(ctx, self.password, f"password for {self.out}", confirm=True)
        assert password is not None and material.leaf is not None
        name = self.friendly_name or default_friendly_name(material.leaf)
        result = StepResult(notes=list(material.notes))
        result.notes += self._target_notes()

        out = ctx.path(self.out)
        # openssl reads leaf and chain from one PEM file that certpipe writes, so
        # that DER, PKCS#7 or CRLF inputs and the chain_include choice all work.
        bundle = ctx.state_dir() / f"{self.name}.certificates.pem"
        try:
            atomic_write(bundle, certificates_pem([material.leaf, *material.chain]))
            with atomic_output(out, mode=0o600) as temp:
                args = self.export_args(ctx.openssl, str(material.key_path), str(bundle), name,
                                        str(temp), passphrase is not None)
                ctx.openssl.run(args, step=self.name, passin=passphrase,
                                passout=None if self.password.is_none else password,
                                timeout=ctx.timeout)
                info = self.check_algorithms(temp, out, password.value, ctx)
                verify_pfx(temp, out, password.value, material.key, material.leaf,
                           material.chain, name)
                self._check_attributes(info, out, name)
                moved = keep_other_key(out, material.key.public_key(),
                                       lambda p: _pfx_key(p, password.value), ctx.now)
                if moved:
                    result.notes.append(moved)
        finally:
            bundle.unlink(missing_ok=True)
        result.made.append(self.out)
        found = info.algorithms()
        result.checks += [
            f".pfx opens with the password from {self.password.describe()}",
            f"read back: certificates {found.certificates[0].describe()}; key "
            f"{found.keys[0].describe()}; MAC {found.mac.describe() if found.mac else 'none'}",
            *(f"importable by {TARGETS[t].title}" for t in self.targets),
            f".pfx holds the key, the leaf and {len(material.chain)} chain certificate(s) "
            f"in order",
            f"friendly name {name!r}",
        ]
        return result

    def _target_notes(self) -> list[str]:
        if self.targets:
            return []
        if not self.profile_given:
            return [f"no target named: wrote profile {self.profile} ({self.algorithms.describe()}"
                    f"), which every Windows version imports. Which algorithms a .pfx may use "
                    f"depends on the Windows version: name it (target: windows-server-2019, "
                    f"say) to get a file made for it"]
        verdict = judge(self.expected(), TARGETS["windows-any"])
        if verdict.importable:
            return []
        return [f"warning: no target named, and {self._chosen()} is not imported by Windows "
                f"Server 2016 and older or Windows 10 before 1709 (IIS there says the password "
                f"is incorrect); name the target, or use profile: compat for every Windows"]

    def check_algorithms(self, path: Path, shown: Path, password: bytes,
                         ctx: StepContext) -> PfxInfo:
        """Read the written file's algorithms and fail unless they are those asked for."""
        try:
            info = read_pfx(path.read_bytes(), str(shown), password)
        except WrongPassword:
            raise CheckFailed(f"{shown}: the .pfx openssl wrote does not open with the password "
                              f"from {self.password.describe()}") from None
        except ArtifactError as exc:
            raise CheckFailed(f"the .pfx openssl wrote cannot be read back: {exc}") from None
        openssl = f"{ctx.openssl.path} ({ctx.openssl.version.short})"
        if info.password_form == "bytes":
            raise CheckFailed(
                f"{shown}: {openssl} made the MAC from the password's bytes, not its characters, "
                f"as LibreSSL and OpenSSL before 1.1.0 do with non-ASCII passwords; Windows and "
                f"Java would call the password wrong. Use an ASCII password or OpenSSL 1.1.1 or "
                f"newer"
            )
        problems = compare_algorithms(self.expected(), info)
        if problems:
            raise CheckFailed(
                f"{shown}: {openssl} did not write what {self._chosen()} asks for: "
                f"{'; '.join(problems)}. The file was not kept"
            )
        for name in self.targets:
            verdict = judge(info.algorithms(), TARGETS[name])
            if not verdict.importable:
                raise CheckFailed(f"{shown}: {verdict.describe()}")
        return info

    def _check_attributes(self, info: PfxInfo, shown: Path, name: str) -> None:
        keys = info.bags("shrouded key")
        if self.csp and [bag.csp_name for bag in keys] != [self.csp]:
            raise CheckFailed(f"{shown}: the key bag lacks the Microsoft CSP name {self.csp!r}")
        if [bag.friendly_name for bag in keys] != [name]:
            raise CheckFailed(f"{shown}: the key bag's friendly name is not {name!r}")


def compare_algorithms(expected: Algorithms, info: PfxInfo) -> list[str]:
    """List every difference between the expected algorithms and those in *info*."""
    found = info.algorithms()
    problems = []
    if found.certificates_assumed:
        problems.append("some encrypted contents could not be decrypted")
    want_cert, want_key = expected.certificates[0], expected.keys[0]
    for encryption in found.certificates:
        if not _same(encryption, want_cert):
            problems.append(f"certificates: expected {want_cert.describe()}, found "
                            f"{encryption.describe()}")
    if not found.certificates:
        problems.append("no certificates found")
    if len(found.keys) != 1:
        problems.append(f"expected one key bag, found {len(found.keys)}")
    for encryption in found.keys:
        if not _same(encryption, want_key):
            problems.append(f"key: expected {want_key.describe()}, found {encryption.describe()}")
    if any(bag.key_decrypts is not True for bag in info.bags("shrouded key")):
        problems.append("the key bag does not decrypt with the password")
    for encryption in found.others:
        problems.append(f"unexpected contents: {encryption.describe()}")
    want_mac, mac = expected.mac, found.mac
    assert want_mac is not None
    if mac is None:
        problems.append("the file has no MAC")
    elif mac.pbmac1 or mac.digest != want_mac.digest or mac.iterations != want_mac.iterations:
        problems.append(f"MAC: expected {want_mac.describe()}, found {mac.describe()}")
    return problems


def _same(found: Encryption, wanted: Encryption) -> bool:
    return (found.scheme, found.cipher, found.prf, found.iterations) == (
        wanted.scheme, wanted.cipher, wanted.prf, wanted.iterations) or (
        found.scheme == wanted.scheme == "none")


def default_friendly_name(leaf: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else leaf.subject.rfc4514_string()
    return f"{cn} {leaf.not_valid_after_utc:%Y-%m-%d}"


def _pfx_key(path: Path, password: bytes) -> Any:
    from certpipe.artifacts.intake import load_pkcs12_file

    return load_pkcs12_file(path, password).key


def verify_pfx(path: Path, shown: Path, password: bytes, key: Any, leaf: x509.Certificate,
               chain: list[x509.Certificate], name: str) -> None:
    """Read the .pfx back and check it contains exactly key, leaf and chain."""
    from certpipe.artifacts import checks
    from certpipe.artifacts.intake import load_pkcs12_file
    from certpipe.artifacts.keys import cert_fingerprint

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
