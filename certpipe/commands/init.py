"""``certpipe init``: write a commented starter pipeline that validates as written."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from importlib import resources
from pathlib import Path

from certpipe.errors import CertpipeError, PipelineError, UsageError

TEMPLATES = ("iis", "nginx", "haproxy")
DEFAULT_PATH = "certpipe.yaml"
FILE_PLACEHOLDER = "THIS_FILE"
MAX_CN_LENGTH = 64  # upper bound of commonName in RFC 5280
_HOST_LINE_RE = re.compile(r"^(  host: )www\.example\.test(?=\s)", re.MULTILINE)
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH, metavar="PATH",
                        help=f"file to write, or - for standard output (default: {DEFAULT_PATH})")
    parser.add_argument("--template", choices=TEMPLATES, default="iis",
                        help="iis: a .pfx for IIS (default); nginx: PEM certificate and chain; "
                             "haproxy: one PEM file with certificate and chain, key beside it")
    parser.add_argument("--host", metavar="NAME",
                        help="the server's DNS name to put in the pipeline "
                             "(default: www.example.test)")
    parser.add_argument("--schema", metavar="PATH_OR_URL",
                        help="schema the editor comment points at, such as a copy made with "
                             "'certpipe schema > certpipe.schema.json' in your repository "
                             "(default: the schema file of this installation)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def template_text(name: str) -> str:
    return resources.files("certpipe.templates").joinpath(f"{name}.yaml").read_text("utf-8")


def main(args: argparse.Namespace) -> int:
    to_stdout = args.path == "-"
    path = Path(args.path).expanduser()
    if not to_stdout:
        _check_target(path, args.force)
    text = render(args.template, path if not to_stdout else None, args.host, args.schema)
    _check_valid(text, args.template)
    if to_stdout:
        sys.stdout.write(text)
        return 0
    _write(path, text, args.force)
    quoted = shlex.quote(str(path))
    print(f"wrote {path} from the {args.template} template; edit host and subject, then run:\n"
          f"  certpipe validate {quoted}\n"
          f"  certpipe run {quoted} --workdir OUT")
    return 0


def render(template: str, path: Path | None, host: str | None, schema: str | None) -> str:
    """Return the template's text with the editor comment, file name and host filled in."""
    text = template_text(template)
    if host is not None:
        text = _HOST_LINE_RE.sub(lambda match: match.group(1) + _quote_host(host), text,
                                 count=1)
    file_name = shlex.quote(str(path)) if path is not None else "pipeline.yaml"
    text = text.replace(FILE_PLACEHOLDER, file_name)
    return f"# yaml-language-server: $schema={_schema_target(path, schema)}\n{text}"


def _quote_host(host: str) -> str:
    from certpipe.pipeline.validate import load_schema

    pattern = load_schema()["$defs"]["dns_name"]["pattern"]
    if not re.fullmatch(pattern, host) or len(host) > 253:
        raise UsageError(f"--host {host!r} is not a valid DNS name; give a name such as "
                         f"www.example.com or *.example.com")
    if len(host) > MAX_CN_LENGTH:
        raise UsageError(f"--host {host!r} is longer than {MAX_CN_LENGTH} characters, the "
                         f"maximum for the CN; give a shorter name and list the long one "
                         f"under subject_alt_names")
    return f'"{host}"' if host.startswith("*") else host


def _schema_target(path: Path | None, schema: str | None) -> str:
    if schema is not None:
        if _URL_RE.match(schema) or path is None:
            return schema
        start = os.path.abspath(path.parent)
        return Path(os.path.relpath(os.path.abspath(Path(schema).expanduser()), start)).as_posix()
    shipped = resources.files("certpipe.pipeline").joinpath("schema.json")
    return Path(str(shipped)).as_posix()


def _check_target(path: Path, force: bool) -> None:
    from certpipe.fsutil import blocked_folder_reason

    reason = blocked_folder_reason(path.parent)
    if reason:
        raise UsageError(f"cannot write {path}: {reason}; give a path in a folder")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name such as {path / DEFAULT_PATH}")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; choose another name, or pass --force to "
                         f"overwrite it")


def _check_valid(text: str, template: str) -> None:
    """Load the rendered text as certpipe run would; a failure is a bug in the template."""
    from certpipe.pipeline.model import load_pipeline

    with tempfile.TemporaryDirectory(prefix="certpipe-init-") as folder:
        candidate = Path(folder) / "pipeline.yaml"
        candidate.write_text(text, encoding="utf-8")
        try:
            load_pipeline(candidate)
        except PipelineError as exc:
            raise CertpipeError(f"the {template} template does not validate; this is a bug "
                                f"in certpipe, please report it:\n{exc}") from None


def _write(path: Path, text: str, force: bool) -> None:
    """Write *text* atomically; without *force*, never replace a file that appeared meanwhile."""
    from certpipe.fsutil import FILE_MODE, atomic_write, temp_path_for

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if force:
            atomic_write(path, text.encode("utf-8"))
            return
        temp = temp_path_for(path)
        atomic_write(temp, text.encode("utf-8"), mode=FILE_MODE)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}; give a path in a folder "
                         f"that you can write to") from None
    try:
        os.link(temp, path)  # fails with FileExistsError instead of replacing
    except FileExistsError:
        raise UsageError(f"{path} already exists; choose another name, or pass --force to "
                         f"overwrite it") from None
    except OSError:
        _write_exclusive(path, text)  # a file system without hard links
    finally:
        temp.unlink(missing_ok=True)


def _write_exclusive(path: Path, text: str) -> None:
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise UsageError(f"{path} already exists; choose another name, or pass --force to "
                         f"overwrite it") from None
    except OSError as exc:
        raise CertpipeError(f"cannot write {path}: {exc.strerror}") from None
