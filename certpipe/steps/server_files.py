"""Write the certificate and key files that servers other than IIS read.

One step kind with a ``format``:

- ``pem_fullchain``: leaf and chain in ``cert_out``, the key in ``key_out``
  (nginx ``ssl_certificate``/``ssl_certificate_key``, Apache 2.4.8 and later);
- ``pem_separate``: leaf, chain and key in three files (Apache before 2.4.8,
  ``SSLCertificateChainFile``);
- ``pem_combined``: leaf, chain and key in one file (HAProxy ``crt``);
- ``der_cert``: the leaf as DER (``.cer`` for Windows and Java imports);
- ``pkcs8_key``: the key as PKCS#8 PEM, encrypted with AES-256-CBC unless
  ``passphrase`` is ``none``.

PEM and DER files are written in-process from the checked certificates and
key, so these formats start no openssl process. Only an encrypted PKCS#8 key
is made by ``openssl pkcs8``. Every output is read back and compared.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certpipe.artifacts import asn1, pbe
from certpipe.artifacts.asn1 import DerError
from certpipe.errors import ArtifactError, CheckFailed, PipelineError
from certpipe.fsutil import FILE_MODE, KEY_MODE, atomic_output, atomic_write
from certpipe.openssl import PASSIN_VAR, PASSOUT_VAR
from certpipe.secrets import Secret, SecretRef
from certpipe.steps.base import InputRef, Step, StepContext, StepResult, secret_ref
from certpipe.steps.material import (
    CHAIN_INCLUDE, Material, certificates_pem, check_pem_text, keep_other_key, load_material,
    normalize_pem, read_secret,
)

if TYPE_CHECKING:
    from cryptography import x509


# Output settings each format writes, and which inputs it needs.
FORMATS: dict[str, dict[str, Any]] = {
    "pem_fullchain": {"outputs": ("cert_out", "key_out"), "needs": ("key", "cert")},
    "pem_separate": {"outputs": ("cert_out", "chain_out", "key_out"), "needs": ("key", "cert")},
    "pem_combined": {"outputs": ("out",), "needs": ("key", "cert")},
    "der_cert": {"outputs": ("out",), "needs": ("cert",)},
    "pkcs8_key": {"outputs": ("out",), "needs": ("key", "passphrase")},
}
OUTPUT_KEYS = ("cert_out", "chain_out", "key_out", "out")

PKCS8_CIPHER = "aes-256-cbc"
PKCS8_PRF = "hmacWithSHA256"
PKCS8_ITERATIONS = 2048  # PKCS5_DEFAULT_ITER of OpenSSL and LibreSSL


@dataclass(frozen=True)
class ServerFilesStep(Step):
    kind = "server_files"

    name: str
    format: str
    key: str | None
    key_passphrase: SecretRef | None
    cert: str | None
    chain: str | None
    chain_include: str | None  # None: the chain file as it is
    passphrase: SecretRef | None
    files: tuple[tuple[str, str], ...]  # (output setting, path)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "ServerFilesStep":
        form = settings["format"]
        spec = FORMATS.get(form)
        if spec is None:
            raise PipelineError(f"format {form!r} is unknown; use one of {', '.join(FORMATS)}")
        missing = [k for k in (*spec["needs"], *spec["outputs"]) if k not in settings]
        if missing:
            raise PipelineError(f"format {form} needs {', '.join(missing)}")
        extra = [k for k in OUTPUT_KEYS if k in settings and k not in spec["outputs"]]
        if "passphrase" in settings and form != "pkcs8_key":
            extra.append("passphrase")
        if form in ("der_cert", "pkcs8_key"):
            extra += [k for k in ("chain", "chain_include") if k in settings]
        if extra:
            raise PipelineError(f"{', '.join(extra)} do not apply to format {form}")
        files = tuple((k, settings[k]) for k in spec["outputs"])
        paths = [path for _, path in files]
        if len(set(paths)) != len(paths):
            raise PipelineError("two outputs of the step name the same file")
        if settings.get("key") in paths:
            raise PipelineError(f"an output would overwrite the key {settings['key']}")
        return cls(
            name=settings["name"],
            format=form,
            key=settings.get("key"),
            key_passphrase=secret_ref(settings, "key_passphrase"),
            cert=settings.get("cert"),
            chain=settings.get("chain"),
            chain_include=settings.get("chain_include"),
            passphrase=secret_ref(settings, "passphrase"),
            files=files,
        )

    def inputs(self) -> list[InputRef]:
        refs: list[InputRef] = []
        for setting in ("key", "cert", "chain"):
            value = getattr(self, setting)
            if value:
                refs.append(((setting,), value))
        return refs

    def outputs(self) -> dict[str, str]:
        return dict(self.files)

    def settings(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "chain_include": self.chain_include,
            "key_passphrase": None if self.key_passphrase is None else self.key_passphrase.source,
            "passphrase": None if self.passphrase is None else self.passphrase.source,
        }

    def run(self, ctx: StepContext) -> StepResult:
        if self.chain_include not in (None, *CHAIN_INCLUDE):
            raise PipelineError(f"chain_include {self.chain_include!r} is unknown")
        key_secret = read_secret(ctx, self.key_passphrase, f"passphrase of {self.key}")
        # A DER certificate and a key file hold no chain.
        single = self.format in ("der_cert", "pkcs8_key")
        material = load_material(ctx, key=self.key, key_passphrase=key_secret, cert=self.cert,
                                 chain=None if single else self.chain,
                                 chain_include="leaf" if single else self.chain_include)
        result = StepResult(notes=list(material.notes))
        if self.format == "pkcs8_key":
            self._write_pkcs8(ctx, material, key_secret, result)
            return result
        for setting, path in self.files:
            data, has_key = self._render(setting, material)
            self._write(ctx, setting, ctx.path(path), data, has_key, material, result)
            result.made.append(path)
        certs = len(material.chain) + (1 if material.leaf is not None else 0)
        result.checks.append(f"{self.format}: files read back hold the expected "
                             f"{certs} certificate(s)"
                             + (" and the key" if material.key is not None else ""))
        return result

    def _render(self, setting: str, material: Material) -> tuple[bytes, bool]:
        """Return the bytes for one output setting and whether they hold the private key."""
        from cryptography.hazmat.primitives.serialization import Encoding

        leaf = material.leaf
        assert leaf is not None
        if self.format == "der_cert":
            return leaf.public_bytes(Encoding.DER), False
        if setting == "key_out":
            return _key_pem(material.key), True
        if setting == "chain_out":
            if not material.chain:
                raise CheckFailed(
                    f"format pem_separate: there are no chain certificates to write to "
                    f"{dict(self.files)['chain_out']} (a self-signed leaf, no chain, or "
                    f"chain_include: leaf); use format pem_fullchain instead"
                )
            return certificates_pem(material.chain), False
        if self.format == "pem_separate":
            return certificates_pem([leaf]), False
        certs = certificates_pem([leaf, *material.chain])
        if self.format == "pem_combined":
            return certs + _key_pem(material.key), True
        return certs, False

    def _write(self, ctx: StepContext, setting: str, path: Path, data: bytes, has_key: bool,
               material: Material, result: StepResult) -> None:
        if self.format != "der_cert":
            check_pem_text(data, str(path))
        if has_key:
            moved = keep_other_key(path, material.key.public_key(), _first_key, ctx.now)
            if moved:
                result.notes.append(moved)
        atomic_write(path, data, mode=KEY_MODE if has_key else FILE_MODE)
        self._verify(setting, path, data, has_key, material)

    def _verify(self, setting: str, path: Path, data: bytes, has_key: bool,
                material: Material) -> None:
        """Read the written file back and compare certificates and key with the inputs."""
        from cryptography import x509

        from certpipe.artifacts.keys import cert_fingerprint, public_key_fingerprint

        written = path.read_bytes()
        if written != data:
            raise CheckFailed(f"{path}: the file on disk differs from what was written")
        if self.format == "der_cert":
            found = [x509.load_der_x509_certificate(written)]
            expected = [material.leaf]
        else:
            found = x509.load_pem_x509_certificates(written) if b"CERTIFICATE" in written else []
            expected = self._expected_certs(setting, material)
        if [cert_fingerprint(c) for c in found] != [cert_fingerprint(c) for c in expected]:
            raise CheckFailed(f"{path}: contains {len(found)} certificate(s), not the "
                              f"{len(expected)} expected in order")
        if has_key:
            key = _first_key(path)
            if public_key_fingerprint(key.public_key()) != public_key_fingerprint(
                    material.key.public_key()):
                raise CheckFailed(f"{path}: the key written is not the pipeline's key")

    def _expected_certs(self, setting: str, material: Material) -> list[x509.Certificate]:
        if setting == "key_out" or self.format == "pkcs8_key":
            return []
        if setting == "chain_out":
            return list(material.chain)
        if self.format == "pem_separate":
            return [material.leaf]
        return [material.leaf, *material.chain]

    def _write_pkcs8(self, ctx: StepContext, material: Material, key_secret: Secret | None,
                     result: StepResult) -> None:
        from certpipe.artifacts.keys import read_private_key

        setting, relative = self.files[0]
        path = ctx.path(relative)
        passphrase = read_secret(ctx, self.passphrase, f"passphrase for {relative}",
                                 confirm=True)
        assert passphrase is not None and material.key is not None
        moved = keep_other_key(path, material.key.public_key(),
                               lambda p: read_private_key(p, passphrase), ctx.now)
        if moved:
            result.notes.append(moved)
        if self.passphrase is not None and self.passphrase.is_none:
            data = _key_pem(material.key)
            check_pem_text(data, str(path))
            atomic_write(path, data, mode=KEY_MODE)
            self._verify(setting, path, data, True, material)
            result.notes.append(f"warning: {relative} holds the private key unencrypted "
                                f"(passphrase: none); keep it readable by its owner only")
            result.made.append(relative)
            result.checks.append("PKCS#8 key read back matches the pipeline's key")
            return
        openssl = ctx.openssl
        caps = openssl.capabilities
        args = ["pkcs8", "-topk8", "-in", str(material.key_path), "-v2", PKCS8_CIPHER]
        if caps.pkcs8_prf_and_iter:
            args += ["-v2prf", PKCS8_PRF, "-iter", str(PKCS8_ITERATIONS)]
        if key_secret is not None:
            args += ["-passin", f"env:{PASSIN_VAR}"]
        args += ["-passout", f"env:{PASSOUT_VAR}"]
        with atomic_output(path, KEY_MODE) as temp:
            openssl.run([*args, "-out", str(temp)], step=self.name, passin=key_secret,
                        passout=passphrase, timeout=ctx.timeout)
            data = normalize_pem(temp.read_bytes(), str(path))
            check_pem_text(data, str(path))
            temp.write_bytes(data)
            encryption = _check_pkcs8(data, path, passphrase, material,
                                      caps.pkcs8_prf_and_iter)
        result.made.append(relative)
        result.checks.append(f"PKCS#8 key read back: {encryption.describe()}, opens with the "
                             f"passphrase from {passphrase.ref.describe()} and matches the "
                             f"pipeline's key")


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import Encoding

    return key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _first_key(path: Path) -> Any:
    from certpipe.artifacts.keys import read_private_key
    from certpipe.artifacts.intake import read_contents

    contents = read_contents(path, "a private key")
    if contents.keys:
        return contents.keys[0]
    return read_private_key(path)


def _check_pkcs8(data: bytes, path: Path, passphrase: Secret, material: Material,
                 prf_chosen: bool) -> pbe.Encryption:
    """Check the algorithm and the key of an encrypted PKCS#8 file that openssl wrote."""
    from cryptography.hazmat.primitives import serialization

    from certpipe.artifacts.keys import public_key_fingerprint

    try:
        block = serialization.load_pem_private_key(data, passphrase.value)
    except (ValueError, TypeError):
        raise CheckFailed(f"{path}: the encrypted key openssl wrote does not open with the "
                          f"passphrase from {passphrase.ref.describe()}") from None
    if public_key_fingerprint(block.public_key()) != public_key_fingerprint(
            material.key.public_key()):
        raise CheckFailed(f"{path}: the key openssl wrote is not the pipeline's key")
    body = re.search(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----\n(.*?)-----END", data, re.S)
    if body is None:
        raise CheckFailed(f"{path}: openssl did not write an ENCRYPTED PRIVATE KEY block")
    try:
        info = asn1.sequence(asn1.parse_single(base64.b64decode(body.group(1)), "key"),
                            "EncryptedPrivateKeyInfo", 2)
        encryption = pbe.parse_algorithm(info[0], "EncryptedPrivateKeyInfo algorithm")
    except (DerError, ArtifactError) as exc:
        raise CheckFailed(f"{path}: the encrypted key cannot be parsed: {exc}") from None
    wanted_prf = PKCS8_PRF if prf_chosen else encryption.prf
    if (encryption.scheme, encryption.cipher, encryption.prf) != ("pbes2", "AES-256-CBC",
                                                                   wanted_prf):
        raise CheckFailed(f"{path}: expected PBES2 with AES-256-CBC and {wanted_prf}, "
                          f"found {encryption.describe()}")
    return encryption
