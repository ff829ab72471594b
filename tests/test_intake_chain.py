"""Chain building and the ca_reply chain checks, on PKIs made in memory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from caseutil import PFX_PASSWORD, failure, notes, open_pfx, reply_steps, run_steps, subjects
from certfactory import DAY, NOW, der, fingerprints, issue, key_pem, root
from certpipe.artifacts.chain import build_chain
from conftest import needs_openssl


@pytest.fixture(autouse=True)
def _pfx_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PASSWORD", PFX_PASSWORD)


def names(certs) -> list[str]:
    return [s.split(",")[0].removeprefix("CN=") for s in subjects(certs)]


def setup_reply(work: Path, leaf, *certs, extra: dict[str, list] | None = None) -> None:
    from certfactory import pem

    (work / "key.pem").write_bytes(key_pem(leaf.key))
    (work / "reply.pem").write_bytes(pem(*certs))
    for name, extra_certs in (extra or {}).items():
        (work / name).write_bytes(pem(*extra_certs))


# build_chain on its own.

def test_cross_signed_prefers_path_to_anchor():
    old_root = root("Old Root")
    new_root = root("New Root")
    issuing_key = issue("tmp").key
    issuing_new = new_root.issue("Issuing", ca=True, key=issuing_key)
    cross = old_root.issue("New Root", ca=True, key=new_root.key)  # new root cross-signed
    leaf = issue("www.example.test", issuer=issuing_new)
    pool = [cross.cert, new_root.cert, issuing_new.cert]

    chain = build_chain(leaf.cert, pool, anchors=[old_root.cert], now=NOW)
    assert names(chain.intermediates) == ["Issuing", "New Root"]
    assert chain.anchor is not None
    assert chain.root is not None and names([chain.root]) == ["Old Root"]
    assert chain.root_from_anchors

    chain = build_chain(leaf.cert, pool, anchors=[new_root.cert], now=NOW)
    assert names(chain.intermediates) == ["Issuing"]
    assert names([chain.root]) == ["New Root"]
    assert not chain.root_from_anchors


def test_renewed_intermediate_prefers_valid_one():
    ca = root()
    key = issue("tmp").key
    expired = issue("Issuing", issuer=ca, ca=True, key=key, not_before=NOW - 900 * DAY,
                    not_after=NOW - 10 * DAY)
    current = issue("Issuing", issuer=ca, ca=True, key=key)
    leaf = issue("www.example.test", issuer=current)
    chain = build_chain(leaf.cert, [expired.cert, current.cert, ca.cert], now=NOW)
    assert fingerprints(chain.intermediates) == fingerprints([current.cert])
    assert fingerprints(chain.unused) == fingerprints([expired.cert])


def test_same_name_impostor_is_not_an_issuer():
    ca = root()
    issuing = ca.issue("Issuing", ca=True)
    impostor = ca.issue("Issuing", ca=True)  # same name, other key
    leaf = issuing.issue("www.example.test")
    chain = build_chain(leaf.cert, [impostor.cert, ca.cert], now=NOW)
    assert chain.missing_issuer_of is leaf.cert


def test_self_signed_leaf_is_complete():
    leaf = issue("self.example.test")
    chain = build_chain(leaf.cert, [], now=NOW)
    assert chain.complete
    assert chain.intermediates == []
    assert chain.root is None


# ca_reply chain checks through a pipeline.

@needs_openssl
def test_expired_intermediate_fails(tmp_path):
    ca = root()
    issuing = ca.issue("Issuing", ca=True, not_after=NOW - DAY, not_before=NOW - 400 * DAY)
    leaf = issuing.issue("www.example.test", not_before=NOW - 30 * DAY)
    setup_reply(tmp_path, leaf, leaf.cert, issuing.cert, ca.cert)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem"))
    assert report.exit_code == 1
    assert "the CA certificate 'CN=Issuing'" in failure(report)
    assert "expired on" in failure(report)
    assert not (tmp_path / "out.pfx").exists()


@needs_openssl
def test_not_yet_valid_root_fails(tmp_path):
    ca = root(not_before=NOW + DAY)
    issuing = ca.issue("Issuing", ca=True)
    leaf = issuing.issue("www.example.test")
    setup_reply(tmp_path, leaf, leaf.cert, issuing.cert, ca.cert)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem"))
    assert report.exit_code == 1
    assert "'CN=Test Root CA'" in failure(report)
    assert "is not valid yet" in failure(report)


@needs_openssl
@pytest.mark.parametrize("options, problem", [
    ({"ca": False}, "it is not a CA certificate (basicConstraints CA:FALSE)"),
    ({"ca": True, "key_cert_sign": False}, "its keyUsage lacks keyCertSign"),
    ({"ca": True, "basic_constraints": False}, "it has no basicConstraints extension"),
])
def test_issuer_that_is_no_ca_fails(tmp_path, options, problem):
    ca = root()
    issuing = ca.issue("Issuing", **options)
    leaf = issuing.issue("www.example.test")
    setup_reply(tmp_path, leaf, leaf.cert, issuing.cert, ca.cert)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem"))
    assert report.exit_code == 1
    assert "'CN=Issuing'" in failure(report)
    assert problem in failure(report)


@needs_openssl
def test_path_length_exceeded_fails(tmp_path):
    ca = root()
    policy = ca.issue("Policy", ca=True, path_length=0)
    issuing = policy.issue("Issuing", ca=True)
    leaf = issuing.issue("www.example.test")
    setup_reply(tmp_path, leaf, leaf.cert, issuing.cert, policy.cert, ca.cert)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem"))
    assert report.exit_code == 1
    assert "its pathLenConstraint allows 0 intermediate CA(s)" in failure(report)


@needs_openssl
def test_duplicates_and_unrelated_are_noted(tmp_path):
    ca = root()
    issuing = ca.issue("Issuing", ca=True)
    other = root("Unrelated Root")
    leaf = issuing.issue("www.example.test")
    setup_reply(tmp_path, leaf, issuing.cert, leaf.cert, issuing.cert, other.cert, ca.cert)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False))
    assert report.exit_code == 0, [s.message for s in report.steps]
    step_notes = notes(report)
    assert any(n.startswith("dropped a duplicate of 'CN=Issuing'") for n in step_notes)
    assert any(n.startswith("left out 'CN=Unrelated Root'") for n in step_notes)


@needs_openssl
def test_intermediate_from_extra_folder(tmp_path):
    ca = root()
    issuing = ca.issue("Issuing", ca=True)
    leaf = issuing.issue("www.example.test")
    folder = tmp_path / "cas"
    folder.mkdir()
    setup_reply(tmp_path, leaf, leaf.cert)
    (folder / "issuing.cer").write_bytes(der(issuing.cert))
    (folder / "root.crt").write_bytes(der(ca.cert))
    (folder / "README.txt").write_text("intermediates from the CA's web site\n")
    for index in range(3):
        (folder / f"other-{index}.cer").write_bytes(der(root(f"Other {index}").cert))
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", extra_certs=["cas"]))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert names([c.certificate for c in open_pfx(tmp_path / "out.pfx").additional_certs]) == [
        "Issuing"]
    step_notes = notes(report)
    assert any("skipped 1 file(s) that hold no certificate" in n for n in step_notes)
    assert any(n.startswith("3 certificate(s) from extra_certs are not part") for n in step_notes)


@needs_openssl
def test_pkcs12_reply_with_password(tmp_path, monkeypatch):
    ca = root()
    issuing = ca.issue("Issuing", ca=True)
    leaf = issuing.issue("www.example.test")
    (tmp_path / "key.pem").write_bytes(key_pem(leaf.key))
    (tmp_path / "reply.pfx").write_bytes(pkcs12.serialize_key_and_certificates(
        b"www", leaf.key, leaf.cert, [ca.cert, issuing.cert],
        serialization.BestAvailableEncryption(b"reply-pass")))
    report = run_steps(tmp_path, reply_steps("reply.pfx", "key.pem"))
    assert report.exit_code == 1
    assert "set reply_password" in failure(report)

    monkeypatch.setenv("REPLY_PASSWORD", "reply-pass")
    report = run_steps(tmp_path, reply_steps("reply.pfx", "key.pem",
                                             reply_password="env:REPLY_PASSWORD"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert names([c.certificate for c in open_pfx(tmp_path / "out.pfx").additional_certs]) == [
        "Issuing"]


# Trust anchors.

def _local_pki(work: Path):
    ca = root("Internal Root")
    issuing = ca.issue("Internal Issuing", ca=True)
    leaf = issuing.issue("www.example.test")
    setup_reply(work, leaf, ca.cert, issuing.cert, leaf.cert)
    return ca, issuing, leaf


@needs_openssl
def test_system_store_miss_only_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing.pem"))
    (tmp_path / "nothing.pem").write_bytes(der(root("Public Root").cert))
    _local_pki(tmp_path)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert any(n.startswith("warning: the chain does not lead to a trust anchor in the system "
                            "trust store") and "trust_anchors: reply" in n
               for n in notes(report))


@needs_openssl
def test_system_store_hit_is_trusted(tmp_path, monkeypatch):
    from certfactory import pem

    ca, issuing, leaf = _local_pki(tmp_path)
    (tmp_path / "store.pem").write_bytes(pem(root("Public Root").cert, ca.cert))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "store.pem"))
    (tmp_path / "reply.pem").write_bytes(pem(leaf.cert, issuing.cert))  # no root in the reply
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False,
                                             untrusted_chain="fail", include_root=True))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert not any(n.startswith("warning") for n in notes(report))
    chain = (tmp_path / "out.chain.pem").read_bytes()
    assert chain.count(b"BEGIN CERTIFICATE") == 2  # the root came from the store


@needs_openssl
def test_system_store_miss_fails_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "store.pem"))
    (tmp_path / "store.pem").write_bytes(der(root("Public Root").cert))
    _local_pki(tmp_path)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", untrusted_chain="fail"))
    assert report.exit_code == 1
    assert "does not lead to a trust anchor" in failure(report)
    assert not (tmp_path / "out.pfx").exists()


@needs_openssl
def test_reply_root_as_anchor(tmp_path):
    _local_pki(tmp_path)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", trust_anchors="reply"))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert not any(n.startswith("warning") for n in notes(report))


@needs_openssl
def test_reply_without_root_fails_reply_anchor(tmp_path):
    from certfactory import pem

    _, issuing, leaf = _local_pki(tmp_path)
    (tmp_path / "reply.pem").write_bytes(pem(leaf.cert, issuing.cert))
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", trust_anchors="reply"))
    assert report.exit_code == 1
    assert "trust_anchors is 'reply' but the reply and extra_certs hold no self-signed root" in (
        failure(report))


@needs_openssl
def test_anchor_files_decide_trust(tmp_path):
    ca, _, _ = _local_pki(tmp_path)
    (tmp_path / "corp-root.cer").write_bytes(der(ca.cert))
    (tmp_path / "other-root.cer").write_bytes(der(root("Other Root").cert))
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False,
                                             trust_anchors=["corp-root.cer"]))
    assert report.exit_code == 0, [s.message for s in report.steps]
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False,
                                             trust_anchors=["other-root.cer"]))
    assert report.exit_code == 1
    assert "does not lead to a trust anchor in trust_anchors (other-root.cer)" in (
        failure(report))


def test_untrusted_default_depends_on_anchors():
    from certpipe.steps.ca_reply import CaReplyStep

    base = {"name": "r", "reply": "a", "key": "k", "cert_out": "c", "chain_out": "d"}
    assert CaReplyStep.from_settings(base).untrusted_chain == "warn"
    assert CaReplyStep.from_settings({**base, "trust_anchors": "reply"}).untrusted_chain == "fail"
    assert CaReplyStep.from_settings(
        {**base, "trust_anchors": ["root.pem"]}).untrusted_chain == "fail"
    assert CaReplyStep.from_settings(
        {**base, "trust_anchors": ["root.pem"], "untrusted_chain": "warn"}
    ).untrusted_chain == "warn"



@needs_openssl
def test_sha1_intermediate_fails(tmp_path):
    import subprocess

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from certfactory import name, new_key, pem

    # openssl signs with the real clock, so this test uses it throughout.
    now = dt.datetime.now(dt.timezone.utc)
    ca = root(not_before=now - DAY, not_after=now + 90 * DAY)
    (tmp_path / "root.pem").write_bytes(pem(ca.cert))
    (tmp_path / "root.key").write_bytes(key_pem(ca.key))
    issuing_key = new_key()
    request = x509.CertificateSigningRequestBuilder().subject_name(name("SHA1 Issuing")).sign(
        issuing_key, hashes.SHA256())
    (tmp_path / "issuing.csr").write_bytes(request.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ext.cnf").write_text(
        "[ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(tmp_path / "issuing.csr"), "-CA",
                    str(tmp_path / "root.pem"), "-CAkey", str(tmp_path / "root.key"), "-sha1",
                    "-days", "30", "-extfile", str(tmp_path / "ext.cnf"), "-extensions", "ca",
                    "-out", str(tmp_path / "issuing.pem")], check=True, capture_output=True)
    issuing_cert = x509.load_pem_x509_certificate((tmp_path / "issuing.pem").read_bytes())
    from certfactory import Issued

    leaf = Issued(issuing_cert, issuing_key).issue("www.example.test", not_before=now - DAY,
                                                   not_after=now + 20 * DAY)
    setup_reply(tmp_path, leaf, leaf.cert, issuing_cert, ca.cert)
    # Check after the signing: openssl's notBefore may fall in a later second than `now`.
    checked_at = dt.datetime.now(dt.timezone.utc)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False), now=checked_at)
    assert report.exit_code == 1
    assert "signed the intermediate CA certificate 'CN=SHA1 Issuing'" in failure(report)
    assert "SHA-1" in failure(report)


@needs_openssl
def test_reply_password_read_only_for_pkcs12(tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET_REPLY_PASSWORD", raising=False)
    _local_pki(tmp_path)
    report = run_steps(tmp_path, reply_steps("reply.pem", "key.pem", pfx=False,
                                             reply_password="env:UNSET_REPLY_PASSWORD"))
    assert report.exit_code == 0, [s.message for s in report.steps]


def test_trust_anchors_schema_rejects_other_words(tmp_path, cli):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "version: 1\nsteps:\n  - name: r\n    kind: ca_reply\n    reply: a.p7b\n    key: k\n"
        "    cert_out: c\n    chain_out: d\n    trust_anchors: windows\n", encoding="utf-8")
    result = cli("validate", pipeline)
    assert result.exit_code == 2
    assert "trust_anchors" in result.err


@needs_openssl
def test_pkcs7_unreadable_falls_back_to_openssl(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.serialization import pkcs7

    import certpipe.artifacts.intake as intake

    ca, issuing, leaf = _local_pki(tmp_path)
    (tmp_path / "reply.p7b").write_bytes(pkcs7.serialize_certificates(
        [ca.cert, issuing.cert, leaf.cert], serialization.Encoding.DER))

    def reject(data: bytes) -> list:
        raise ValueError("simulated parser gap")

    monkeypatch.setattr(intake.pkcs7, "load_der_pkcs7_certificates", reject)
    report = run_steps(tmp_path, reply_steps("reply.p7b", "key.pem", pfx=False))
    assert report.exit_code == 0, [s.message for s in report.steps]
    assert any("read with openssl pkcs7" in n and "simulated parser gap" in n
               for n in notes(report))
    assert (tmp_path / "out.chain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1
