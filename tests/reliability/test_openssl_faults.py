"""Faults of the openssl binary itself: each stops the run cleanly and keeps the work directory.

A fault injector stands in for one openssl subcommand and crashes, hangs,
fails silently, prints garbage, or exits 0 with a missing, empty or garbage
output file. Every other call reaches the real openssl. The fault must give
exit code 1 and a message naming the step (and, for a failed call, the
command), leave no temporary files, keep every key byte for byte with mode
0600, and change no file except the outputs of steps that finished before
the fault.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reliability.conftest import PIPELINES, needs_openssl
from reliability.fake_openssl import write_injector
from reliability.harness import (
    TRACEBACK_MARK, copy_tree, describe_changes, run_certpipe, snapshot, tally, temp_files,
)

pytestmark = needs_openssl

FAULT_TALLY = "openssl faults"

# openssl subcommand -> the first step of iis-local-ca.yaml that runs it, and
# the outputs of the steps before it (made again when the run starts afresh).
TARGETS = {
    "genpkey": ("key", []),
    "req": ("csr", []),
    "x509": ("sign", ["www.example.test.csr"]),
    "crl2pkcs7": ("sign", ["www.example.test.csr"]),
    "pkcs12": ("pfx", ["www.example.test.csr", "ca-reply.p7b", "www.example.test.crt",
                       "www.example.test.chain.pem"]),
}

# What the message must say for each fault, beyond the step's name.
FAULT_MESSAGES = {
    "crash": "openssl killed by signal 11",
    "hang": "openssl did not finish within 1 seconds and was stopped",
    "silent-failure": "openssl exited with code 1",
    "garbage-output": "openssl exited with code 3",
    "no-output-file": "openssl exited with code 0, but its output file was not written",
    "empty-output-file": "openssl exited with code 0, but its output file is empty",
    "garbage-output-file": "",
}
# A garbage file passes the call itself; the step's check of it must object.
GARBAGE_FILE_MESSAGES = {
    "genpkey": "openssl wrote an unreadable key: {work}/www.example.test.key: ",
    "req": "openssl wrote an unreadable CSR: {work}/www.example.test.csr: ",
    "x509": "the reply openssl wrote holds no certificate for the CSR's key",
    "crl2pkcs7": "openssl wrote an unreadable reply: {work}/ca-reply.p7b: ",
    "pkcs12": "the .pfx openssl wrote cannot be read back: {work}/www.example.test.pfx: ",
}
NAMES_COMMAND = {"crash", "hang", "silent-failure", "garbage-output", "no-output-file",
                 "empty-output-file"}


def expected_message(command: str, fault: str) -> str:
    if fault == "garbage-output-file":
        return GARBAGE_FILE_MESSAGES[command]
    return FAULT_MESSAGES[fault]

CASES = [
    (command, fault)
    for command in TARGETS
    for fault in FAULT_MESSAGES
    if fault != "hang" or command in ("genpkey", "pkcs12")  # each hang costs a second
]


def expected_change(line: str, remade: list[str]) -> bool:
    """Tell whether a snapshot difference is the manifest or an output of an earlier step."""
    path = line.removeprefix("added ").removeprefix("lost ").split(":")[0]
    return path in remade or path.split("/")[0] == ".certpipe"


def key_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.key")}


@pytest.fixture
def fault_workdir(seeded_template: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """An empty work directory for genpkey; else the seeded one, without its manifest."""
    command = request.node.callspec.params["command"]
    if command == "genpkey":
        work = tmp_path / "work"
        work.mkdir()
        return work
    work = copy_tree(seeded_template, tmp_path / "work")
    (work / ".certpipe" / "state.json").unlink()  # so every step runs again
    return work


@pytest.mark.parametrize("command, fault", CASES)
def test_openssl_fault(command: str, fault: str, fault_workdir: Path, tmp_path: Path):
    step, remade = TARGETS[command]
    fake = write_injector(tmp_path, command, fault)
    before = snapshot(fault_workdir)
    keys_before = key_files(fault_workdir)

    outcome = run_certpipe("run", PIPELINES / "iis-local-ca.yaml", "--workdir", fault_workdir,
                           "--openssl", fake, "--timeout", "1")

    after = snapshot(fault_workdir)
    changes = [line for line in describe_changes(before, after)
               if not expected_change(line, remade)]
    tally(FAULT_TALLY).record(outcome, 1, bool(changes))
    assert not outcome.crash, outcome.crash
    assert TRACEBACK_MARK not in outcome.text
    assert outcome.exit_code == 1, outcome.err
    assert f"step '{step}' failed: " in outcome.err
    assert expected_message(command, fault).format(work=fault_workdir) in outcome.err
    if fault in NAMES_COMMAND:
        assert f"openssl {command} -" in outcome.err
    assert "\x1b" not in outcome.err, "terminal escapes from openssl output reach the terminal"
    assert "\x00" not in outcome.err
    assert len(outcome.err) < 5000
    explanation = [line for line in outcome.err.splitlines() if "command: " not in line]
    assert TEMP_NAME_MARK not in "\n".join(explanation), "name the output, not its temp file"
    assert temp_files(fault_workdir) == []
    assert changes == []
    assert key_files(fault_workdir) == keys_before
    for path in fault_workdir.rglob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


TEMP_NAME_MARK = ".certpipe-tmp-"


@pytest.mark.parametrize("fault, message", [
    ("crash", "openssl version' (from --openssl) was killed by signal 11"),
    ("silent-failure", "openssl version' (from --openssl) exited with code 1"),
    ("garbage-output", "openssl version' (from --openssl) exited with code 3"),
    ("empty-output-file", "cannot tell the version"),
])
def test_version_probe_fault(fault: str, message: str, workdir: Path, tmp_path: Path):
    fake = write_injector(tmp_path, "version", fault)
    (workdir / ".certpipe" / "state.json").unlink()
    before = snapshot(workdir)

    outcome = run_certpipe("run", PIPELINES / "iis-local-ca.yaml", "--workdir", workdir,
                           "--openssl", fake)

    changes = [line for line in describe_changes(before, snapshot(workdir))
               if not expected_change(line, [])]
    tally(FAULT_TALLY).record(outcome, 2, bool(changes))
    assert not outcome.crash, outcome.crash
    assert outcome.exit_code == 2, outcome.err
    assert message in outcome.err
    assert str(fake) in outcome.err
    assert changes == []
