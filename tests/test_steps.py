"""Each step's checks, driven with the real openssl on files in temporary folders."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import string
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from certpipe.artifacts import checks
from certpipe.artifacts.intake import read_csr
from certpipe.errors import CheckFailed, Pending
from certpipe.openssl import OpenSSL
from certpipe.pipeline.model import load_pipeline
from certpipe.steps.base import StepContext
from conftest import needs_openssl
from pki import make_ca, make_csr, make_intermediate, make_key, openssl, sign

pytestmark = needs_openssl

KEY_STEP = """\
version: 1
steps:
  - name: key
    kind: private_key
    algorithm: {algorithm}
    {size}
    out: site.key
"""


def context(workdir: Path, **kwargs) -> StepContext:
    return StepContext(workdir=workdir, openssl_factory=OpenSSL.discover, timeout=60, **kwargs)


def build(write_pipeline, text: str):
    return load_pipeline(write_pipeline(text)).steps


# --- private_key ---------------------------------------------------------------

@pytest.mark.parametrize("algorithm, size, described", [
    ("ec", "curve: P-256", "EC P-256"),
    ("ec", "curve: P-384", "EC P-384"),
    ("rsa", "bits: 2048", "RSA 2048"),
])
def test_key_step_makes_requested_key(write_pipeline, tmp_path, algorithm, size, described):
    step, = build(write_pipeline, KEY_STEP.format(algorithm=algorithm, size=size))
    result = step.run(context(tmp_path))
    assert result.made == ["site.key"]
    assert described in result.checks[0]
    assert stat.S_IMODE((tmp_path / "site.key").stat().st_mode) == 0o600


def test_key_step_keeps_fitting_key(write_pipeline, tmp_path):
    make_key(tmp_path / "site.key")
    before = (tmp_path / "site.key").read_bytes()
    step, = build(write_pipeline, KEY_STEP.format(algorithm="ec", size="curve: P-256"))
    result = step.run(context(tmp_path))
    assert result.kept == ["site.key"]
    assert (tmp_path / "site.key").read_bytes() == before


def test_key_step_refuses_other_key_type(write_pipeline, tmp_path):
    make_key(tmp_path / "site.key")
    before = (tmp_path / "site.key").read_bytes()
    step, = build(write_pipeline, KEY_STEP.format(algorithm="rsa", size="bits: 3072"))
    with pytest.raises(CheckFailed, match="is a EC P-256 key, but the pipeline asks for RSA 3072"):
        step.run(context(tmp_path))
    assert (tmp_path / "site.key").read_bytes() == before


def test_key_step_never_overwrites_unreadable_file(write_pipeline, tmp_path):
    (tmp_path / "site.key").write_bytes(b"not a key\n")
    step, = build(write_pipeline, KEY_STEP.format(algorithm="ec", size="curve: P-256"))
    with pytest.raises(CheckFailed, match="never overwrites an existing key file"):
        step.run(context(tmp_path))
    assert (tmp_path / "site.key").read_bytes() == b"not a key\n"


KEY_PASS = "key pass $1"
ENCRYPTED_KEY_PIPELINE = """\
version: 1
steps:
  - name: key
    kind: private_key
    algorithm: ec
    key_passphrase: env:KEY_PASS
    out: site.key
  - name: csr
    kind: csr
    key: site.key
    key_passphrase: env:KEY_PASS
    subject: {CN: www.example.test}
    out: site.csr
"""


def make_encrypted_key(path: Path) -> bytes:
    make_key(path.with_name("plain.key"))
    openssl("pkey", "-in", path.with_name("plain.key"), "-aes256", "-passout",
            f"pass:{KEY_PASS}", "-out", path)
    path.with_name("plain.key").unlink()
    return path.read_bytes()


def test_key_step_keeps_encrypted_key(cli, write_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_PASS", KEY_PASS)
    work = tmp_path / "work"
    work.mkdir()
    before = make_encrypted_key(work / "site.key")

    result = cli("run", write_pipeline(ENCRYPTED_KEY_PIPELINE), "--workdir", work)

    assert result.exit_code == 0, result.err
    assert "key (private_key) " in result.out
    assert "kept site.key" in result.out
    assert (work / "site.key").read_bytes() == before
    assert (work / "site.csr").is_file()
    assert KEY_PASS not in result.out + result.err


def test_key_step_encrypted_key_without_passphrase(write_pipeline, tmp_path):
    before = make_encrypted_key(tmp_path / "site.key")
    step, = build(write_pipeline, KEY_STEP.format(algorithm="ec", size="curve: P-256"))

    with pytest.raises(CheckFailed) as info:
        step.run(context(tmp_path))

    message = str(info.value)
    assert "site.key is an encrypted private key" in message
    assert "give a passphrase source with the step's key_passphrase setting" in message
    assert "never overwrites" not in message
    assert (tmp_path / "site.key").read_bytes() == before


def test_key_step_wrong_passphrase(write_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_PASS", "not the passphrase")
    before = make_encrypted_key(tmp_path / "site.key")
    text = ENCRYPTED_KEY_PIPELINE.split("  - name: csr")[0]
    step, = build(write_pipeline, text)

    with pytest.raises(CheckFailed) as info:
        step.run(context(tmp_path))

    assert "wrong passphrase for" in str(info.value)
    assert "(from env:KEY_PASS)" in str(info.value)
    assert "not the passphrase" not in str(info.value)
    assert (tmp_path / "site.key").read_bytes() == before


def test_key_step_new_key_unencrypted(write_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_PASS", KEY_PASS)
    text = ENCRYPTED_KEY_PIPELINE.split("  - name: csr")[0]
    step, = build(write_pipeline, text)

    result = step.run(context(tmp_path))

    assert result.made == ["site.key"]
    assert b"ENCRYPTED" not in (tmp_path / "site.key").read_bytes()
    assert stat.S_IMODE((tmp_path / "site.key").stat().st_mode) == 0o600


def test_rekey_keeps_old_key_as_backup(write_pipeline, tmp_path):
    make_key(tmp_path / "site.key")
    before = (tmp_path / "site.key").read_bytes()
    step, = build(write_pipeline, KEY_STEP.format(algorithm="ec", size="curve: P-256"))
    result = step.run(context(tmp_path, rekey=True))
    backups = list(tmp_path.glob("site.key.replaced-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == before
    assert (tmp_path / "site.key").read_bytes() != before
    assert "moved to" in result.notes[0]


# --- csr --------------------------------------------------------------------------

CSR_STEP = """\
version: 1
steps:
  - name: csr
    kind: csr
    key: site.key
    subject:
      C: XX
      O: "Example, Inc. / Müller + Co = 1"
      OU: ["R&D/Web Ops", "Sales + Marketing", "Price $5 #1; \\\\ 'q' \\"d\\""]
      CN: www.example.test
    subject_alt_names:
      dns: [example.test, "*.example.test"]
      ip: [192.0.2.7, "2001:db8::1"]
    out: site.csr
"""


def test_csr_keeps_special_characters_literal(write_pipeline, tmp_path):
    make_key(tmp_path / "site.key")
    step, = build(write_pipeline, CSR_STEP)
    step.run(context(tmp_path))
    csr = read_csr(tmp_path / "site.csr")
    assert checks.name_attributes(csr.subject) == [
        ("C", "XX"),
        ("O", "Example, Inc. / Müller + Co = 1"),
        ("OU", "R&D/Web Ops"),
        ("OU", "Sales + Marketing"),
        ("OU", "Price $5 #1; \\ 'q' \"d\""),
        ("CN", "www.example.test"),
    ]
    dns, ips = checks.alt_names(csr)
    assert dns == ["www.example.test", "example.test", "*.example.test"]
    assert ips == ["192.0.2.7", "2001:db8::1"]


def test_csr_round_trips_all_punctuation(write_pipeline, tmp_path):
    # Each punctuation character at the start, inside and at the end of a value.
    per_character = [f"{c}a{c}b{c}" for c in string.punctuation]
    organization = "Müller & Söhne; `x` 'q' \"d\" \\ #1 $HOME ${x} Ærø 東京 🙂"
    subject = {
        "O": organization,
        "ST": string.punctuation,
        "OU": per_character[:16],
        "L": per_character[16:],
        "CN": "www.example.test",
    }
    dns = ["a-b_c.example.test", "*.x_y-z.example.test", "UPPER.Example.TEST."]
    text = (
        "version: 1\n"
        "steps:\n"
        "  - name: csr\n"
        "    kind: csr\n"
        "    key: site.key\n"
        f"    subject: {json.dumps(subject, ensure_ascii=False)}\n"
        f"    subject_alt_names: {{dns: {json.dumps(dns)}}}\n"
        "    out: site.csr\n"
    ).replace("$", "$$")  # a literal '$' in a pipeline is written '$$'
    make_key(tmp_path / "site.key")
    step, = build(write_pipeline, text)

    step.run(context(tmp_path))

    csr = read_csr(tmp_path / "site.csr")
    expected = [("O", organization), ("ST", string.punctuation)]
    expected += [("OU", value) for value in per_character[:16]]
    expected += [("L", value) for value in per_character[16:]]
    expected += [("CN", "www.example.test")]
    assert checks.name_attributes(csr.subject) == expected
    alt_dns, _ = checks.alt_names(csr)
    assert alt_dns == ["www.example.test", "a-b_c.example.test", "*.x_y-z.example.test",
                       "upper.example.test"]


def test_csr_with_encrypted_key(write_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_PASS", "key pass $1")
    make_key(tmp_path / "plain.key")
    openssl("pkey", "-in", tmp_path / "plain.key", "-aes256", "-passout", "env:KEY_PASS",
            "-out", tmp_path / "site.key")
    text = CSR_STEP.replace("    key: site.key\n", "    key: site.key\n"
                            "    key_passphrase: env:KEY_PASS\n")
    step, = build(write_pipeline, text)
    step.run(context(tmp_path))
    assert (tmp_path / "site.csr").exists()


def test_csr_from_missing_key_fails(write_pipeline, tmp_path):
    step, = build(write_pipeline, CSR_STEP)
    with pytest.raises(CheckFailed, match="site.key: file not found"):
        step.run(context(tmp_path))


def test_subject_check_catches_split_subject(tmp_path):
    key = make_key(tmp_path / "k.pem")
    csr_path = tmp_path / "naive.csr"
    openssl("req", "-new", "-key", key, "-subj", "/O=Example/OU=R&D/Web Ops/CN=www.example.test",
            "-out", csr_path)
    csr = read_csr(csr_path)
    wanted = [("O", "Example"), ("OU", "R&D/Web Ops"), ("CN", "www.example.test")]
    with pytest.raises(CheckFailed, match="openssl dropped or changed attributes"):
        checks.check_subject(csr.subject, wanted, csr_path)


def test_alt_name_checks(tmp_path):
    key = make_key(tmp_path / "k.pem")
    no_san = read_csr(make_csr(tmp_path, key, "www.example.test"))
    with pytest.raises(CheckFailed, match="has no subjectAltName"):
        checks.check_csr_alt_names(no_san, tmp_path / "x.csr", ["www.example.test"], [])
    with pytest.raises(CheckFailed, match="browsers ignore the CN"):
        checks.check_cn_in_alt_names(no_san, tmp_path / "x.csr", "CSR")
    lacks_cn = read_csr(make_csr(tmp_path, key, "app.example.test", ["DNS:other.example.test"]))
    with pytest.raises(CheckFailed, match="CN app.example.test is not in the CSR's"):
        checks.check_cn_in_alt_names(lacks_cn, tmp_path / "y.csr", "CSR")
    with pytest.raises(CheckFailed, match="subjectAltName is DNS"):
        checks.check_csr_alt_names(lacks_cn, tmp_path / "y.csr", ["app.example.test"], [])


def test_csr_key_mismatch(tmp_path):
    key = make_key(tmp_path / "a.pem")
    other = make_key(tmp_path / "b.pem")
    csr = read_csr(make_csr(tmp_path, key, "www.example.test"))
    from certpipe.artifacts.keys import read_private_key
    with pytest.raises(CheckFailed, match="was not made from"):
        checks.check_csr_matches_key(csr, tmp_path / "c.csr", read_private_key(other), other)


# --- ca_reply ---------------------------------------------------------------------

REPLY_STEP = """\
version: 1
steps:
  - name: reply
    kind: ca_reply
    reply: reply.pem
    key: site.key
    csr: site.csr
    cert_out: site.crt
    chain_out: chain.pem
"""


@pytest.fixture
def pki(tmp_path):
    """A root, an issuing CA, a key and a CSR for www.example.test and example.test."""
    folder = tmp_path / "pki"
    folder.mkdir()
    root = make_ca(folder)
    issuing = make_intermediate(folder, root)
    key = make_key(tmp_path / "site.key")
    sans = ["DNS:www.example.test", "DNS:example.test"]
    csr = make_csr(tmp_path, key, "www.example.test", sans)
    csr.rename(tmp_path / "site.csr")
    return {"folder": folder, "root": root, "issuing": issuing, "sans": sans,
            "csr": tmp_path / "site.csr", "key": key}


def write_reply(tmp_path: Path, *certs: Path) -> None:
    (tmp_path / "reply.pem").write_bytes(b"".join(c.read_bytes() for c in certs))


def test_reply_orders_chain_and_drops_root(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem", pki["sans"])
    write_reply(tmp_path, pki["root"][0], leaf, pki["issuing"][0])
    step, = build(write_pipeline, REPLY_STEP)
    step.run(context(tmp_path))
    chain = x509.load_pem_x509_certificates((tmp_path / "chain.pem").read_bytes())
    assert [c.subject.rfc4514_string() for c in chain] == ["CN=Test Issuing"]
    assert (tmp_path / "site.crt").read_bytes() == leaf.read_bytes()


def test_reply_missing_is_pending(write_pipeline, tmp_path, pki):
    step, = build(write_pipeline, REPLY_STEP)
    with pytest.raises(Pending, match="save its answer"):
        step.run(context(tmp_path))


def test_reply_missing_name_fails(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem",
                ["DNS:www.example.test"])
    write_reply(tmp_path, leaf, pki["issuing"][0], pki["root"][0])
    step, = build(write_pipeline, REPLY_STEP)
    with pytest.raises(CheckFailed, match="does not cover example.test"):
        step.run(context(tmp_path))
    assert not (tmp_path / "site.crt").exists()


def test_reply_for_other_csr_fails(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem", pki["sans"])
    write_reply(tmp_path, leaf, pki["issuing"][0])
    other_key = make_key(tmp_path / "other.key")
    make_csr(tmp_path, other_key, "www.example.test", pki["sans"]).replace(tmp_path / "site.csr")
    step, = build(write_pipeline, REPLY_STEP)
    with pytest.raises(CheckFailed, match="was not issued for"):
        step.run(context(tmp_path))


def test_reply_expired_or_not_yet_valid(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem", pki["sans"])
    write_reply(tmp_path, leaf, pki["issuing"][0], pki["root"][0])
    step, = build(write_pipeline, REPLY_STEP)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    with pytest.raises(CheckFailed, match="expired on"):
        step.run(context(tmp_path, fixed_now=later))
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    with pytest.raises(CheckFailed, match="is not valid yet"):
        step.run(context(tmp_path, fixed_now=earlier))


def test_reply_incomplete_chain_fails(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem", pki["sans"])
    write_reply(tmp_path, leaf, pki["root"][0])
    step, = build(write_pipeline, REPLY_STEP)
    with pytest.raises(CheckFailed, match="chain incomplete: issuer 'CN=Test Issuing'"):
        step.run(context(tmp_path))
    step, = build(write_pipeline, REPLY_STEP + "    allow_incomplete_chain: true\n")
    result = step.run(context(tmp_path))
    assert any("chain incomplete" in note for note in result.notes)


def test_reply_extra_certs_complete_chain(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem", pki["sans"])
    write_reply(tmp_path, leaf)
    extras = f"    extra_certs: [\"{pki['issuing'][0]}\", \"{pki['root'][0]}\"]\n"
    step, = build(write_pipeline, REPLY_STEP + extras)
    step.run(context(tmp_path))
    assert (tmp_path / "chain.pem").read_bytes() == pki["issuing"][0].read_bytes()


def test_reply_sha1_signature(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem",
                pki["sans"], digest="sha1")
    write_reply(tmp_path, leaf, pki["issuing"][0], pki["root"][0])
    step, = build(write_pipeline, REPLY_STEP)
    with pytest.raises(CheckFailed, match="with SHA-1") as info:
        step.run(context(tmp_path))
    assert "SECLEVEL" not in str(info.value)
    step, = build(write_pipeline, REPLY_STEP + "    weak_signature: warn\n")
    result = step.run(context(tmp_path))
    assert any("SHA-1" in note for note in result.notes)


def test_reply_der_pkcs7(write_pipeline, tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], pki["folder"] / "leaf.pem", pki["sans"])
    openssl("crl2pkcs7", "-nocrl", "-certfile", pki["root"][0], "-certfile", pki["issuing"][0],
            "-certfile", leaf, "-outform", "DER", "-out", tmp_path / "reply.pem")
    step, = build(write_pipeline, REPLY_STEP)
    step.run(context(tmp_path))
    assert (tmp_path / "site.crt").read_bytes() == leaf.read_bytes()


def test_reply_html_page_is_named(write_pipeline, tmp_path, pki):
    (tmp_path / "reply.pem").write_text("<!DOCTYPE html><html><body>Error</body></html>")
    step, = build(write_pipeline, REPLY_STEP)
    with pytest.raises(CheckFailed, match="is an HTML or XML page"):
        step.run(context(tmp_path))


# --- pkcs12 -----------------------------------------------------------------------

PFX_STEP = """\
version: 1
steps:
  - name: pfx
    kind: pkcs12
    key: site.key
    cert: site.crt
    chain: chain.pem
    password: {password}
    out: site.pfx
"""


@pytest.fixture
def issued(tmp_path, pki):
    leaf = sign(pki["folder"], pki["csr"], pki["issuing"], tmp_path / "site.crt", pki["sans"])
    (tmp_path / "chain.pem").write_bytes(pki["issuing"][0].read_bytes())
    return {**pki, "leaf": leaf}


def test_pfx_password_file_drops_one_crlf(write_pipeline, tmp_path, issued):
    (tmp_path / "pw.txt").write_bytes(b"Ex$ample!;P@ss \"1\" 'x' \\ & <y> %TEMP% ^|`\r\n")
    step, = build(write_pipeline, PFX_STEP.format(password="file:pw.txt"))
    step.run(context(tmp_path))
    password = b"Ex$ample!;P@ss \"1\" 'x' \\ & <y> %TEMP% ^|`"
    bundle = pkcs12.load_pkcs12((tmp_path / "site.pfx").read_bytes(), password)
    assert bundle.key is not None
    assert [c.certificate for c in bundle.additional_certs] == [
        x509.load_pem_x509_certificate(issued["issuing"][0].read_bytes())]


def test_pfx_password_file_with_two_lines_fails(write_pipeline, tmp_path, issued):
    (tmp_path / "pw.txt").write_bytes(b"first\nsecond\n")
    step, = build(write_pipeline, PFX_STEP.format(password="file:pw.txt"))
    with pytest.raises(Exception, match="more than one line"):
        step.run(context(tmp_path))
    assert not (tmp_path / "site.pfx").exists()


def test_pfx_refuses_key_of_other_certificate(write_pipeline, tmp_path, issued, monkeypatch):
    monkeypatch.setenv("PFX_PASSWORD", "x")
    (tmp_path / "site.key").unlink()
    make_key(tmp_path / "site.key")
    step, = build(write_pipeline, PFX_STEP.format(password="env:PFX_PASSWORD"))
    with pytest.raises(CheckFailed, match="IIS would import such a certificate without a private"):
        step.run(context(tmp_path))
    assert not (tmp_path / "site.pfx").exists()
    assert not list(tmp_path.glob(".site.pfx*"))


def test_pfx_refuses_misordered_chain(write_pipeline, tmp_path, issued, monkeypatch):
    monkeypatch.setenv("PFX_PASSWORD", "x")
    (tmp_path / "chain.pem").write_bytes(issued["root"][0].read_bytes()
                                         + issued["issuing"][0].read_bytes())
    step, = build(write_pipeline, PFX_STEP.format(password="env:PFX_PASSWORD"))
    with pytest.raises(CheckFailed, match="did not issue"):
        step.run(context(tmp_path))


def test_pfx_readback_detects_wrong_contents(tmp_path, issued, monkeypatch):
    from certpipe.artifacts.keys import read_private_key
    from certpipe.steps.pkcs12 import verify_pfx
    monkeypatch.setenv("PW", "pw")
    openssl("pkcs12", "-export", "-inkey", issued["key"], "-in", issued["leaf"],
            "-passout", "env:PW", "-out", tmp_path / "leaf-only.pfx")
    key = read_private_key(issued["key"])
    leaf = x509.load_pem_x509_certificate(issued["leaf"].read_bytes())
    chain = [x509.load_pem_x509_certificate(issued["issuing"][0].read_bytes())]
    with pytest.raises(CheckFailed, match="is not the expected chain"):
        verify_pfx(tmp_path / "leaf-only.pfx", tmp_path / "leaf-only.pfx", b"pw", key, leaf,
                   chain, "x")
    with pytest.raises(CheckFailed, match="cannot be read back"):
        verify_pfx(tmp_path / "leaf-only.pfx", tmp_path / "leaf-only.pfx", b"wrong", key, leaf,
                   chain, "x")


def test_pfx_without_password(write_pipeline, tmp_path, issued):
    step, = build(write_pipeline, PFX_STEP.format(password="none"))
    step.run(context(tmp_path))
    assert pkcs12.load_pkcs12((tmp_path / "site.pfx").read_bytes(), b"").key is not None


# --- openssl ----------------------------------------------------------------------

def fake_openssl(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-openssl"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_missing_openssl_exits_2(cli, tmp_path, monkeypatch, pfx_password):
    monkeypatch.setenv("CERTPIPE_OPENSSL", str(tmp_path / "no-such-openssl"))
    from conftest import PIPELINES
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert "no-such-openssl" in result.err
    assert "does not exist" in result.err


def test_old_openssl_exits_2(cli, tmp_path, monkeypatch, pfx_password):
    fake = fake_openssl(tmp_path, 'echo "OpenSSL 1.0.2k-fips  26 Jan 2017"\n')
    from conftest import PIPELINES
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out",
                 "--openssl", fake)
    assert result.exit_code == 2
    assert f"{fake} is OpenSSL 1.0.2k-fips" in result.err
    assert "too old" in result.err


def test_failing_openssl_names_step_and_command(cli, tmp_path, pfx_password):
    fake = fake_openssl(tmp_path, 'if [ "$1" = version ]; then echo "OpenSSL 3.0.19 x"; exit 0; fi\n'
                                  'echo "boom: out of entropy" >&2\nexit 3\n')
    from conftest import PIPELINES
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path / "out",
                 "--openssl", fake)
    assert result.exit_code == 1
    assert "step 'key' failed: openssl exited with code 3" in result.err
    assert "command: openssl genpkey -algorithm RSA" in result.err
    assert "boom: out of entropy" in result.err
    assert not any((tmp_path / "out").glob("*.key"))
    assert "Traceback" not in result.err


def test_password_never_in_output(cli, tmp_path, pfx_password):
    from conftest import PIPELINES
    result = cli("run", PIPELINES / "iis-local-ca.yaml", "--workdir", tmp_path, "-v")
    assert result.exit_code == 0
    assert pfx_password not in result.out + result.err
    assert "env:CERTPIPE_PASSOUT" in result.err
    assert os.environ["PFX_PASSWORD"] == pfx_password
