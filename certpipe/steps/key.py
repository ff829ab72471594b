"""Generate a private key with ``openssl genpkey``; an existing fitting key is kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from certpipe.errors import ArtifactError, CheckFailed
from certpipe.fsutil import KEY_MODE
from certpipe.secrets import SecretRef
from certpipe.steps.base import Action, Command, Step, StepContext, StepResult, execute
from certpipe.steps.base import secret_ref


@dataclass(frozen=True)
class PrivateKeyStep(Step):
    kind = "private_key"
    key_outputs = ("out",)

    name: str
    algorithm: str
    bits: int | None
    curve: str | None
    # Used only to read an existing encrypted key. A new key is written unencrypted.
    key_passphrase: SecretRef | None
    out: str

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "PrivateKeyStep":
        rsa = settings["algorithm"] == "rsa"
        return cls(
            name=settings["name"],
            algorithm=settings["algorithm"],
            bits=settings.get("bits", 2048) if rsa else None,
            curve=None if rsa else settings.get("curve", "P-256"),
            key_passphrase=secret_ref(settings, "key_passphrase"),
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

    def commands(self, paths: Mapping[str, str]) -> list[Action]:
        """Return the ``genpkey`` call; *paths* needs ``out``."""
        return [Command(tuple(self.genpkey_args(paths["out"])), output=paths["out"],
                        output_mode=KEY_MODE)]

    def run(self, ctx: StepContext) -> StepResult:
        from certpipe.artifacts.checks import check_key_spec
        from certpipe.artifacts.keys import describe_key_type, public_key_fingerprint

        path = ctx.path(self.out)
        result = StepResult()
        replacing = path.exists() or path.is_symlink()
        if replacing and not ctx.rekey:
            return self._keep_existing(ctx, path, result)
        found: list[Any] = []

        def check(command: Command, temp: Path) -> None:
            key = self._read(temp, path)
            check_key_spec(key, path, self.algorithm, self.bits, self.curve)
            found.append(key)
            if replacing:
                # Keep the old key under a second name before the new one
                # takes its place, so that a kill at any moment leaves it.
                backup = _link_backup(path, ctx.now)
                result.notes.append(f"--rekey: the old key was moved to {backup}")

        execute(ctx, self.name, self.commands({"out": str(path)}), check)
        key = found[0]
        result.made.append(self.out)
        result.checks.append(
            f"key is {describe_key_type(key)}, public key SHA-256 "
            f"{public_key_fingerprint(key.public_key())}"
        )
        return result

    def _keep_existing(self, ctx: StepContext, path: Any, result: StepResult) -> StepResult:
        from certpipe.artifacts.checks import check_key_spec
        from certpipe.artifacts.keys import KeyPassphraseMissing, describe_key_type, public_key_fingerprint, read_private_key

        try:
            key = read_private_key(path, ctx.secret(self.key_passphrase))
        except KeyPassphraseMissing as exc:
            raise CheckFailed(str(exc)) from None
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
        from certpipe.artifacts.keys import read_private_key

        try:
            return read_private_key(path)
        except ArtifactError as exc:
            detail = str(exc).replace(str(path), str(shown))
            raise CheckFailed(f"openssl wrote an unreadable key: {detail}") from None


def _link_backup(path: Path, now: Any) -> Path:
    """Hard-link *path* to a new, unused backup name and return that name."""
    stem = f"{path.name}.replaced-{now:%Y%m%dT%H%M%SZ}"
    for number in range(1, 1000):
        backup = path.with_name(stem if number == 1 else f"{stem}-{number}")
        try:
            os.link(path, backup)
        except FileExistsError:
            continue
        return backup
    raise CheckFailed(f"cannot find a free backup name for {path}; clean up {stem}*")
