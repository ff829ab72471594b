"""Stand-ins for the openssl binary: a recorder that passes calls on, and fault injectors.

Both are small scripts written into a test's temporary folder and given to
certpipe with ``--openssl``. ``openssl version`` always reaches the real
binary, so version detection passes and the fault hits the step under test.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

REAL_OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

RECORDER = """\
#!{python}
import json, os, sys
with open({log!r}, "a", encoding="utf-8") as handle:
    handle.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ)}},
                            ensure_ascii=False) + "\\n")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""

# Each fault is shell code run in place of the openssl subcommand named in
# FAULT_COMMAND; "$out" is the value after -out, when the call has one.
FAULTS = {
    "crash": "kill -SEGV $$",
    "hang": "exec sleep 600",
    "silent-failure": "exit 1",
    "garbage-output": (
        "printf 'PK\\003\\004\\377\\376\\000\\033[31m<html>Segmentation\\n' >&2; "
        "i=0; while [ $i -lt 300 ]; do printf 'noise %d \\377\\n' $i >&2; i=$((i+1)); done; "
        "printf '\\033[2J\\033]0;title\\007 end\\n' >&2; exit 3"
    ),
    "no-output-file": "[ -n \"$out\" ] && rm -f \"$out\"; exit 0",
    "empty-output-file": "[ -n \"$out\" ] && : > \"$out\"; exit 0",
    "garbage-output-file": (
        "[ -n \"$out\" ] && printf '\\060\\202\\377\\377garbage' > \"$out\"; "
        "printf 'not PEM at all\\n'; exit 0"
    ),
    "echo-secrets": (
        "printf 'pass in: %s / pass out: %s\\n' \"$CERTPIPE_PASSIN\" \"$CERTPIPE_PASSOUT\" >&2; "
        "exit 1"
    ),
}

INJECTOR = """\
#!/bin/sh
if [ "$1" != {command} ]; then
    exec {real} "$@"
fi
out=""
previous=""
for arg in "$@"; do
    [ "$previous" = "-out" ] && out="$arg"
    previous="$arg"
done
{fault}
"""


def _write_script(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def write_recorder(folder: Path) -> tuple[Path, Path]:
    """Write a recording openssl into *folder*; return the script and its log."""
    log = folder / "openssl-calls.jsonl"
    script = RECORDER.format(python=sys.executable, log=str(log), real=REAL_OPENSSL)
    return _write_script(folder / "openssl", script), log


def read_calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def write_injector(folder: Path, command: str, fault: str) -> Path:
    """Write an openssl that runs *fault* in place of subcommand *command*."""
    script = INJECTOR.format(command=_quote(command), real=_quote(REAL_OPENSSL),
                             fault=FAULTS[fault])
    return _write_script(folder / "openssl", script)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
