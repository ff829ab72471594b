"""PFX password sources: environment variable, file, prompt and none.

The data in tests/data/pfx-password-special-chars contains a 41-byte password
with shell metacharacters, once without a final newline and once followed
by CR LF as Notepad saves it.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certpipe.secrets import SecretError, SecretRef
from conftest import needs_openssl
from pfx_support import DATA, fake_openssl, openssl_info, pki, pkcs12_pipeline, workdir  # noqa: F401

SPECIAL = DATA / "pfx-password-special-chars"
PASSWORD = (SPECIAL / "pfx-password.txt").read_bytes()


def special_pipeline(password_source: str, out: str = "sso.pfx") -> str:
    return textwrap.dedent(f"""\
        version: 1
        steps:
          - name: pfx
            kind: pkcs12
            key: key.pem
            cert: sso.example.test.crt
            chain: intermediate.crt
            password: {password_source}
            target: windows-server-2016
            out: {out}
        """)


@pytest.fixture
def special_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(SPECIAL, folder)
    return folder


def test_password_data_is_as_described():
    assert len(PASSWORD) == 41
    for char in b"$!;@\"'\\&<>%^|`":
        assert bytes([char]) in PASSWORD
    assert (SPECIAL / "pfx-password-crlf.txt").read_bytes() == PASSWORD + b"\r\n"


@needs_openssl
@pytest.mark.parametrize("name", ["pfx-password.txt", "pfx-password-crlf.txt"])
def test_password_file_opens_with_41_bytes(cli, write_pipeline, special_dir, name):
    result = cli("run", write_pipeline(special_pipeline(f"file:{name}")), "--workdir",
                 special_dir)
    assert result.exit_code == 0, result.err
    pfx = special_dir / "sso.pfx"
    checked = subprocess.run(
        ["openssl", "pkcs12", "-in", str(pfx), "-passin", f"file:{SPECIAL / 'pfx-password.txt'}",
         "-noout"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    bundle = pkcs12.load_pkcs12(pfx.read_bytes(), PASSWORD)
    assert bundle.key is not None
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(pfx.read_bytes(), PASSWORD + b"\r")


@needs_openssl
def test_plain_openssl_keeps_the_cr(tmp_path):
    """The trap certpipe avoids: openssl's own file: source keeps the CR in the password."""
    out = tmp_path / "trap.pfx"
    made = subprocess.run(
        ["openssl", "pkcs12", "-export", "-inkey", str(SPECIAL / "key.pem"), "-in",
         str(SPECIAL / "sso.example.test.crt"), "-passout",
         f"file:{SPECIAL / 'pfx-password-crlf.txt'}", "-out", str(out)], capture_output=True)
    assert made.returncode == 0
    opened = subprocess.run(["openssl", "pkcs12", "-in", str(out), "-noout", "-passin",
                             f"file:{SPECIAL / 'pfx-password.txt'}"], capture_output=True)
    assert opened.returncode == 1


@needs_openssl
def test_password_from_env_with_metacharacters(cli, write_pipeline, special_dir, monkeypatch,
                                               fake_openssl):
    fake = fake_openssl("OpenSSL 3.0.19 27 Jan 2026")
    monkeypatch.setenv("SSO_PFX_PASSWORD", PASSWORD.decode())
    result = cli("run", "-v", write_pipeline(special_pipeline("env:SSO_PFX_PASSWORD")),
                 "--workdir", special_dir)
    assert result.exit_code == 0, result.err
    assert pkcs12.load_pkcs12((special_dir / "sso.pfx").read_bytes(), PASSWORD).key is not None
    text = PASSWORD.decode()
    for call in fake.calls():
        assert all(text not in arg for arg in call)
    assert text not in result.out + result.err


@needs_openssl
def test_multi_line_password_file_rejected(cli, write_pipeline, special_dir):
    (special_dir / "two-lines.txt").write_bytes(PASSWORD + b"\nsecond line\n")
    result = cli("run", write_pipeline(special_pipeline("file:two-lines.txt")), "--workdir",
                 special_dir)
    assert result.exit_code == 1
    assert "more than one line" in result.err
    assert "two-lines.txt" in result.err
    assert PASSWORD.decode() not in result.err
    assert not (special_dir / "sso.pfx").exists()


@needs_openssl
def test_missing_variable_named(cli, write_pipeline, special_dir, monkeypatch):
    monkeypatch.delenv("NO_SUCH_PFX_PW", raising=False)
    result = cli("run", write_pipeline(special_pipeline("env:NO_SUCH_PFX_PW")), "--workdir",
                 special_dir)
    assert result.exit_code == 1
    assert "environment variable NO_SUCH_PFX_PW is not set" in result.err
    assert not (special_dir / "sso.pfx").exists()


@needs_openssl
def test_empty_variable_rejected(cli, write_pipeline, special_dir, monkeypatch):
    monkeypatch.setenv("EMPTY_PFX_PW", "")
    result = cli("run", write_pipeline(special_pipeline("env:EMPTY_PFX_PW")), "--workdir",
                 special_dir)
    assert result.exit_code == 1
    assert "environment variable EMPTY_PFX_PW is empty" in result.err
    assert "'none'" in result.err


class Terminal:
    """Stands in for sys.stdin on a terminal."""

    def isatty(self) -> bool:
        return True


@needs_openssl
def test_prompt_asks_twice(cli, write_pipeline, special_dir, monkeypatch):
    answers = iter(["Typed-Pass-1", "Typed-Pass-1"])
    prompts = []

    def fake_getpass(prompt, stream=None):
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    result = cli("run", write_pipeline(special_pipeline("prompt")), "--workdir", special_dir)
    assert result.exit_code == 0, result.err
    assert prompts == ["Enter password for sso.pfx: ", "Repeat password for sso.pfx: "]
    assert pkcs12.load_pkcs12((special_dir / "sso.pfx").read_bytes(), b"Typed-Pass-1").key


@needs_openssl
def test_prompt_mismatch_fails(cli, write_pipeline, special_dir, monkeypatch):
    answers = iter(["Typed-Pass-1", "Typed-Pass-2"])
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", lambda prompt, stream=None: next(answers))
    result = cli("run", write_pipeline(special_pipeline("prompt")), "--workdir", special_dir)
    assert result.exit_code == 1
    assert "differ" in result.err
    assert "Typed-Pass" not in result.err
    assert not (special_dir / "sso.pfx").exists()


@needs_openssl
def test_prompt_needs_terminal(cli, write_pipeline, special_dir):
    result = cli("run", write_pipeline(special_pipeline("prompt")), "--workdir", special_dir)
    assert result.exit_code == 1
    assert "standard input is not a terminal" in result.err
    assert "env:NAME or file:PATH" in result.err


@pytest.mark.parametrize("content, expected", [
    (b"pw-1", b"pw-1"),
    (b"pw-1\n", b"pw-1"),
    (b"pw-1\r\n", b"pw-1"),
    (b"\xef\xbb\xbfpw-1\r\n", b"pw-1"),
    ("pw-ü\r\n".encode("utf-16"), "pw-ü".encode()),
    (b" spaced pw \n", b" spaced pw "),
])
def test_password_file_forms(tmp_path, content, expected):
    (tmp_path / "pw").write_bytes(content)
    assert SecretRef("file:pw", tmp_path).read().value == expected


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n", "is empty"),
    (b"pw-1\r", "lone carriage return"),
    (b"pw-1\n\n", "more than one line"),
    (b"a\rb", "more than one line"),
    (b"p\x00w\x00", "NUL bytes"),
])
def test_password_file_problems(tmp_path, content, message):
    (tmp_path / "pw").write_bytes(content)
    with pytest.raises(SecretError) as caught:
        SecretRef("file:pw", tmp_path).read()
    assert message in str(caught.value)
    assert str(tmp_path / "pw") in str(caught.value)


def test_password_file_missing(tmp_path):
    with pytest.raises(SecretError) as caught:
        SecretRef("file:absent.txt", tmp_path).read()
    assert "absent.txt" in str(caught.value)
    assert "not found" in str(caught.value)


def test_none_is_empty_password():
    assert SecretRef("none").read().value == b""


def test_secret_repr_hides_value(tmp_path):
    (tmp_path / "pw").write_bytes(b"Hidden-1")
    secret = SecretRef("file:pw", tmp_path).read()
    assert "Hidden-1" not in repr(secret)
