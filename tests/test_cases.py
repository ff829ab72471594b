"""Real-world CA reply faults, each run through ca_reply (and pkcs12) with the real openssl."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from caseutil import (
    DATA, PFX_PASSWORD, copy_data, failure, notes, open_pfx, reply_steps, run_steps, subjects,
)
from certpipe.artifacts import checks
from certpipe.artifacts.intake import load_pkcs12_file, read_certificates, read_contents
from certpipe.artifacts.keys import public_key_fingerprint, read_private_key
from certpipe.errors import ArtifactError, CheckFailed
from conftest import needs_openssl

pytestmark = needs_openssl


@pytest.fixture(autouse=True)
def _pfx_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PASSWORD", PFX_PASSWORD)


def openssl(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


# A DER .p7b, stored root, intermediate, leaf (leaf last), with a CSR from an openssl key.

def test_der_p7b_leaf_last_gives_leaf_and_intermediate(tmp_path):
    work = copy_data("der-p7b-leaf-last", tmp_path)
    report = run_steps(work, reply_steps("certnew.p7b", "key.pem",
                                         csr="www.example.test.csr"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    bundle = open_pfx(work / "out.pfx")
    key = read_private_key(work / "key.pem")
    assert bundle.key is not None
    assert bundle.key.public_key() == key.public_key()
    assert bundle.cert is not None
    assert subjects([bundle.cert.certificate])[0].startswith("CN=www.example.test,")
    chain = [c.certificate for c in bundle.additional_certs]
    assert len(chain) == 1
    assert subjects(chain)[0].startswith("CN=Example Test Issuing CA 1,")


def test_der_p7b_pfx_has_one_key_bag(tmp_path):
    work = copy_data("der-p7b-leaf-last", tmp_path)
    assert run_steps(work, reply_steps("certnew.p7b", "key.pem")).exit_code == 0
    info = subprocess.run(
        ["openssl", "pkcs12", "-in", str(work / "out.pfx"), "-passin", "env:PFX_PASSWORD",
         "-info", "-noout"], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert info.stderr.count("Shrouded Keybag") == 1


def test_der_p7b_include_root_puts_root_last(tmp_path):
    work = copy_data("der-p7b-leaf-last", tmp_path)
    report = run_steps(work, reply_steps("certnew.p7b", "key.pem", include_root=True))
    assert report.exit_code == 0, [s.message for s in report.steps]
    chain = [c.certificate for c in open_pfx(work / "out.pfx").additional_certs]
    assert [s.split(",")[0] for s in subjects(chain)] == [
        "CN=Example Test Issuing CA 1", "CN=Example Test Root CA"]


def test_leaf_only_cer_reports_missing_intermediate(tmp_path):
    work = copy_data("der-p7b-leaf-last", tmp_path)
    report = run_steps(work, reply_steps("certnew.cer", "key.pem"))
    assert report.exit_code == 1
    assert "chain incomplete: issuer 'CN=Example Test Issuing CA 1" in failure(report)
    assert not (work / "out.pfx").exists()


def test_leaf_only_cer_with_p7b_as_extra(tmp_path):
    work = copy_data("der-p7b-leaf-last", tmp_path)
    report = run_steps(work, reply_steps("certnew.cer", "key.pem",
                                         extra_certs=["certnew.p7b"]))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert len(open_pfx(work / "out.pfx").additional_certs) == 1
    assert any("duplicate" in note for note in notes(report))


# The certificate fits a CSR whose key is on another machine.

def test_cert_for_key_elsewhere_names_all_three(tmp_path):
    work = copy_data("cert-for-key-elsewhere", tmp_path)
    report = run_steps(work, reply_steps("certnew.cer", "key.pem", csr="iis-request.csr",
                                         extra_certs=["intermediate.cer"]))
    assert report.exit_code == 1
    message = failure(report)
    assert str(work / "certnew.cer") in message
    assert str(work / "key.pem") in message
    assert str(work / "iis-request.csr") in message
    assert "matches the CSR" in message
    assert "wherever" in message
    assert "was generated" in message
    assert "re-issue" in message
    assert not (work / "out.pfx").exists()
    assert not (work / "out.crt").exists()


# The wrong file is given as the private key.

@pytest.mark.parametrize("key, expected", [
    ("account.key", "their public keys differ"),
    ("server.csr", "server.csr is a certificate request (PKCS#10), not a private key"),
    ("ta.key", "ta.key holds PEM label 'OpenVPN Static key V1', not a private key"),
])
def test_wrong_key_file_fails_before_export(tmp_path, key, expected):
    work = copy_data("wrong-file-as-key", tmp_path)
    report = run_steps(work, reply_steps("server.crt", key, extra_certs=["chain.crt"],
                                         untrusted_chain="warn"))
    assert report.exit_code == 1
    message = failure(report)
    assert expected in message
    assert key in message
    if key == "account.key":
        assert "server.crt" in message
    assert not (work / "out.pfx").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".out.pfx")]


def test_wrong_key_file_right_key_exports(tmp_path):
    work = copy_data("wrong-file-as-key", tmp_path)
    report = run_steps(work, reply_steps("server.crt", "server.key", extra_certs=["chain.crt"]))
    assert report.exit_code == 0, [s.message for s in report.steps]
    bundle = open_pfx(work / "out.pfx")
    assert bundle.key.public_key() == read_private_key(work / "server.key").public_key()
    assert len(bundle.additional_certs) == 1


def test_wrong_key_in_pkcs12_step_alone(tmp_path):
    work = copy_data("wrong-file-as-key", tmp_path)
    steps = [{"name": "pfx", "kind": "pkcs12", "key": "account.key", "cert": "server.crt",
              "chain": "chain.crt", "password": "env:PFX_PASSWORD", "out": "out.pfx"}]
    report = run_steps(work, steps)
    assert report.exit_code == 1
    assert "account.key" in failure(report)
    assert "server.crt" in failure(report)
    assert not (work / "out.pfx").exists()


# One .p7b in DER, in PEM, and base64 under a CERTIFICATE label.

P7B_FILES = ["certnew-der.p7b", "certnew-pem.p7b", "certnew-b64.p7b"]


def test_p7b_encodings_give_same_certificates():
    found = [[c.fingerprint(c.signature_hash_algorithm).hex()
              for c in read_certificates(DATA / "p7b-three-encodings" / f).certs]
             for f in P7B_FILES]
    assert len(found[0]) == 3
    assert found[0] == found[1] == found[2]


@pytest.mark.parametrize("reply", P7B_FILES)
def test_p7b_encodings_give_same_pfx(tmp_path, reply):
    work = copy_data("p7b-three-encodings", tmp_path)
    report = run_steps(work, reply_steps(reply, "key.pem"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    bundle = open_pfx(work / "out.pfx")
    assert subjects([bundle.cert.certificate])[0].startswith("CN=portal.example.test")
    assert len(bundle.additional_certs) == 1


def test_p7b_mislabelled_is_noted():
    contents = read_certificates(DATA / "p7b-three-encodings" / "certnew-b64.p7b")
    assert any("PKCS#7 bundle under a 'CERTIFICATE' label" in n for n in contents.notes)


def test_damaged_p7b_names_encoding_tried(tmp_path):
    raw = (DATA / "p7b-three-encodings" / "certnew-pem.p7b").read_text()
    lines = raw.splitlines()
    lines[5] = lines[5][:10] + "!!" + lines[5][12:]
    damaged = tmp_path / "damaged.p7b"
    damaged.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArtifactError, match="PEM block 'PKCS7' holds invalid base64"):
        read_certificates(damaged)
    cut = tmp_path / "cut.p7b"
    cut.write_bytes((DATA / "p7b-three-encodings" / "certnew-der.p7b").read_bytes()[:900])
    with pytest.raises(ArtifactError, match="DER data is cut short"):
        read_certificates(cut)


# Chain shuffled or root first, two intermediates.

@pytest.mark.parametrize("reply", ["bundle.p7b", "fullchain-rootfirst.pem"])
def test_root_first_chain_is_reordered(tmp_path, reply):
    work = copy_data("chain-root-first", tmp_path)
    report = run_steps(work, reply_steps(reply, "key.pem", fullchain_out="fullchain.pem"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    expected = ["CN=mail.example.test", "CN=Example Test Issuing CA 2",
                "CN=Example Test Policy CA"]
    full = read_certificates(work / "fullchain.pem").certs
    assert [s.split(",")[0] for s in subjects(full)] == expected
    for cert, issuer in zip(full, full[1:], strict=False):
        assert cert.issuer == issuer.subject
    bundle = open_pfx(work / "out.pfx")
    bags = [bundle.cert.certificate] + [c.certificate for c in bundle.additional_certs]
    assert [s.split(",")[0] for s in subjects(bags)] == expected


def test_root_first_chain_keep_root(tmp_path):
    work = copy_data("chain-root-first", tmp_path)
    report = run_steps(work, reply_steps("bundle.p7b", "key.pem", include_root=True))
    assert report.exit_code == 0, [s.message for s in report.steps]
    chain = read_certificates(work / "out.chain.pem").certs
    assert [s.split(",")[0] for s in subjects(chain)] == [
        "CN=Example Test Issuing CA 2", "CN=Example Test Policy CA", "CN=Example Test Root CA"]


def test_root_first_pfx_only_leaf_has_key_id(tmp_path):
    work = copy_data("chain-root-first", tmp_path)
    assert run_steps(work, reply_steps("bundle.p7b", "key.pem")).exit_code == 0
    text = openssl("pkcs12", "-in", str(work / "out.pfx"), "-passin", "env:PFX_PASSWORD",
                   "-nokeys")
    assert text.count("BEGIN CERTIFICATE") == 3
    assert text.count("localKeyID") == 1


def test_root_first_chain_verifies_with_input_root(tmp_path):
    work = copy_data("chain-root-first", tmp_path)
    report = run_steps(work, reply_steps("bundle.p7b", "key.pem", pfx=False,
                                         fullchain_out="fullchain.pem"))
    assert report.exit_code == 0
    root = next(c for c in read_certificates(work / "bundle.p7b").certs
                if c.subject == c.issuer)
    (work / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    openssl("verify", "-CAfile", str(work / "root.pem"), "-untrusted",
            str(work / "fullchain.pem"), str(work / "fullchain.pem"))


# DER and PEM behind lying extensions.

def test_extension_lies_build_pfx(tmp_path):
    work = copy_data("extension-lies", tmp_path)
    report = run_steps(work, reply_steps("server.cer", "key.pem",
                                         extra_certs=["intermediate.cer"]))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert (work / "out.pfx").read_bytes()[:1] == b"\x30"
    assert subjects([open_pfx(work / "out.pfx").cert.certificate])[0].startswith(
        "CN=intranet.example.test")


def test_pem_named_pfx_is_refused_as_pkcs12():
    with pytest.raises(ArtifactError) as caught:
        load_pkcs12_file(DATA / "extension-lies" / "server.pfx", b"")
    assert str(caught.value).endswith(
        "server.pfx: is a PEM certificate, not a PKCS#12 file; it contains no private key")


def test_pem_named_pfx_reads_as_reply(tmp_path):
    work = copy_data("extension-lies", tmp_path)
    report = run_steps(work, reply_steps("server.pfx", "key.pem",
                                         extra_certs=["intermediate.cer"]))
    assert report.exit_code == 0, [s.message for s in report.steps]


# CR LF line ends, a missing final newline, END and BEGIN glued together.

@pytest.mark.parametrize("reply, extra", [
    ("chain-crlf.pem", []),
    ("leaf-nonl.crt", ["chain-crlf.pem"]),
    ("bundle-catted.pem", []),
])
def test_crlf_and_glued_pem_give_same_pfx(tmp_path, reply, extra):
    work = copy_data("crlf-glued-pem", tmp_path)
    report = run_steps(work, reply_steps(reply, "key-crlf.pem", extra_certs=extra,
                                         fullchain_out="fullchain.pem"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    bundle = open_pfx(work / "out.pfx")
    assert subjects([bundle.cert.certificate])[0].startswith("CN=vpn.example.test")
    assert len(bundle.additional_certs) == 1
    written = (work / "fullchain.pem").read_bytes()
    assert b"\r" not in written
    assert written.endswith(b"\n")
    assert written.count(b"BEGIN CERTIFICATE") == 2


def test_glued_pem_note_names_file_and_line(tmp_path):
    work = copy_data("crlf-glued-pem", tmp_path)
    report = run_steps(work, reply_steps("bundle-catted.pem", "key-crlf.pem", pfx=False))
    assert report.exit_code == 0
    assert any(f"{work / 'bundle-catted.pem'}:22: an END line and a BEGIN line are glued"
               in note for note in notes(report))


# "Bag Attributes" text around the blocks, key last in the file.

def test_bag_attributes_export_reads_key_and_chain(tmp_path):
    work = copy_data("bag-attributes", tmp_path)
    report = run_steps(work, reply_steps("export.pem", "export.pem",
                                         fullchain_out="fullchain.pem",
                                         allow_incomplete_chain=True))
    assert report.exit_code == 0, [s.message for s in report.steps]
    for name in ["out.crt", "out.chain.pem", "fullchain.pem"]:
        text = (work / name).read_text()
        assert "Attributes" not in text
        assert "subject=" not in text
        assert "issuer=" not in text
    bundle = open_pfx(work / "out.pfx")
    assert subjects([bundle.cert.certificate])[0].startswith("CN=crm.example.test")
    assert len(bundle.additional_certs) == 1


def test_bag_attributes_friendly_name_is_read():
    contents = read_contents(DATA / "bag-attributes" / "leaf-export.pem")
    assert contents.cert_names == ["crm.example.test (Example Org)"]


# Encrypted keys: traditional PEM with DEK-Info, and PKCS#8.

def _encrypted_key_steps(key: str, passphrase: str | None) -> list[dict]:
    settings = {"key_passphrase": passphrase} if passphrase else {}
    return reply_steps("erp.example.test.crt", key, allow_incomplete_chain=True, **settings)


def test_encrypted_key_without_passphrase_fails_at_once(tmp_path):
    work = copy_data("encrypted-rsa-key", tmp_path)
    report = run_steps(work, _encrypted_key_steps("key.pem", None))
    assert report.exit_code == 1
    assert "key.pem is an encrypted private key (DES-EDE3-CBC); give a passphrase source" in (
        failure(report))


def test_encrypted_key_with_passphrase_file_exports(tmp_path):
    work = copy_data("encrypted-rsa-key", tmp_path)
    report = run_steps(work, _encrypted_key_steps("key.pem", "file:passphrase.txt"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    bundle = open_pfx(work / "out.pfx")
    passphrase = (work / "passphrase.txt").read_bytes()
    key = read_private_key(work / "key.pem", _secret(passphrase))
    assert bundle.key.public_key() == key.public_key()
    _assert_no_plaintext_key(work)


def test_encrypted_key_wrong_passphrase_named(tmp_path):
    work = copy_data("encrypted-rsa-key", tmp_path)
    report = run_steps(work, _encrypted_key_steps("key.pem", "file:wrong-passphrase.txt"))
    assert report.exit_code == 1
    assert f"wrong passphrase for {work / 'key.pem'}" in failure(report)
    assert "does not belong" not in failure(report)


@pytest.mark.parametrize("cipher", ["aes-256-cbc", "des3"])
def test_encrypted_pkcs8_key_works_too(tmp_path, cipher):
    work = copy_data("encrypted-rsa-key", tmp_path)
    passphrase = (work / "passphrase.txt").read_text()
    openssl("pkcs8", "-topk8", "-v2", cipher, "-in", str(work / "key.pem"),
            "-passin", "env:KEY_PASS", "-passout", "env:KEY_PASS", "-out", str(work / "p8.pem"),
            env={"KEY_PASS": passphrase})
    assert "BEGIN ENCRYPTED PRIVATE KEY" in (work / "p8.pem").read_text()

    report = run_steps(work, _encrypted_key_steps("p8.pem", None))
    assert "p8.pem is an encrypted private key (PBES2 " in failure(report)
    report = run_steps(work, _encrypted_key_steps("p8.pem", "file:wrong-passphrase.txt"))
    assert f"wrong passphrase for {work / 'p8.pem'}" in failure(report)
    report = run_steps(work, _encrypted_key_steps("p8.pem", "file:passphrase.txt"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    _assert_no_plaintext_key(work)


def _secret(value: bytes):
    from certpipe.secrets import Secret, SecretRef

    return Secret(SecretRef("file:passphrase.txt"), value)


def _assert_no_plaintext_key(work: Path) -> None:
    for path in work.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"BEGIN PRIVATE KEY" not in text, path
            assert b"BEGIN RSA PRIVATE KEY" not in text or b"ENCRYPTED" in text, path


# An EC key from 'openssl ecparam -genkey', with an EC PARAMETERS block first.

def test_ec_key_with_parameters_block_exports_named_curve(tmp_path):
    work = copy_data("ec-key-parameters", tmp_path)
    report = run_steps(work, reply_steps("app.example.test.crt", "key.pem",
                                         csr="app.example.test.csr",
                                         extra_certs=["intermediate.crt"]))
    assert report.exit_code == 0, [s.message for s in report.steps]
    keys = openssl("pkcs12", "-in", str(work / "out.pfx"), "-passin", "env:PFX_PASSWORD",
                   "-nocerts", "-nodes")
    (work / "extracted.pem").write_text(keys)
    text = openssl("pkey", "-in", str(work / "extracted.pem"), "-text", "-noout")
    assert "prime256v1" in text
    openssl("pkey", "-in", str(work / "extracted.pem"), "-out", str(work / "plain.pem"))
    assert "prime-field" not in openssl("asn1parse", "-in", str(work / "plain.pem"))


def test_ec_key_type_reads_as_ec_p256():
    from certpipe.artifacts.keys import describe_key_type

    key = read_private_key(DATA / "ec-key-parameters" / "key.pem")
    assert describe_key_type(key) == "EC P-256"


# Intermediate missing from the reply, or the wrong one supplied.

def test_missing_intermediate_names_issuer_and_url(tmp_path):
    work = copy_data("missing-intermediate", tmp_path)
    report = run_steps(work, reply_steps("server.cer", "key.pem", extra_certs=["root.cer"]))
    assert report.exit_code == 1
    message = failure(report)
    assert (f"chain incomplete: issuer 'CN=Example Test Issuing CA 1,O=Example Org,C=XX' of "
            f"'CN=owa.example.test,O=Example Org,C=XX' ({work / 'server.cer'}) is not among "
            f"the inputs") in message
    assert "http://pki.example.test/issuing-ca-1.cer" in message
    assert not (work / "out.pfx").exists()


def test_wrong_intermediate_is_named(tmp_path):
    work = copy_data("missing-intermediate", tmp_path)
    report = run_steps(work, reply_steps("server.cer", "key.pem",
                                         extra_certs=["root.cer", "wrong-intermediate.cer"]))
    assert report.exit_code == 1
    message = failure(report)
    assert "chain incomplete" in message
    assert (f"{work / 'wrong-intermediate.cer'} (CN=Example Test Issuing CA 2,O=Example Org,"
            f"C=XX) did not issue {work / 'server.cer'}") in message
    assert not (work / "out.pfx").exists()


def test_missing_intermediate_allowed_gives_leaf_only(tmp_path):
    work = copy_data("missing-intermediate", tmp_path)
    report = run_steps(work, reply_steps("server.cer", "key.pem", extra_certs=["root.cer"],
                                         allow_incomplete_chain=True))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert any(n.startswith("warning: chain incomplete") for n in notes(report))
    assert open_pfx(work / "out.pfx").additional_certs == []


# A leaf signed with SHA-1.

def test_sha1_leaf_fails_by_default(tmp_path):
    work = copy_data("sha1-leaf", tmp_path)
    report = run_steps(work, reply_steps("legacy-app.example.test.crt", "key.pem",
                                         extra_certs=["intermediate.crt", "root.crt"]))
    assert report.exit_code == 1
    message = failure(report)
    assert "issuing CA signed the certificate" in message
    assert "legacy-app.example.test.crt" in message
    assert "SHA-1" in message
    assert "ca md too weak" in message
    assert "re-issue the certificate with SHA-256" in message
    assert "SECLEVEL" not in message
    assert not (work / "out.pfx").exists()


def test_sha1_leaf_warns_when_allowed(tmp_path):
    work = copy_data("sha1-leaf", tmp_path)
    report = run_steps(work, reply_steps("legacy-app.example.test.crt", "key.pem",
                                         extra_certs=["intermediate.crt", "root.crt"],
                                         weak_signature="warn"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert any(n.startswith("warning: the issuing CA signed") for n in notes(report))
    assert (work / "out.pfx").exists()


# CSRs without subjectAltName, or with a SAN list that lacks the CN.

@pytest.mark.parametrize("csr, problem", [
    ("www-cn-only.csr", "has no subjectAltName; browsers ignore the CN"),
    ("www-san-lacks-cn.csr", "CN www.example.test is not in the CSR's subjectAltName list"),
    ("www-good.csr", None),
])
def test_csr_alt_name_check(csr, problem):
    from certpipe.artifacts.intake import read_csr

    path = DATA / "csr-san" / csr
    request = read_csr(path)
    if problem is None:
        checks.check_cn_in_alt_names(request, path, "CSR")
        return
    with pytest.raises(CheckFailed, match=problem):
        checks.check_cn_in_alt_names(request, path, "CSR")


def test_generated_csr_carries_cn_in_san(tmp_path):
    steps = [
        {"name": "key", "kind": "private_key", "algorithm": "ec", "out": "k.pem"},
        {"name": "csr", "kind": "csr", "key": "k.pem", "subject": {"CN": "www.example.test"},
         "subject_alt_names": {"dns": ["example.test"]}, "out": "out.csr"},
    ]
    assert run_steps(tmp_path, steps).exit_code == 0
    text = openssl("req", "-in", str(tmp_path / "out.csr"), "-noout", "-text")
    assert "DNS:www.example.test" in text


# Subject values with commas, slashes and plus signs.

def test_subject_from_structured_values_matches_reference(tmp_path):
    import yaml

    work = copy_data("subject-escaping", tmp_path)
    subject = yaml.safe_load((work / "subject.yaml").read_text())
    steps = [{"name": "csr", "kind": "csr", "key": "key.pem", "subject": subject,
              "out": "out.csr"}]
    assert run_steps(work, steps).exit_code == 0
    reference = openssl("req", "-in", str(work / "subject-ok.csr"), "-noout", "-subject",
                        "-nameopt", "RFC2253")
    made = openssl("req", "-in", str(work / "out.csr"), "-noout", "-subject", "-nameopt",
                   "RFC2253")
    assert made == reference
    assert "O=Example\\, Inc." in made
    assert "OU=Sales \\+ Marketing" in made


def test_split_subject_is_caught():
    from certpipe.artifacts.intake import read_csr

    path = DATA / "subject-escaping" / "subject-split.csr"
    expected = [("C", "XX"), ("O", "Example, Inc."), ("OU", "R&D/Web Ops"),
                ("OU", "Sales + Marketing"), ("CN", "www.example.test")]
    with pytest.raises(CheckFailed, match="openssl dropped or changed attributes"):
        checks.check_subject(read_csr(path).subject, expected, path)


def test_issued_subject_change_is_noted(tmp_path):
    from certfactory import pem as pem_of
    from certfactory import root

    from certpipe.artifacts.intake import read_csr

    work = copy_data("subject-escaping", tmp_path)
    key = read_private_key(work / "key.pem")
    ca = root("Subject Test Root")
    issuing = ca.issue("Subject Test Issuing", ca=True)
    csr = read_csr(work / "subject-ok.csr")
    leaf = issuing.issue("www.example.test", key=key, dns=["www.example.test"])
    (work / "reply.pem").write_bytes(pem_of(leaf.cert, issuing.cert, ca.cert))
    report = run_steps(work, reply_steps("reply.pem", "key.pem", pfx=False,
                                         csr="subject-ok.csr"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert any(n.startswith("the CA changed the subject: requested "
                            f"{csr.subject.rfc4514_string()!r}") for n in notes(report))
    assert public_key_fingerprint(leaf.cert.public_key()) == public_key_fingerprint(
        csr.public_key())

