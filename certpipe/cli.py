"""Command-line interface: argument parsing, logging setup and exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from certpipe import __version__, lazylog
from certpipe.commands import COMMANDS
from certpipe.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, CertpipeError

EPILOG = """\
exit codes:
  0   done
  1   a step or a check failed, or another run holds the work directory
  2   invalid pipeline, usage, or a missing or too old openssl
  70  internal error: a bug in certpipe; a crash log is written to the temporary folder
  75  pending: waiting for an outside input such as the CA's reply
  130 interrupted (Ctrl-C)
With several certificates, certpipe run exits with the worst code of any
certificate, in the order 130, 70, 2, 1, 75, 0.
"""


def version_text() -> str:
    """Return certpipe's version and the openssl it would use, without failing on openssl."""
    import platform
    import shutil

    from certpipe.openssl import OpenSSL

    lines = [f"certpipe {__version__} (Python {platform.python_version()})"]
    if not os.environ.get("CERTPIPE_OPENSSL") and shutil.which("openssl") is None:
        lines.append("openssl: not found")
    else:
        try:
            found = OpenSSL.discover()
            lines.append(f"openssl: {found.version} at {found.path}")
        except CertpipeError as exc:
            lines.append(f"openssl: not usable: {exc}")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version``: print version_text() and exit 0, like argparse's own version action."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; only the *selected* command's module is imported for its options."""
    parser = argparse.ArgumentParser(
        prog="certpipe",
        description="Run checked certificate pipelines (key, CSR, CA reply, chain, PFX) "
                    "with the system openssl.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction,
                        help="show certpipe's version and the openssl it finds, then exit")
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="show checks and every openssl command")
    verbosity.add_argument("-q", "--quiet", action="store_true",
                           help="print only failures and pending steps")
    common.add_argument("--openssl", metavar="PATH",
                        help="openssl binary to use (default: $CERTPIPE_OPENSSL, then PATH)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text.capitalize(),
                                    parents=[common], epilog=EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == selected:
            importlib.import_module(module_name).register(sub)
    return parser


def configure_logging(verbose: bool, quiet: bool, lazy: bool = False) -> None:
    """Send certpipe's log records of the chosen level to stderr.

    With *lazy*, logging is set up (and imported) only when a record of that
    level is written or a module calls lazylog.setup(); ``run`` uses this.
    """
    level = lazylog.DEBUG if verbose else (lazylog.ERROR if quiet else lazylog.WARNING)
    stream = sys.stderr

    def setup() -> None:
        import logging

        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("certpipe")
        root.handlers[:] = [handler]
        root.setLevel(level)
        root.propagate = False
        # sh logs every command line at INFO; certpipe logs its own.
        logging.getLogger("sh").setLevel(logging.WARNING)

    lazylog.configure(level, setup)
    if not lazy or verbose:
        lazylog.setup()


def _selected_command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _selected_command(argv)
    parser = build_parser(selected)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    configure_logging(args.verbose, args.quiet, lazy=args.command == "run")
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.main(args)
    except CertpipeError as exc:
        print(f"certpipe: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("certpipe: interrupted; files already made are kept, run again to go on",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    except OSError as exc:
        # Last resort: each known file problem has its own message where it happens.
        print(f"certpipe: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        log_path = write_crash_log(args.command)
        print(f"certpipe: internal error, this is a bug in certpipe; the details are in "
              f"{log_path}, please include that file when you report it", file=sys.stderr)
        return EXIT_INTERNAL


def describe_os_error(exc: OSError) -> str:
    """Return a one-line message with the failed operation's path and the errno text."""
    text = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    if paths:
        return f"{' -> '.join(paths)}: {text}"
    return text


def write_crash_log(command: str) -> str:
    """Write the current exception's traceback and the versions in use to a temporary file.

    Returns the file's path. The command line is not written: it may name
    files the user considers private, and the traceback is enough to debug.
    """
    import tempfile
    import traceback

    try:
        versions = version_text()
    except Exception as exc:  # the crash may come from the same place
        versions = f"certpipe {__version__} (Python {sys.version.split()[0]}); openssl: {exc!r}"
    header = [versions, f"command: certpipe {command}", ""]
    text = "\n".join(header) + traceback.format_exc()
    try:
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", prefix="certpipe-crash-",
                                             suffix=".log", delete=False)
        with handle:
            handle.write(text)
        return handle.name
    except OSError:
        sys.stderr.write(text)
        return "the traceback above (no temporary file could be written)"
