"""Hand the CSR to an outside command and save the certificate it returns.

For CAs that are reached only through their own command-line tool (an
internal CA's client, Vault, step-ca, an ACME client that accepts a CSR).
The command is an argument list run without a shell. ``{csr}`` and ``{out}``
are replaced by absolute paths, so a substituted value can never start with
``-`` and be read as an option. Secrets reach the command only through the
variables its ``environment`` names: the command inherits certpipe's
environment without any variable the pipeline reads a secret from and
without the variables certpipe hands openssl its passwords in. The output is checked to be
certificates for the CSR's key and saved as the reply that a following
``ca_reply`` step takes in with its full checks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from certpipe.errors import ArtifactError, CertpipeError, CheckFailed, PipelineError
from certpipe.fsutil import atomic_write
from certpipe.secrets import Secret, SecretRef, mask_secrets
from certpipe.steps.base import InputRef, Step, StepContext, StepResult

log = logging.getLogger("certpipe.steps.command_ca")

PLACEHOLDERS = ("csr", "out")
# Where certpipe puts passwords for openssl (certpipe.openssl.PASSIN_VAR and
# PASSOUT_VAR); a value left there by a calling certpipe must not reach the CA tool.
OPENSSL_PASSWORD_VARIABLES = frozenset({"CERTPIPE_PASSIN", "CERTPIPE_PASSOUT"})
OUTPUT_LIMIT = 2000  # characters of the command's output shown in an error message
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when the command times out

# One pass over an argument: an escaped brace, a {name} placeholder, or a
# lone brace. A single pass means text substituted for {csr} is never
# scanned again, even if the path itself contains "{out}".
_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

# One piece of a compiled argument: ("text", literal) or ("placeholder", name).
Part = tuple[str, str]


class CommandFailed(CertpipeError):
    """The CA command could not be started, failed, timed out or returned no certificate."""


def compile_argument(text: str, index: int) -> tuple[Part, ...]:
    """Split *text* into literal and placeholder parts, raising PipelineError on a bad brace."""
    if "\x00" in text:
        raise PipelineError(f"command[{index}] contains a NUL byte")
    parts: list[Part] = []
    literal = ""
    position = 0
    for match in _TOKEN_RE.finditer(text):
        literal += text[position:match.start()]
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal += token[0]
            continue
        name = match.group(1)
        if name is None:
            raise PipelineError(
                f"command[{index}] {text!r} has a lone {token!r}; write {token * 2} for a "
                f"literal brace"
            )
        if name not in PLACEHOLDERS:
            raise PipelineError(
                f"command[{index}] {text!r}: unknown placeholder {{{name}}}; the placeholders "
                f"are {{csr}} and {{out}} (write {{{{ and }}}} for literal braces)"
            )
        if literal:
            parts.append(("text", literal))
            literal = ""
        parts.append(("placeholder", name))
    literal += text[position:]
    if literal:
        parts.append(("text", literal))
    return tuple(parts)


def expand_argument(parts: Sequence[Part], values: dict[str, str]) -> str:
    return "".join(values[value] if kind == "placeholder" else value for kind, value in parts)


@dataclass(frozen=True)
class CommandCaStep(Step):
    kind = "command_ca"

    name: str
    csr: str
    command: tuple[str, ...]
    arguments: tuple[tuple[Part, ...], ...]
    environment: tuple[tuple[str, SecretRef], ...]
    stdin: str
    timeout: float | None
    out: str
    # Environment variables that the whole pipeline reads secrets from; set
    # after loading by with_pipeline_secrets.
    pipeline_secret_env: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "CommandCaStep":
        command = tuple(settings["command"])
        arguments = tuple(compile_argument(arg, i) for i, arg in enumerate(command))
        if any(kind == "placeholder" for kind, _ in arguments[0]):
            raise PipelineError(
                f"command[0] {command[0]!r} must name the program; {{csr}} and {{out}} may "
                f"only appear in the arguments after it"
            )
        environment = tuple(
            (name, SecretRef(source)) for name, source in settings.get("environment", {}).items()
        )
        timeout = settings.get("timeout")
        return cls(
            name=settings["name"],
            csr=settings["csr"],
            command=command,
            arguments=arguments,
            environment=environment,
            stdin=settings.get("stdin", "none"),
            timeout=None if timeout is None else float(timeout),
            out=settings["out"],
        )

    def with_pipeline_secrets(self, env_names: frozenset[str]) -> "CommandCaStep":
        return dataclasses.replace(self, pipeline_secret_env=env_names)

    def command_environment(self, secrets: list[tuple[str, Secret]]) -> dict[str, str]:
        """Return certpipe's environment without secret sources, plus the step's *secrets*.

        Every env:NAME source of the pipeline (this step's own included) and
        the openssl password variables are removed, so a secret reaches the
        command only under a name this step's ``environment`` gives it.
        """
        withheld = self.pipeline_secret_env | OPENSSL_PASSWORD_VARIABLES
        withheld |= {ref.env_name for _, ref in self.environment if ref.env_name}
        env = {key: value for key, value in os.environ.items() if key not in withheld}
        env.update({name: os.fsdecode(secret.value) for name, secret in secrets})
        return env

    @property
    def reply_on_stdout(self) -> bool:
        return not any(part == ("placeholder", "out") for arg in self.arguments for part in arg)

    def inputs(self) -> list[InputRef]:
        return [(("csr",), self.csr)]

    def outputs(self) -> dict[str, str]:
        return {"out": self.out}

    def settings(self) -> dict[str, Any]:
        # Secret sources by name only; a new secret value alone does not
        # request a new certificate.
        return {
            "command": list(self.command),
            "environment": {name: ref.source for name, ref in self.environment},
            "stdin": self.stdin,
        }

    def run(self, ctx: StepContext) -> StepResult:
        from certpipe.artifacts import checks
        from certpipe.artifacts.intake import read_csr
        from certpipe.artifacts.keys import public_key_fingerprint

        result = StepResult()
        csr_path = Path(os.path.abspath(ctx.path(self.csr)))
        try:
            csr = read_csr(csr_path)
        except ArtifactError as exc:
            raise CheckFailed(str(exc)) from None
        checks.check_csr_signature(csr, csr_path)

        secrets = self._read_secrets(ctx)
        env = self.command_environment(secrets)
        program = self._resolve_program(ctx, env)
        saved_output, duration = self._call_command(
            ctx, program, [secret for _, secret in secrets], csr_path, env)

        contents = self._check_reply(csr, csr_path, saved_output)
        atomic_write(ctx.path(self.out), saved_output.read_bytes())
        saved_output.unlink()
        result.notes += contents.notes
        result.checks.append(f"command {Path(program).name} exited 0 in {duration:.2f} s")
        result.checks.append(
            f"its reply contains a certificate for the CSR's public key (SHA-256 "
            f"{public_key_fingerprint(csr.public_key())})"
        )
        result.made.append(self.out)
        return result

    def _call_command(self, ctx: StepContext, program: str, secrets: list[Secret],
                      csr_path: Path, env: dict[str, str]) -> tuple[Path, float]:
        """Run the command and move the reply it made to .certpipe/STEP.command-output.

        Return that path and the command's duration in seconds.
        """
        timeout = self.timeout if self.timeout is not None else ctx.timeout
        saved_output = ctx.state_dir() / f"{self.name}.command-output"
        saved_output.unlink(missing_ok=True)

        with tempfile.TemporaryDirectory(prefix=f"{self.name}.", dir=ctx.state_dir()) as temp:
            # Absolute, because the command runs inside the work directory and
            # a path relative to certpipe's own folder would point elsewhere.
            folder = Path(os.path.abspath(temp))
            # The reply keeps the output's file name (tools may choose the
            # format by its extension), in a folder of its own so that it can
            # never be one of the stream files.
            reply = folder / "reply" / Path(self.out).name
            reply.parent.mkdir()
            values = {"csr": str(csr_path), "out": str(reply)}
            argv = [program] + [expand_argument(parts, values) for parts in self.arguments[1:]]
            call = _CommandCall(argv, secrets)
            stdout = reply if self.reply_on_stdout else folder / "stdout"
            stderr = folder / "stderr"
            started = time.monotonic()
            code, timed_out = call.run(
                cwd=Path(os.path.abspath(ctx.workdir)), env=env,
                stdin=csr_path if self.stdin == "csr" else None,
                stdout=stdout, stderr=stderr, timeout=timeout,
            )
            duration = time.monotonic() - started

            other_output = None if self.reply_on_stdout else stdout
            if timed_out:
                raise CommandFailed(call.describe(
                    f"the command did not finish within {timeout:g} "
                    f"second{'' if timeout == 1 else 's'} and was stopped; "
                    f"raise the step's 'timeout' if the CA is slow", stderr, other_output))
            if code != 0:
                reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                raise CommandFailed(call.describe(f"the command {reason}", stderr, stdout))
            log.debug("[%s] command exit 0 in %.3f s; stderr: %s", self.name, duration,
                      call.excerpt(stderr) or "(empty)")
            self._check_written(call, reply, stderr, other_output)
            os.replace(reply, saved_output)
        return saved_output, duration

    def _read_secrets(self, ctx: StepContext) -> list[tuple[str, Secret]]:
        found = []
        for name, ref in self.environment:
            secret = ctx.secret(ref)
            assert secret is not None
            secret.check_passable()
            found.append((name, secret))
        return found

    def _resolve_program(self, ctx: StepContext, env: dict[str, str]) -> str:
        program = self.command[0]
        if "/" not in program:
            found = shutil.which(program, path=env.get("PATH", os.defpath))
            if found is None:
                raise CommandFailed(
                    f"command[0]: program {program!r} not found on PATH; install it or give "
                    f"its full path"
                )
            return found
        path = Path(os.path.abspath(ctx.path(program)))
        hint = ("; a relative program path is relative to the work directory, so give an "
                "absolute path (a variable set with --set helps)"
                if not Path(program).expanduser().is_absolute() else "")
        if not path.exists():
            raise CommandFailed(f"command[0]: program {path} not found{hint}")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise CommandFailed(f"command[0]: {path} is not an executable file; check its "
                                f"mode (chmod +x) or run it through its interpreter")
        return str(path)

    def _check_written(self, call: "_CommandCall", reply: Path, stderr: Path,
                       stdout: Path | None) -> None:
        from certpipe.artifacts.intake import MAX_ARTIFACT_BYTES

        where = "on standard output" if self.reply_on_stdout else "at {out}"
        if not reply.exists() and not reply.is_symlink():
            raise CommandFailed(call.describe(
                f"the command exited with code 0 but wrote no file at {{out}} ({reply}); "
                f"make it write the certificate to the path given as {{out}}", stderr, stdout))
        if reply.is_symlink() or not reply.is_file():
            raise CommandFailed(call.describe(
                f"the command left something other than a regular file at {{out}} ({reply}); "
                f"make it write the certificate itself there, not a link or a folder",
                stderr, stdout))
        size = reply.stat().st_size
        if size == 0:
            raise CommandFailed(call.describe(
                f"the command exited with code 0 but returned nothing {where}", stderr, stdout))
        if size > MAX_ARTIFACT_BYTES:
            raise CommandFailed(call.describe(
                f"the command returned {size} bytes {where}, more than the maximum of "
                f"{MAX_ARTIFACT_BYTES} for a certificate reply", stderr, stdout))

    def _check_reply(self, csr: Any, csr_path: Path, saved_output: Path) -> Any:
        from certpipe.artifacts.chain import find_leaf
        from certpipe.artifacts.intake import read_certificates
        from certpipe.artifacts.keys import public_key_fingerprint

        try:
            contents = read_certificates(saved_output)
        except ArtifactError as exc:
            raise CheckFailed(
                f"the command's output is not a certificate reply: {exc}. The output is kept "
                f"as {saved_output} for inspection"
            ) from None
        if find_leaf(contents.certs, csr.public_key()) is None:
            found_certs = "; ".join(
                f"{cert.subject.rfc4514_string()!r} (public key SHA-256 "
                f"{public_key_fingerprint(cert.public_key())})"
                for cert in contents.certs[:5]
            )
            raise CheckFailed(
                f"the command's reply contains no certificate for {csr_path} (public key "
                f"SHA-256 {public_key_fingerprint(csr.public_key())}); it contains "
                f"{found_certs}. The CA answered another request, or returned only its own "
                f"certificates. The output is kept as {saved_output} for inspection"
            )
        return contents


class _CommandCall:
    """One run of the CA command, with its argument list and the secrets to mask."""

    def __init__(self, argv: list[str], secrets: list[Secret]):
        self.argv = argv
        self.secrets = [secret.value for secret in secrets if secret.value]

    def run(self, *, cwd: Path, env: dict[str, str], stdin: Path | None, stdout: Path,
            stderr: Path, timeout: float) -> tuple[int, bool]:
        """Run the command with its streams in files; return (exit code, timed out)."""
        log.debug("running %s (timeout %g s)", self.format(), timeout)
        with contextlib.ExitStack() as stack:
            stdin_file = stack.enter_context(open(stdin or os.devnull, "rb"))
            stdout_file = stack.enter_context(open(stdout, "wb"))
            stderr_file = stack.enter_context(open(stderr, "wb"))
            try:
                # A new session: the command has no terminal to prompt on, and
                # a timeout can stop everything it started through the group.
                process = subprocess.Popen(
                    self.argv, stdin=stdin_file, stdout=stdout_file, stderr=stderr_file,
                    cwd=cwd, env=env, start_new_session=True, close_fds=True,
                )
            except OSError as exc:
                raise CommandFailed(
                    f"the command could not be started: {exc.strerror}\n"
                    f"  command: {self.format()}"
                ) from None
            try:
                return process.wait(timeout=timeout), False
            except subprocess.TimeoutExpired:
                _stop_group(process)
                return process.returncode, True
            except BaseException:
                _stop_group(process)  # Ctrl-C: leave nothing running
                raise

    def format(self) -> str:
        # Not masked: secrets reach the command through its environment, never its arguments.
        return " ".join(shlex.quote(arg) for arg in self.argv)

    def excerpt(self, path: Path | None) -> str:
        """Return the end of an output file, secrets masked, cut to OUTPUT_LIMIT characters."""
        if path is None or not path.exists():
            return ""
        size = path.stat().st_size
        with path.open("rb") as handle:
            # Read a margin more than the limit so a secret that straddles the
            # cut is still masked before the text is shortened.
            margin = OUTPUT_LIMIT * 4 + max((len(s) for s in self.secrets), default=0)
            handle.seek(max(0, size - margin))
            data = handle.read()
        data = mask_secrets(data, self.secrets)
        text = data.decode("utf-8", "replace").replace("\x00", "\\0").strip()
        if size > len(data) or len(text) > OUTPUT_LIMIT:
            text = text[-OUTPUT_LIMIT:]
            text = f"[output cut to its last {OUTPUT_LIMIT} characters]\n{text}"
        return text

    def describe(self, summary: str, stderr: Path | None, stdout: Path | None) -> str:
        lines = [summary, f"  command: {self.format()}"]
        for label, path in (("stderr", stderr), ("stdout", stdout)):
            text = self.excerpt(path)
            if text:
                lines.append(f"  {label}:")
                lines += ["    " + line for line in text.splitlines()]
        return "\n".join(lines)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the command and everything it started: SIGTERM, then SIGKILL after a grace."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)
    # Children that outlived the command or ignored SIGTERM are still in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
