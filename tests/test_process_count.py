"""What a run costs in processes and parsing: no openssl call beyond the steps' own.

Timings belong to bench/bench.py; these tests pin down the counts that the
timings rest on.
"""

from __future__ import annotations

import subprocess
import sys

from certpipe.artifacts import keys
from certpipe.engine import IdleWork
from conftest import PIPELINES, needs_openssl
from fake_openssl import FakeOpenSSL, certpipe_command

pytestmark = needs_openssl

LOCAL_CA = PIPELINES / "iis-local-ca.yaml"


def test_fresh_run_calls_openssl_only_for_the_steps(tmp_path):
    fake = FakeOpenSSL(tmp_path / "bin")
    env = {**fake.env(), "PFX_PASSWORD": "Test-Pfx-Pass-1"}
    result = subprocess.run(certpipe_command("run", LOCAL_CA, "--workdir", tmp_path / "work"),
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    subcommands = [call.split()[0] for call in fake.calls()]
    # The version once; then the key, the CSR, the local CA's two keys, two
    # requests, two signatures and the .p7b, openssl's reading of the reply
    # (compared with cryptography's), and the .pfx. Every check is in-process.
    assert subcommands == ["version", "genpkey", "req", "genpkey", "req", "genpkey", "req",
                           "x509", "x509", "crl2pkcs7", "pkcs7", "pkcs12"]


def test_same_key_bytes_are_parsed_once(tmp_path):
    key = tmp_path / "site.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(key)], check=True)
    first = keys.read_private_key(key)
    assert keys.read_private_key(key) is first
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(key)], check=True)
    assert keys.read_private_key(key) is not first


def test_idle_work_stops_when_openssl_ends():
    done = []
    work = IdleWork([lambda: done.append(1), lambda: done.append(2), lambda: done.append(3)])
    answers = iter([True, False])
    work.run_while(lambda: next(answers))
    assert done == [1]
    work.run_while(lambda: True)
    assert done == [1, 2, 3]


def test_idle_work_keeps_going_after_a_failed_task():
    done = []

    def broken() -> None:
        raise ImportError("no such module")

    work = IdleWork([broken, lambda: done.append("after")])
    work.run_while(lambda: True)
    assert done == ["after"]


def test_help_imports_no_heavy_module():
    check = ("import sys, contextlib, io\nfrom certpipe.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help'])\n"
             "print(sorted(m for m in ('jsonschema', 'cryptography', 'sh', 'yaml', "
             "'logging', 'dataclasses') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
