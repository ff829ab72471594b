"""Passwords never reach an openssl command line, the output, the logs or a file.

The example pipelines run through a recording openssl that logs every
command line and environment and then hands the call to the real binary.
Each password source (env:, file:, none) is tried for the PFX password and
for the passphrase of an encrypted key, under umask 0 and 077.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certpipe.pipeline.validate import load_schema
from reliability.conftest import PIPELINES, needs_openssl
from reliability.fake_openssl import REAL_OPENSSL, read_calls, write_injector, write_recorder
from reliability.harness import TRACEBACK_MARK, run_certpipe, snapshot, tally

pytestmark = needs_openssl

SECRETS_TALLY = "secrets runs"
PFX_SECRET = "Pfx-S3cret $(id) ;'\"§ 42"
KEY_SECRET = "Key-S3cret `x` &|<> ü 17"
SECRET_VARS = {"CERTPIPE_PASSIN", "CERTPIPE_PASSOUT", "PFX_PASSWORD", "KEY_PASSPHRASE"}
PASSWORD_SOURCES = ["env", "file", "none"]
PASSPHRASE_SOURCES = ["plain key", "env", "file"]

ENCRYPTED_PIPELINE = """\
version: 1
name: encrypted-key
steps:
  - name: csr
    kind: csr
    key: enc.key
    key_passphrase: {passphrase}
    subject: {{CN: www.example.test}}
    out: site.csr
  - name: sign
    kind: local_ca
    csr: site.csr
    out: reply.p7b
  - name: reply
    kind: ca_reply
    reply: reply.p7b
    key: enc.key
    key_passphrase: {passphrase}
    csr: site.csr
    cert_out: site.crt
    chain_out: chain.pem
  - name: pfx
    kind: pkcs12
    key: enc.key
    key_passphrase: {passphrase}
    cert: site.crt
    chain: chain.pem
    password: {password}
    out: site.pfx
"""


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Collect every log record that reaches the root logger, at any level."""
    records: list[str] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collector(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def source_text(kind: str, variable: str, file_name: str) -> str:
    return {"env": f"env:{variable}", "file": f"file:{file_name}", "none": "none"}[kind]


def encodings(secret: str) -> list[bytes]:
    return [secret.encode("utf-8"), secret.encode("utf-16-le"), secret.encode("utf-16-be")]


def make_encrypted_key(path: Path) -> None:
    subprocess.run(
        [REAL_OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-aes-256-cbc", "-pass", "env:KEY_PASSPHRASE", "-out", str(path)],
        check=True, capture_output=True, env={**os.environ, "KEY_PASSPHRASE": KEY_SECRET},
    )
    path.chmod(0o600)


def prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str,
            passphrase: str) -> tuple[Path, Path, list[str]]:
    """Write the pipeline and the secret sources; return pipeline, work dir and secrets."""
    work = tmp_path / "work"
    work.mkdir()
    secrets = []
    if password != "none":
        secrets.append(PFX_SECRET)
    monkeypatch.setenv("PFX_PASSWORD", PFX_SECRET)
    monkeypatch.setenv("KEY_PASSPHRASE", KEY_SECRET)
    (work / "pfx-password.txt").write_text(PFX_SECRET + "\n", encoding="utf-8")
    (work / "key-passphrase.txt").write_text(KEY_SECRET + "\r\n", encoding="utf-8")
    password_source = source_text(password, "PFX_PASSWORD", "pfx-password.txt")
    if passphrase == "plain key":
        text = (PIPELINES / "iis-local-ca.yaml").read_text(encoding="utf-8")
        text = text.replace("env:PFX_PASSWORD", password_source)
    else:
        secrets.append(KEY_SECRET)
        make_encrypted_key(work / "enc.key")
        text = ENCRYPTED_PIPELINE.format(
            passphrase=source_text(passphrase, "KEY_PASSPHRASE", "key-passphrase.txt"),
            password=password_source,
        )
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(text, encoding="utf-8")
    return pipeline, work, secrets


def assert_no_secret_in_files(work: Path, secrets: list[str]) -> None:
    for path in sorted(work.rglob("*")):
        if not path.is_file() or path.name in ("pfx-password.txt", "key-passphrase.txt"):
            continue
        data = path.read_bytes()
        for secret in secrets:
            for encoded in encodings(secret):
                assert encoded not in data, f"{path} contains a password"


def assert_calls_keep_secrets(calls: list[dict], secrets: list[str]) -> None:
    for call in calls:
        command = " ".join(call["argv"])
        for secret in secrets:
            assert secret not in command, f"password on the command line: {call['argv'][0]}"
            holders = {name for name, value in call["env"].items() if secret in value}
            assert holders <= SECRET_VARS, f"password in environment variables {holders}"
        for variable in ("CERTPIPE_PASSIN", "CERTPIPE_PASSOUT"):
            if variable in call["env"]:
                assert f"env:{variable}" in call["argv"], (
                    f"{variable} given to 'openssl {call['argv'][0]}', which does not use it")


@pytest.mark.parametrize("mask", [0o000, 0o077], ids=["umask-000", "umask-077"])
@pytest.mark.parametrize("passphrase", PASSPHRASE_SOURCES)
@pytest.mark.parametrize("password", PASSWORD_SOURCES)
def test_secrets_stay_hidden(password: str, passphrase: str, mask: int, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch):
    pipeline, work, secrets = prepare(tmp_path, monkeypatch, password, passphrase)
    fake, log = write_recorder(tmp_path)

    with umask(mask), captured_logs() as records:
        outcome = run_certpipe("run", pipeline, "--workdir", work, "-v", "--openssl", fake)

    counts = tally(SECRETS_TALLY)
    counts.record(outcome, 0, False)
    calls = read_calls(log)
    counts.extra["openssl calls recorded"] += len(calls)
    assert outcome.exit_code == 0, outcome.err + outcome.crash
    assert TRACEBACK_MARK not in outcome.text
    assert "openssl" in outcome.err, "-v should log each openssl command"
    assert len(calls) >= 5, "the recording openssl should see every call"
    assert_calls_keep_secrets(calls, secrets)
    for secret in secrets:
        assert secret not in outcome.text
        assert not [record for record in records if secret in record]
    assert_no_secret_in_files(work, secrets)

    keys = [path for path in work.rglob("*.key") if path.name != "enc.key"]
    assert len(keys) == (3 if passphrase == "plain key" else 2), "site key and local CA keys"
    for path in [*keys, *work.glob("*.pfx")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} mode"
    pfx = next(work.glob("*.pfx"))
    password_bytes = PFX_SECRET.encode() if password != "none" else None
    bundle = pkcs12.load_pkcs12(pfx.read_bytes(), password_bytes)
    assert bundle.key is not None
    counts.extra["runs without a password found"] += 1


def test_wrong_passphrase_names_only_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pipeline, work, _ = prepare(tmp_path, monkeypatch, "env", "env")
    wrong = "Wrong-Pass-§-99"
    monkeypatch.setenv("KEY_PASSPHRASE", wrong)
    fake, log = write_recorder(tmp_path)
    before = snapshot(work)

    outcome = run_certpipe("run", pipeline, "--workdir", work, "-v", "--openssl", fake)

    tally(SECRETS_TALLY).record(outcome, 1, False)
    assert outcome.exit_code == 1, outcome.err + outcome.crash
    assert "step 'csr' failed" in outcome.err
    assert "from env:KEY_PASSPHRASE" in outcome.err
    assert wrong not in outcome.text
    assert KEY_SECRET not in outcome.text
    assert snapshot(work)["enc.key"] == before["enc.key"]
    assert read_calls(log) == [], "the key is read and rejected before any openssl call"


@pytest.mark.parametrize("passphrase", ["env", "file"])
def test_secret_echoed_by_openssl_is_masked(passphrase: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch):
    pipeline, work, secrets = prepare(tmp_path, monkeypatch, "file", passphrase)
    fake = write_injector(tmp_path, "pkcs12", "echo-secrets")

    outcome = run_certpipe("run", pipeline, "--workdir", work, "-v", "--openssl", fake)

    tally(SECRETS_TALLY).record(outcome, 1, False)
    assert outcome.exit_code == 1, outcome.err + outcome.crash
    assert "step 'pfx' failed: openssl exited with code 1" in outcome.err
    assert "pass in: <hidden> / pass out: <hidden>" in outcome.err
    for secret in secrets:
        assert secret not in outcome.text
    assert not (work / "site.pfx").exists()


def test_every_password_source_is_covered():
    pattern = load_schema()["$defs"]["secret"]["pattern"]
    alternatives = re.fullmatch(r"\^\((.*)\)\$", pattern)
    assert alternatives is not None, pattern
    kinds = {re.match(r"[a-z]+", part).group(0)  # type: ignore[union-attr]
             for part in alternatives.group(1).split("|")}
    assert kinds == {*PASSWORD_SOURCES, "prompt"}, (
        "a password source was added or removed; cover it in test_secrets_stay_hidden "
        "(prompt is covered by test_prompted_password_stays_hidden)")


@pytest.mark.parametrize("password", PASSWORD_SOURCES)
def test_ca_flow_keeps_secrets(password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The two-run IIS flow: pending for the CA's reply, then the reply turned into a PFX."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("PFX_PASSWORD", PFX_SECRET)
    (work / "pfx-password.txt").write_text(PFX_SECRET + "\n", encoding="utf-8")
    text = (PIPELINES / "iis.yaml").read_text(encoding="utf-8")
    pipeline = tmp_path / "iis.yaml"
    pipeline.write_text(text.replace(
        "env:PFX_PASSWORD", source_text(password, "PFX_PASSWORD", "pfx-password.txt")))
    signer = tmp_path / "signer.yaml"
    signer.write_text("version: 1\nsteps:\n  - name: sign\n    kind: local_ca\n"
                      "    csr: request.csr\n    out: reply.p7b\n", encoding="utf-8")
    fake, log = write_recorder(tmp_path)
    secrets = [PFX_SECRET] if password != "none" else []

    first = run_certpipe("run", pipeline, "--workdir", work, "-v", "--openssl", fake)
    ca = tmp_path / "ca"
    ca.mkdir()
    (ca / "request.csr").write_bytes((work / "www.example.test.csr").read_bytes())
    signed = run_certpipe("run", signer, "--workdir", ca, "--openssl", fake)
    (work / "certnew.p7b").write_bytes((ca / "reply.p7b").read_bytes())
    second = run_certpipe("run", pipeline, "--workdir", work, "-v", "--openssl", fake)

    counts = tally(SECRETS_TALLY)
    counts.record(first, 75, False)
    counts.record(second, 0, False)
    assert first.exit_code == 75, first.err + first.crash
    assert signed.exit_code == 0, signed.err + signed.crash
    assert second.exit_code == 0, second.err + second.crash
    calls = read_calls(log)
    counts.extra["openssl calls recorded"] += len(calls)
    assert_calls_keep_secrets(calls, secrets)
    for secret in secrets:
        assert secret not in first.text + second.text
    assert_no_secret_in_files(work, secrets)
    assert stat.S_IMODE((work / "www.example.test.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((work / "www.example.test.pfx").stat().st_mode) == 0o600
    counts.extra["runs without a password found"] += 2


def run_in_terminal(args: list[str], answers: list[str], cwd: Path) -> tuple[int, str]:
    """Run *args* with a pseudo-terminal as its terminal, typing *answers* at each prompt."""
    import pty
    import select
    import sys
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: certpipe with the pty as its controlling terminal
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, "-m", "certpipe", *args])
    output = b""
    pending = list(answers)
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            os.kill(pid, 9)
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if pending and output.rstrip().endswith(b":"):
            # Give getpass time to turn echo off; typed too early, the answer is echoed.
            time.sleep(0.2)
            os.write(fd, pending.pop(0).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def test_prompted_password_stays_hidden(tmp_path: Path):
    """The prompt source: typed at the terminal, never echoed, never on a command line."""
    work = tmp_path / "work"
    work.mkdir()
    text = (PIPELINES / "iis-local-ca.yaml").read_text(encoding="utf-8")
    pipeline = tmp_path / "prompt.yaml"
    pipeline.write_text(text.replace("env:PFX_PASSWORD", "prompt"), encoding="utf-8")
    fake, log = write_recorder(tmp_path)

    code, output = run_in_terminal(
        ["run", str(pipeline), "--workdir", str(work), "-v", "--openssl", str(fake)],
        [PFX_SECRET, PFX_SECRET], tmp_path)

    assert code == 0, output
    assert "Enter password" in output
    assert PFX_SECRET not in output
    calls = read_calls(log)
    assert len(calls) >= 5
    assert_calls_keep_secrets(calls, [PFX_SECRET])
    assert_no_secret_in_files(work, [PFX_SECRET])
    pfx = next(work.glob("*.pfx"))
    assert pkcs12.load_pkcs12(pfx.read_bytes(), PFX_SECRET.encode()).key is not None


@pytest.mark.parametrize(("secrets", "expected"), [
    ([b"x"], b"www.example.test x"),
    ([b"abc"], b"www.example.test x"),
    ([b"example"], b"www.<hidden>.test x"),
    ([b"exam", b"example"], b"www.<hidden>.test x"),
], ids=["one-byte", "three-bytes", "whole", "longest-first"])
def test_mask_secrets_rule(secrets: list[bytes], expected: bytes):
    from certpipe.secrets import mask_secrets

    assert mask_secrets(b"www.example.test x", secrets) == expected
