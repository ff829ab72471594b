"""Which PKCS#12 algorithms each target imports, and a judge that explains a refusal.

Sources for the Windows rules (see docs/pkcs12-profiles.md for more):

- AES256-SHA256 (PBES2 with AES-256-CBC and hmacWithSHA256, SHA-256 MAC)
  needs Windows 10 1709 or Windows Server 2019:
  https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/ns-wincrypt-pkcs12_pbes2_export_params
- Windows Server 2016 and older report such a file as a wrong password:
  https://github.com/openssl/openssl/issues/27035,
  https://github.com/kaikramer/keystore-explorer/issues/318
- Windows rejects more than 600,000 iterations and logs "Iteration count
  doesn't lie in expected range. Maximum permissible value: 600000"
  (https://github.com/hwdsl2/setup-ipsec-vpn/issues/414). .NET applies the
  same limit since update KB5025823, as cited in
  https://github.com/openssl/openssl/issues/21103.
- OpenSSL 3 reads RC2, RC4 and single DES only with ``-legacy``:
  https://docs.openssl.org/3.0/man1/openssl-pkcs12/
- Java writes PBES2/AES-256 with HMAC-SHA256 by default since JDK 16
  (https://github.com/openjdk/jdk/pull/473), so it reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from certpipe.artifacts.pbe import Encryption, Mac
    from certpipe.artifacts.pfx_info import Algorithms

WINDOWS_ITERATION_LIMIT = 600_000

WINDOWS_LEGACY = "windows-legacy"
WINDOWS_MODERN = "windows-modern"
OPENSSL_3 = "openssl-3"
OPENSSL_1 = "openssl-1.1.1"
JAVA = "java"


@dataclass(frozen=True)
class Target:
    """A consumer of PKCS#12 files, and the profile certpipe writes for it."""

    name: str
    title: str
    family: str
    profile: str


def _targets() -> dict[str, Target]:
    legacy = [
        ("windows-any", "every Windows version"),
        ("windows-server-2008", "Windows Server 2008"),
        ("windows-server-2008-r2", "Windows Server 2008 R2"),
        ("windows-server-2012", "Windows Server 2012"),
        ("windows-server-2012-r2", "Windows Server 2012 R2"),
        ("windows-server-2016", "Windows Server 2016"),
        ("windows-7", "Windows 7"),
        ("windows-8.1", "Windows 8.1"),
        ("windows-10-before-1709", "Windows 10 before version 1709"),
    ]
    modern = [
        ("windows-10", "Windows 10 version 1709 or later"),
        ("windows-11", "Windows 11"),
        ("windows-server-2019", "Windows Server 2019"),
        ("windows-server-2022", "Windows Server 2022"),
        ("windows-server-2025", "Windows Server 2025"),
    ]
    found = {name: Target(name, title, WINDOWS_LEGACY, "compat") for name, title in legacy}
    found.update({name: Target(name, title, WINDOWS_MODERN, "modern") for name, title in modern})
    found["openssl-3"] = Target("openssl-3", "OpenSSL 3 without -legacy", OPENSSL_3, "modern")
    found["openssl-1.1.1"] = Target("openssl-1.1.1", "OpenSSL 1.1.1", OPENSSL_1, "modern")
    found["java"] = Target("java", "Java with AES-256 PKCS#12 defaults (JDK 16 and later)",
                           JAVA, "modern")
    return found


TARGETS: dict[str, Target] = _targets()

IMPORTABLE = "importable"
NOT_IMPORTABLE = "not importable"
UNVERIFIED = "not known to be importable"


@dataclass(frozen=True)
class Verdict:
    target: Target
    status: str
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def importable(self) -> bool:
        return self.status == IMPORTABLE

    def describe(self) -> str:
        text = f"{self.target.name}: {self.status}"
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        return text


_LEGACY_WINDOWS_PBES2 = (
    "Windows reads PBES2/AES only from Windows 10 1709 and Windows Server 2019 on; older "
    "versions report the file as 'The specified network password is not correct'"
)


def judge(algorithms: "Algorithms", target: Target) -> Verdict:
    """Decide whether *target* imports a file protected by *algorithms*, with the reasons."""
    failures: list[str] = []
    unknown: list[str] = []
    warnings: list[str] = []
    parts = [("certificates", e) for e in algorithms.certificates]
    parts += [("key", e) for e in algorithms.keys] + [("contents", e) for e in algorithms.others]
    # Group the parts that share an algorithm and a reason: "certificates and key: ...".
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for part, encryption in parts:
        status, reason = _judge_encryption(encryption, target)
        group = grouped.setdefault((status, encryption.describe(), reason), [])
        if part not in group:
            group.append(part)
        if encryption.is_weak:
            warnings.append(f"{part}: {encryption.describe()} is weak encryption")
        if part == "key" and encryption.scheme == "none":
            warnings.append("the private key is stored without encryption")

    for (status, description, reason), names in grouped.items():
        text = f"{' and '.join(names)}: {description}: {reason}"
        if status == NOT_IMPORTABLE:
            failures.append(text)
        elif status == UNVERIFIED:
            unknown.append(text)

    status, reason = _judge_mac(algorithms.mac, target)
    if status == NOT_IMPORTABLE:
        failures.append(reason)
    elif status == UNVERIFIED:
        unknown.append(reason)
    if failures:
        return Verdict(target, NOT_IMPORTABLE, tuple(failures + unknown), _unique(warnings))
    if unknown:
        return Verdict(target, UNVERIFIED, tuple(unknown), _unique(warnings))
    return Verdict(target, IMPORTABLE, (), _unique(warnings))


def _unique(texts: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(texts))


def _judge_encryption(encryption: "Encryption", target: Target) -> tuple[str, str]:
    family = target.family
    windows = family in (WINDOWS_LEGACY, WINDOWS_MODERN)
    if windows and (encryption.iterations or 0) > WINDOWS_ITERATION_LIMIT:
        return NOT_IMPORTABLE, (f"more than {WINDOWS_ITERATION_LIMIT} iterations, which Windows "
                                f"rejects ('Iteration count doesn't lie in expected range')")
    if encryption.scheme == "none":
        if family in (OPENSSL_3, OPENSSL_1, JAVA):
            return IMPORTABLE, ""
        return UNVERIFIED, "no Windows documentation covers unencrypted PKCS#12 contents"
    if encryption.scheme in ("unknown", "pbes1"):
        return UNVERIFIED, "an algorithm certpipe has no import rule for"

    cipher = encryption.cipher or ""
    if encryption.scheme == "pkcs12-pbe":
        return _judge_pkcs12_pbe(cipher, family)

    # PBES2
    if family == WINDOWS_LEGACY:
        return NOT_IMPORTABLE, _LEGACY_WINDOWS_PBES2
    if family == WINDOWS_MODERN:
        if cipher == "AES-256-CBC" and encryption.prf == "hmacWithSHA256":
            return IMPORTABLE, ""
        return UNVERIFIED, ("Windows documents only AES256-SHA256 (PBES2 with AES-256-CBC and "
                            "hmacWithSHA256)")
    if family == JAVA:
        if cipher.startswith("AES") and encryption.prf == "hmacWithSHA256":
            return IMPORTABLE, ""
        return UNVERIFIED, "certpipe knows Java to read PBES2 with AES and HMAC-SHA256 only"
    if family == OPENSSL_3 and cipher in ("DES-CBC", "RC2-CBC"):
        return NOT_IMPORTABLE, f"OpenSSL 3 reads {cipher} only with -legacy"
    if cipher.startswith("cipher ") or (encryption.prf or "").startswith(("PRF ", "KDF ")):
        return UNVERIFIED, "an algorithm certpipe has no import rule for"
    return IMPORTABLE, ""


def _judge_pkcs12_pbe(cipher: str, family: str) -> tuple[str, str]:
    if cipher == "3DES":
        return IMPORTABLE, ""
    if family == OPENSSL_3 and cipher.startswith(("RC2", "RC4")):
        return NOT_IMPORTABLE, (f"OpenSSL 3 reads {cipher} only with -legacy (the legacy "
                                f"provider); without it, it fails with 'unsupported'")
    if family in (OPENSSL_3, OPENSSL_1):
        return IMPORTABLE, ""
    if cipher.startswith("RC2") and family in (WINDOWS_LEGACY, WINDOWS_MODERN):
        return IMPORTABLE, ""
    return UNVERIFIED, f"no import of {cipher} is documented for this target"


def _judge_mac(mac: "Mac | None", target: Target) -> tuple[str, str]:
    family = target.family
    if mac is None:
        if family in (OPENSSL_3, OPENSSL_1):
            return IMPORTABLE, ""
        return UNVERIFIED, "the file has no MAC, and no import without one is documented"
    windows = family in (WINDOWS_LEGACY, WINDOWS_MODERN)
    if windows and mac.iterations > WINDOWS_ITERATION_LIMIT:
        return NOT_IMPORTABLE, (f"MAC: more than {WINDOWS_ITERATION_LIMIT} iterations, which "
                                f"Windows rejects ('Iteration count doesn't lie in expected "
                                f"range')")
    if mac.pbmac1:
        if family == OPENSSL_3:
            return UNVERIFIED, "MAC: PBMAC1 is read by OpenSSL 3.4 and later only"
        if family == OPENSSL_1:
            return NOT_IMPORTABLE, "MAC: OpenSSL 1.1.1 cannot verify a PBMAC1 MAC"
        return UNVERIFIED, "MAC: no support for PBMAC1 (RFC 9579) is documented for this target"
    digest = mac.digest
    if digest == "sha1":
        return IMPORTABLE, ""
    if family == WINDOWS_LEGACY:
        if digest == "sha256":
            return UNVERIFIED, ("MAC: SHA-256, which Windows documents together with AES only "
                                "from Windows 10 1709 and Windows Server 2019 on")
        return UNVERIFIED, f"MAC: {digest}, which no Windows documentation covers"
    if family in (WINDOWS_MODERN, JAVA):
        if digest == "sha256":
            return IMPORTABLE, ""
        return UNVERIFIED, f"MAC: {digest} is not documented for this target"
    if digest in ("sha224", "sha256", "sha384", "sha512", "sha512_224", "sha512_256", "md5"):
        return IMPORTABLE, ""
    return UNVERIFIED, f"MAC: {digest} is not known to certpipe"


def recommended_profile(targets: list[Target]) -> str:
    """Return the profile every one of *targets* imports; compat without targets."""
    if not targets or any(t.profile == "compat" for t in targets):
        return "compat"
    return "modern"
