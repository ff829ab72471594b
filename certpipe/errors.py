"""Exception hierarchy and the exit codes the CLI maps them to."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE in sysexits.h
EXIT_PENDING = 75
EXIT_INTERRUPTED = 130


class CertpipeError(Exception):
    """Base of every error certpipe reports to the user without a traceback.

    The message must never contain a secret: callers build it from file
    names, fingerprints and the names of secret sources only.
    """

    exit_code = EXIT_FAILED


class UsageError(CertpipeError):
    """Invalid command-line usage or environment (exit 2)."""

    exit_code = EXIT_INVALID


class PipelineError(CertpipeError):
    """The pipeline file cannot be loaded, validated or resolved (exit 2)."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        super().__init__(message)

    def __str__(self) -> str:
        if not self.problems:
            return self.args[0]
        return "\n".join([self.args[0], *("  " + p for p in self.problems)])


class OpenSSLNotUsable(CertpipeError):
    """The openssl binary is missing, broken or too old (exit 2)."""

    exit_code = EXIT_INVALID


class StepFailed(CertpipeError):
    """A step or a check after it failed (exit 1)."""

    def __init__(self, step: str, message: str):
        self.step = step
        self.detail = message
        super().__init__(f"step '{step}' failed: {message}")


class ArtifactError(CertpipeError):
    """A file cannot be read as the artifact a step expects."""


class CheckFailed(CertpipeError):
    """An artifact check found a problem."""


class Pending(CertpipeError):
    """The run waits for an input from outside, such as the CA's reply (exit 75)."""

    exit_code = EXIT_PENDING
