"""A fake openssl for tests: records every call, passes it on to the real binary,
and on request stops at one subcommand so a test can kill or interrupt the run
(or, with ``silent``, exits 0 there without writing anything)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

REAL_OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

FAKE = """\
#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_OPENSSL_LOG"
if [ -n "${FAKE_OPENSSL_STOP_AT:-}" ] && [ "$1" = "$FAKE_OPENSSL_STOP_AT" ]; then
    if [ "${FAKE_OPENSSL_STOP_WHEN:-before}" = silent ]; then
        exit 0
    fi
    if [ "${FAKE_OPENSSL_STOP_WHEN:-before}" = after ]; then
        "$FAKE_OPENSSL_REAL" "$@" || exit $?
    fi
    echo $$ > "$FAKE_OPENSSL_MARK"
    exec sleep 60
fi
exec "$FAKE_OPENSSL_REAL" "$@"
"""


class FakeOpenSSL:
    """The fake binary and the files it writes in *folder*."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "openssl"
        self.path.write_text(FAKE, encoding="utf-8")
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)
        self.log = folder / "calls.log"
        self.mark = folder / "stopped.pid"
        self.log.touch()

    def env(self, stop_at: str | None = None, when: str = "before") -> dict[str, str]:
        """Return the environment that makes certpipe use the fake."""
        env = {**os.environ, "CERTPIPE_OPENSSL": str(self.path),
               "FAKE_OPENSSL_LOG": str(self.log), "FAKE_OPENSSL_MARK": str(self.mark),
               "FAKE_OPENSSL_REAL": REAL_OPENSSL}
        if stop_at:
            env["FAKE_OPENSSL_STOP_AT"] = stop_at
            env["FAKE_OPENSSL_STOP_WHEN"] = when
        return env

    def calls(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines()

    def wait_until_stopped(self, process: subprocess.Popen, limit: float = 60.0) -> int:
        """Wait until the fake sleeps at its stop point; return the sleeping process's id."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.mark.exists() and self.mark.read_text().strip():
                return int(self.mark.read_text())
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"certpipe ended ({process.returncode}) before the fake "
                                     f"openssl stopped:\n{out}\n{err}")
            time.sleep(0.02)
        raise AssertionError("the fake openssl never reached its stop point")


def certpipe_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "certpipe", *(str(a) for a in args)]
