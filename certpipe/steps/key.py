"""Generate a private key with ``openssl genpkey``; an existing fitting key is kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from certpipe.artifacts.checks import check_key_spec
from certpipe.artifacts.keys import describe_key_type, public_key_fingerprint, read_private_key
from certpipe.errors import ArtifactError, CheckFailed
from certpipe.fsutil import KEY_MODE, atomic_output
from certpipe.steps.base import Step, StepContext, StepResult


@dataclass(frozen=True)
class PrivateKeyStep(Step):
    kind = "private_key"

    name: str
    algorithm: str
    bits: int | None
    curve: str | None
    out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "PrivateKeyStep":
        rsa = settings["algorithm"] == "rsa"
        return cls(
            name=settings["name"],
            algorithm=settings["algorithm"],
            bits=settings.get("bits", 2048) if rsa else None,
            curve=None if rsa else settings.get("curve", "P-256"),
            out=settings["out"],
        )

    def outputs(self) -> dict[str, str]:
        return {"out": self.out}

    def settings(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "bits": self.bits, "curve": self.curve}

    def genpkey_args(self, out: str) -> list[str]:
        if self.algorithm == "rsa":
            return ["genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{self.bits}",
                    "-out", out]
        return ["genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{self.curve}",
                "-pkeyopt", "ec_param_enc:named_curve", "-out", out]

    def run(self, ctx: StepContext) -> StepResult:
        path = ctx.path(self.out)
        result = StepResult()
        if path.exists() or path.is_symlink():
            if not ctx.rekey:
                return self._keep_existing(path, result)
            backup = path.with_name(
                f"{path.name}.replaced-{ctx.now:%Y%m%dT%H%M%SZ}"
            )
            os.replace(path, backup)
            result.notes.append(f"--rekey: the old key was moved to {backup}")

        with atomic_output(path, KEY_MODE) as temp:
            ctx.openssl.run(self.genpkey_args(str(temp)), step=self.name, timeout=ctx.timeout)
            key = self._read(temp, path)
            check_key_spec(key, path, self.algorithm, self.bits, self.curve)
        result.made.append(self.out)
        result.checks.append(
            f"key is {describe_key_type(key)}, public key SHA-256 "
            f"{public_key_fingerprint(key.public_key())}"
        )
        return result

    def _keep_existing(self, path: Any, result: StepResult) -> StepResult:
        try:
            key = read_private_key(path)
        except ArtifactError as exc:
            raise CheckFailed(
                f"{exc}. certpipe never overwrites an existing key file: move {path} away "
                f"(or run with --rekey, which keeps it as a backup) to make a new key"
            ) from None
        check_key_spec(key, path, self.algorithm, self.bits, self.curve)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            result.notes.append(
                f"{path} is readable by others (mode {mode:03o}); run chmod 600 on it"
            )
        result.kept.append(self.out)
        result.checks.append(
            f"existing key is {describe_key_type(key)}, public key SHA-256 "
            f"{public_key_fingerprint(key.public_key())}"
        )
        return result

    @staticmethod
    def _read(path: Any, shown: Any) -> Any:
        try:
            return read_private_key(path)
        except ArtifactError as exc:
            detail = str(exc).replace(str(path), str(shown))
            raise CheckFailed(f"openssl wrote an unreadable key: {detail}") from None
