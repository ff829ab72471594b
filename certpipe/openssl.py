"""Find the openssl binary, learn its version, and run it through ``sh``.

Every call gets an argument list (no shell), a new session (so openssl can
never stop to prompt on the terminal), a timeout, and secrets only through
environment variables that the command line refers to as ``env:NAME``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from certpipe.errors import CertpipeError, OpenSSLNotUsable
from certpipe.secrets import Secret, mask_secrets

log = logging.getLogger("certpipe.openssl")

DEFAULT_TIMEOUT = 300.0
VERSION_TIMEOUT = 30.0  # seconds 'openssl version' may take
OUTPUT_LIMIT = 2000  # characters of openssl output kept in an error message

# Environment variables that carry secrets to openssl; they are set only in
# the child's environment and named on its command line as env:NAME.
PASSIN_VAR = "CERTPIPE_PASSIN"
PASSOUT_VAR = "CERTPIPE_PASSOUT"

_VERSION_RE = re.compile(
    r"^(?P<flavour>OpenSSL|LibreSSL)\s+(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)"
    r"(?P<letter>[a-z]*)(?P<suffix>[-+]\S*)?"
)
_LIBRARY_RE = re.compile(r"\(Library:\s*(?P<library>[^)]*)\)")

# Messages with which openssl rejects an option it does not know: OpenSSL 3
# ("Unknown option: -x", and "Unknown cipher: x" in pkcs12, which reads any
# unknown option as a cipher name), OpenSSL 1.1.1 and LibreSSL
# ("Unrecognized flag x").
_REJECTED_OPTION_RE = re.compile(
    r"(?:Unknown option:?|Unrecognized flag|unknown option|Unknown cipher:?)\s+'?-?(?P<option>[\w.-]+)"
)


@dataclass(frozen=True, order=True)
class Version:
    flavour: str
    major: int
    minor: int
    patch: int
    letter: str = ""
    text: str = field(default="", compare=False)
    # The library version when the binary prints one that differs, such as
    # "OpenSSL 3.0.2 (Library: OpenSSL 3.0.13)". Option choices follow the
    # command-line tool's own version, because the tool parses the options.
    library: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or self.short

    @property
    def short(self) -> str:
        """The flavour and number, such as ``OpenSSL 1.0.2k``."""
        return f"{self.flavour} {self.major}.{self.minor}.{self.patch}{self.letter}"

    @property
    def number(self) -> tuple[int, int, int, str]:
        return (self.major, self.minor, self.patch, self.letter)

    @property
    def is_openssl3(self) -> bool:
        return self.flavour == "OpenSSL" and self.major >= 3


def parse_version(text: str) -> Version | None:
    """Parse the output of ``openssl version``.

    The first line that starts with OpenSSL or LibreSSL counts, so that a
    warning printed before it does not hide the version.
    """
    for line in text.strip().splitlines():
        match = _VERSION_RE.match(line.strip())
        if match is None:
            continue
        library = _LIBRARY_RE.search(line)
        return Version(
            flavour=match["flavour"],
            major=int(match["major"]),
            minor=int(match["minor"]),
            patch=int(match["patch"]),
            letter=match["letter"],
            text=line.strip(),
            library=library["library"].strip() if library else "",
        )
    return None


def is_supported(version: Version) -> bool:
    if version.flavour == "LibreSSL":
        return (version.major, version.minor) >= (3, 0)
    return version.number >= (1, 1, 1, "")


SUPPORTED_TEXT = "OpenSSL 1.1.1 or newer (3.x recommended), or LibreSSL 3.0 or newer"


@dataclass(frozen=True)
class Capabilities:
    """Options and behaviour of one openssl command-line tool, known from its version.

    certpipe derives these from the one ``openssl version`` call of a run
    instead of probing ``openssl CMD -help`` for each option, because every
    probe is one more process (4 to 8 ms each on a 2-core machine). The
    options below changed only at the versions named here (sources: the
    pkcs12, pkcs8, req and x509 manual pages of OpenSSL 1.1.1 and 3.x, and
    src/usr.bin/openssl/*.c of LibreSSL). If a build still rejects an
    option, OpenSSL.run names it in its error.
    """

    pkcs12_iter: bool  # pkcs12 -iter N: OpenSSL 3.0 and later
    pkcs12_legacy: bool  # pkcs12 -legacy: OpenSSL 3.0 and later
    pkcs12_csp: bool  # pkcs12 -CSP: OpenSSL, LibreSSL before 4.0
    pkcs12_pbmac1: bool  # pkcs12 -pbmac1_pbkdf2: OpenSSL 3.4 and later
    pkcs8_prf_and_iter: bool  # pkcs8 -v2prf and -iter: OpenSSL, not LibreSSL
    no_encryption_flag: str  # "-noenc" (OpenSSL 3.0 and later) or "-nodes"
    x509_copy_extensions: bool  # x509 -req -copy_extensions: OpenSSL 3.0 and later
    genrsa_writes_pkcs8: bool  # genrsa output: PKCS#8 from OpenSSL 3.0, else PKCS#1
    # PKCS12_DEFAULT_ITER of all three flavours: the count pkcs12 uses
    # for encryption and MAC when it has no -iter option.
    pkcs12_default_iterations: int = 2048


def capabilities_for(version: Version) -> Capabilities:
    openssl3 = version.flavour == "OpenSSL" and version.major >= 3
    libressl = version.flavour == "LibreSSL"
    return Capabilities(
        pkcs12_iter=openssl3,
        pkcs12_legacy=openssl3,
        # NOTE: LibreSSL removed -CSP in August 2024; 4.0.0 (October 2024) is
        # the first release after that, inferred from the dates.
        pkcs12_csp=not libressl or version.major < 4,
        pkcs12_pbmac1=openssl3 and (version.major, version.minor) >= (3, 4),
        pkcs8_prf_and_iter=not libressl,
        no_encryption_flag="-noenc" if openssl3 else "-nodes",
        x509_copy_extensions=openssl3,
        genrsa_writes_pkcs8=openssl3,
    )


@dataclass(frozen=True)
class Outcome:
    """Result of one openssl call."""

    command: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration: float


class OpenSSLCallFailed(CertpipeError):
    """openssl exited non-zero, timed out or could not be started."""

    def __init__(self, summary: str, command: Sequence[str], output: str = ""):
        self.summary = summary
        self.command = tuple(command)
        self.output = output
        text = f"{summary}\n  command: {format_command(command)}"
        if output:
            text += "\n  openssl output:\n" + _indent(output, "    ")
        super().__init__(text)


def format_command(command: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(part)) for part in command)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


_CONTROL_RE = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _clip(data: bytes, secrets: Sequence[Secret]) -> str:
    data = mask_secrets(data, (secret.value for secret in secrets))
    text = data.decode("utf-8", "replace").replace("\x00", "\\0")
    # Terminal escapes and other control characters from a broken binary must
    # not reach the user's terminal or CI log as they are.
    text = _CONTROL_RE.sub(lambda match: f"\\x{ord(match.group(0)):02x}", text)
    if len(text) > OUTPUT_LIMIT:
        cut = len(text) - OUTPUT_LIMIT
        text = f"[{cut} earlier characters cut]\n" + text[-OUTPUT_LIMIT:]
    return text


class OpenSSL:
    """One openssl binary with its detected version."""

    def __init__(self, path: str, version: Version, source: str = "PATH"):
        self.path = path
        self.version = version
        self.source = source  # where the path came from: --openssl, CERTPIPE_OPENSSL or PATH
        self.capabilities = capabilities_for(version)
        self.calls = 0
        # Called with the running sh command once each call has started, so
        # the caller can work meanwhile; it must return before openssl is waited for.
        self.while_waiting: Callable[[Any], None] | None = None

    def describe(self) -> str:
        library = self.version.library
        same = not library or library.split()[:2] == self.version.text.split()[:2]
        shown = self.version.short if same else f"{self.version.short}, library {library}"
        return f"{self.path} ({shown}, from {self.source})"

    def require(self, available: bool, feature: str, needed: str) -> None:
        """Raise OpenSSLNotUsable (exit 2) when this openssl lacks *feature*."""
        if not available:
            raise OpenSSLNotUsable(
                f"{feature} needs {needed}, but the openssl binary {self.path} (from "
                f"{self.source}) is {self.version}; install a newer openssl and name it with "
                f"--openssl or CERTPIPE_OPENSSL, or change the setting"
            )

    @classmethod
    def discover(cls, explicit: str | None = None) -> "OpenSSL":
        """Locate openssl (explicit path, $CERTPIPE_OPENSSL, then PATH) and check its version.

        Raise OpenSSLNotUsable, which exits 2, naming the binary, where its
        path came from, what it is and what is needed.
        """
        path, source = locate(explicit)
        version = cls.probe_version(path, source)
        found = cls(path, version, source)
        log.info("using openssl %s", found.describe())
        return found

    @staticmethod
    def probe_version(path: str, source: str = "PATH") -> Version:
        import sh

        where = f"openssl binary {path} (from {source})"
        timed_out = threading.Event()
        try:
            result = sh.Command(path)(
                "version", _return_cmd=True, _bg=True, _bg_exc=False, _tty_out=False,
                _new_session=True, _env=dict(os.environ),
            )
            # sh's own _timeout polls every 0.1 s, which made this call take about
            # 100 ms longer (sh 2.4.0); a timer stops a hung binary instead, as in run().
            timer = threading.Timer(VERSION_TIMEOUT, _stop_group, (result, timed_out))
            timer.daemon = True
            timer.start()
            try:
                result.wait()
            except sh.ErrorReturnCode:
                raise
            except BaseException:
                _stop_group(result, None)  # Ctrl-C: do not leave it running
                raise
            finally:
                timer.cancel()
        except sh.CommandNotFound:
            raise OpenSSLNotUsable(f"{where} cannot be run; needed: {SUPPORTED_TEXT}") from None
        except sh.ErrorReturnCode as exc:
            if timed_out.is_set():
                raise OpenSSLNotUsable(
                    f"'{path} version' (from {source}) did not finish within "
                    f"{VERSION_TIMEOUT:g} seconds; needed: {SUPPORTED_TEXT}"
                ) from None
            code = exc.exit_code
            reason = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise OpenSSLNotUsable(
                f"'{path} version' (from {source}) {reason}; is it really openssl? "
                f"Needed: {SUPPORTED_TEXT}"
            ) from None
        except OSError as exc:
            raise OpenSSLNotUsable(
                f"{where} cannot be run: {exc.strerror}; needed: {SUPPORTED_TEXT}"
            ) from None
        text = result.stdout.decode("utf-8", "replace").strip()
        version = parse_version(text)
        if version is None:
            shown = text.splitlines()[0][:80] if text else "nothing"
            raise OpenSSLNotUsable(
                f"cannot tell the version of {where}: 'openssl version' printed {shown!r}; "
                f"needed: {SUPPORTED_TEXT}"
            )
        if not is_supported(version):
            raise OpenSSLNotUsable(
                f"{path} is {version}, which is too old; needed: {SUPPORTED_TEXT}. Install a "
                f"newer openssl and name it with --openssl or CERTPIPE_OPENSSL (this one came "
                f"from {source})"
            )
        return version

    def run(self, args: Sequence[str | Path], *, step: str,
            passin: Secret | None = None, passout: Secret | None = None,
            timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None,
            extra_env: Mapping[str, str] | None = None) -> Outcome:
        """Run ``openssl *args``; raise OpenSSLCallFailed on a non-zero exit or a timeout."""
        import sh

        command = ("openssl", *(str(arg) for arg in args))
        env = {k: v for k, v in os.environ.items() if k not in (PASSIN_VAR, PASSOUT_VAR)}
        secrets = []
        for var, secret in ((PASSIN_VAR, passin), (PASSOUT_VAR, passout)):
            if secret is not None:
                secret.check_passable()
                env[var] = os.fsdecode(secret.value)
                secrets.append(secret)
        if extra_env:
            env.update(extra_env)

        log.debug("[%s] %s", step, format_command(command))
        self.calls += 1
        started = time.monotonic()
        timed_out = threading.Event()
        try:
            # sh's own _timeout polls and adds about 100 ms to every call
            # (sh 2.4.0), so a timer kills the process group instead.
            process = sh.Command(self.path)(
                *command[1:], _return_cmd=True, _bg=True, _bg_exc=False, _tty_out=False,
                _new_session=True, _env=env, _in=stdin, _truncate_exc=False,
            )
        except sh.CommandNotFound:
            raise OpenSSLCallFailed(f"openssl binary {self.path} is gone", command) from None
        except OSError as exc:
            raise OpenSSLCallFailed(f"openssl could not be started: {exc.strerror}", command) from None

        def stop() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError, OSError):
                process.kill_group()

        timer = threading.Timer(timeout, stop)
        timer.daemon = True
        timer.start()
        try:
            if self.while_waiting is not None:
                self.while_waiting(process)
            process.wait()
        except sh.ErrorReturnCode as exc:
            if timed_out.is_set():
                raise OpenSSLCallFailed(
                    f"openssl did not finish within {timeout:g} seconds and was stopped; "
                    f"raise the pipeline's 'timeout' if the machine is slow", command,
                ) from None
            output = _clip(exc.stderr + exc.stdout, secrets)
            code = exc.exit_code
            reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            summary = f"openssl {reason}"
            rejected = _REJECTED_OPTION_RE.search(output)
            if rejected and f"-{rejected['option']}" in command:
                summary += (
                    f": {self.path} ({self.version.short}) rejected the option "
                    f"-{rejected['option']}, which certpipe chose for this version; this "
                    f"build lacks it, so use another openssl (--openssl or CERTPIPE_OPENSSL)"
                )
            raise OpenSSLCallFailed(summary, command, output) from None
        except BaseException:
            # Ctrl-C or another interruption: do not leave openssl running.
            stop()
            raise
        finally:
            timer.cancel()
        result = process
        _check_out_written(command, _clip(result.stderr + result.stdout, secrets))
        duration = time.monotonic() - started
        log.debug("[%s] exit 0 in %.3f s", step, duration)
        return Outcome(command, result.exit_code, result.stdout, result.stderr, duration)


def _stop_group(process: Any, timed_out: threading.Event | None) -> None:
    if timed_out is not None:
        timed_out.set()
    with contextlib.suppress(ProcessLookupError, OSError):
        process.kill_group()


def locate(explicit: str | None = None) -> tuple[str, str]:
    """Return the openssl binary to use and where its path came from.

    The order is *explicit* (--openssl), $CERTPIPE_OPENSSL, then PATH; the
    second value names the one used. Raise OpenSSLNotUsable when none is found.
    """
    source = "--openssl"
    wanted = explicit
    if not wanted:
        # An empty CERTPIPE_OPENSSL counts as unset, as in most shells' idioms.
        wanted = os.environ.get("CERTPIPE_OPENSSL") or None
        source = "CERTPIPE_OPENSSL"
    if wanted:
        return _resolve_binary(wanted, source), source
    found = shutil.which("openssl")
    if found is None:
        raise OpenSSLNotUsable(
            f"openssl not found on PATH; needed: {SUPPORTED_TEXT}. Install it "
            f"(Debian/Ubuntu: apt-get install openssl) or name the binary with "
            f"--openssl or CERTPIPE_OPENSSL"
        )
    return found, "PATH"


def _check_out_written(command: Sequence[str], output: str) -> None:
    """Raise OpenSSLCallFailed when openssl exited 0 but left its -out file missing or empty."""
    # The last -out is the option: certpipe puts it at the end, after any
    # value (a friendly name, say) that could itself read "-out".
    positions = [i for i, part in enumerate(command[:-1]) if part == "-out"]
    if not positions:
        return
    try:
        size = os.stat(command[positions[-1] + 1]).st_size
    except OSError:
        size = -1
    if size <= 0:
        state = "is empty" if size == 0 else "was not written"
        raise OpenSSLCallFailed(f"openssl exited with code 0, but its output file {state}",
                                command, output)


def _resolve_binary(wanted: str, source: str) -> str:
    """Return the path of *wanted*: a path with a slash, or a name looked up on PATH."""
    needed = f"needed: {SUPPORTED_TEXT}"
    if wanted != wanted.strip() or "\x00" in wanted:
        raise OpenSSLNotUsable(
            f"openssl binary {wanted!r} (from {source}) has leading or trailing spaces or a NUL "
            f"byte; give the path alone"
        )
    path = Path(wanted).expanduser()
    if os.sep not in wanted and not wanted.startswith("~"):
        found = shutil.which(wanted)
        if found is None:
            raise OpenSSLNotUsable(
                f"openssl binary {wanted!r} (from {source}) not found on PATH; {needed}"
            )
        return found
    if path.is_symlink() and not path.exists():
        raise OpenSSLNotUsable(
            f"openssl binary {path} (from {source}) is a symbolic link to "
            f"{os.readlink(path)}, which does not exist; {needed}"
        )
    if not path.exists():
        raise OpenSSLNotUsable(f"openssl binary {path} (from {source}) does not exist; {needed}")
    if path.is_dir():
        raise OpenSSLNotUsable(
            f"openssl binary {path} (from {source}) is a folder, not a program; {needed}"
        )
    if not os.access(path, os.X_OK):
        raise OpenSSLNotUsable(
            f"openssl binary {path} (from {source}) is not executable (chmod +x it); {needed}"
        )
    return str(path)
