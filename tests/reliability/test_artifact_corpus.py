"""Malformed artifacts fed to the steps that read them: clean errors, nothing changed.

Each case replaces one input of a single-step pipeline (the CA's reply, the
key, the CSR, a chain or extra certificate file, the certificate of a PFX,
an existing key) with damaged or wrong content made from the seeded work
directory's real files. The step must exit 1 naming itself and the file,
and the work directory must stay byte for byte as it was.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Callable

import pytest

from reliability.conftest import CERT, CHAIN, CSR, KEY, PFX, REPLY
from reliability.harness import (
    TRACEBACK_MARK, describe_changes, run_certpipe, snapshot, tally, temp_files,
)

ARTIFACT_TALLY = "artifacts"

STEPS = {
    "reply": f"""\
  - name: a-reply
    kind: ca_reply
    reply: {{reply}}
    key: {{key}}
    csr: {{csr}}
    extra_certs: [{{extra}}]
    cert_out: out.crt
    chain_out: out.chain.pem
""",
    "csr": """\
  - name: a-csr
    kind: csr
    key: {key}
    subject: {{CN: www.example.test}}
    out: out.csr
""",
    "pfx": """\
  - name: a-pfx
    kind: pkcs12
    key: {key}
    cert: {cert}
    chain: {chain}
    password: env:PFX_PASSWORD
    out: out.pfx
""",
    "sign": """\
  - name: a-sign
    kind: local_ca
    csr: {csr}
    out: out.p7b
""",
    "key": """\
  - name: a-key
    kind: private_key
    algorithm: rsa
    out: {key}
""",
}
DEFAULTS = {"reply": REPLY, "key": KEY, "csr": CSR, "extra": CHAIN, "cert": CERT,
            "chain": CHAIN}
BAD = "bad.input"

Maker = Callable[[Path], bytes]


def read(name: str) -> Maker:
    return lambda work: (work / name).read_bytes()


def pem_body(name: str) -> Maker:
    return lambda work: b"".join((work / name).read_bytes().splitlines()[1:-1])


def noise(size: int, seed: int) -> Maker:
    return lambda work: random.Random(seed).randbytes(size)


def truncated(name: str, fraction: float) -> Maker:
    return lambda work: (work / name).read_bytes()[:int(len((work / name).read_bytes())
                                                         * fraction)]


def flipped(name: str, offset_from_end: int) -> Maker:
    def make(work: Path) -> bytes:
        data = bytearray((work / name).read_bytes())
        data[-offset_from_end] ^= 0x55
        return bytes(data)
    return make


def concat(*makers: Maker) -> Maker:
    return lambda work: b"".join(maker(work) for maker in makers)


def const(data: bytes) -> Maker:
    return lambda work: data


def utf16(maker: Maker) -> Maker:
    return lambda work: maker(work).decode("latin-1").encode("utf-16")


def reencoded_pem(label: str, maker: Maker) -> Maker:
    def make(work: Path) -> bytes:
        body = base64.encodebytes(maker(work)).decode()
        return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()
    return make


# Bad contents, each tried in the slots where it makes sense.
CONTENTS: dict[str, Maker] = {
    "empty": const(b""),
    "whitespace": const(b" \r\n\t\n"),
    "binary-noise": noise(2048, 1),
    "der-like-noise": concat(const(b"\x30\x82\x01\x00"), noise(256, 2)),
    "html-error-page": const(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n"),
    "plain-text": const(b"Your certificate is attached.\nRegards, the CA\n"),
    "begin-without-end": concat(const(b"-----BEGIN CERTIFICATE-----\n"), pem_body(CERT)),
    "pem-bad-base64": const(b"-----BEGIN CERTIFICATE-----\nMIIB$$$not*base64\n"
                            b"-----END CERTIFICATE-----\n"),
    "pem-cert-garbage-der": reencoded_pem("CERTIFICATE", noise(300, 3)),
    "unknown-pem-label": reencoded_pem("OPENSSH PRIVATE KEY", noise(200, 4)),
    "public-key": reencoded_pem("PUBLIC KEY", noise(64, 5)),
    "ec-parameters-only": const(b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
                                b"-----END EC PARAMETERS-----\n"),
    "utf16-noise": utf16(const(b"not a certificate at all")),
    "jpeg": concat(const(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), noise(200, 6)),
    "gzip": concat(const(b"\x1f\x8b\x08\x00"), noise(200, 7)),
    "the-key": read(KEY),
    "the-csr": read(CSR),
    "the-pfx": read(PFX),
    "truncated-pfx": truncated(PFX, 0.5),
    "truncated-pem-key": truncated(KEY, 0.6),
    "truncated-pem-cert": truncated(CERT, 0.5),
    "truncated-pem-csr": truncated(CSR, 0.7),
    "truncated-der-reply": truncated(REPLY, 0.5),
    "der-reply-minus-one-byte": truncated(REPLY, 0.999),
    "corrupted-csr-signature": reencoded_pem(
        "CERTIFICATE REQUEST",
        lambda work: flipped_der(work / CSR)),
    "the-reply-as-key": read(REPLY),
    "the-cert-as-key": read(CERT),
    "the-chain": read(CHAIN),
}


def flipped_der(path: Path) -> bytes:
    lines = path.read_bytes().splitlines()[1:-1]
    der = bytearray(base64.b64decode(b"".join(lines)))
    der[-3] ^= 0x55  # inside the signature bit string
    return bytes(der)


# (slot, step, contents, expected message fragment; {bad} is the bad file's path)
CASES: list[tuple[str, str, str, str]] = []
for contents, fragment in [
    ("empty", "{bad}: the file is empty, expected certificates"),
    ("whitespace", "{bad}: the file is empty, expected certificates"),
    ("binary-noise", "{bad}: is binary data that is not DER"),
    ("der-like-noise", "{bad}: is DER data of an unknown kind"),
    ("html-error-page", "{bad}: is an HTML or XML page"),
    ("plain-text", "{bad}: is a text file without any PEM block"),
    ("begin-without-end", "{bad}:1: the 'CERTIFICATE' block has a BEGIN line but no matching END"),
    ("pem-bad-base64", "{bad}:1: the PEM block 'CERTIFICATE' holds invalid base64"),
    ("pem-cert-garbage-der", "{bad}:1: the 'CERTIFICATE' block is not a valid X.509"),
    ("unknown-pem-label", "{bad}: is PEM label 'OPENSSH PRIVATE KEY', not a certificate"),
    ("utf16-noise", "{bad}: is a text file without any PEM block"),
    ("jpeg", "{bad}: is binary data that is not DER (first byte 0xff)"),
    ("gzip", "{bad}: is a gzip-compressed file, not certificate material"),
    ("the-key", "{bad}: is a PEM private key, not a certificate"),
    ("the-csr", "{bad}: is a PEM certificate request, not a certificate"),
    ("the-pfx", "{bad}: is a PKCS#12 (PFX) file protected by a password"),
    ("truncated-pfx", "{bad}: DER data is cut short"),
    ("truncated-pem-cert", "{bad}:1: the 'CERTIFICATE' block has a BEGIN line but no matching END"),
    ("truncated-der-reply", "{bad}: DER data is cut short"),
    ("der-reply-minus-one-byte", "{bad}: DER data is cut short"),
]:
    CASES.append(("reply", "reply", contents, fragment))
for contents, fragment in [
    ("empty", "{bad}: the file is empty, expected a private key"),
    ("binary-noise", "{bad}: is binary data that is not DER"),
    ("plain-text", "{bad}: is a text file without any PEM block"),
    ("truncated-pem-key", "{bad}:1: the 'PRIVATE KEY' block has a BEGIN line but no matching END"),
    ("the-cert-as-key", "{bad} holds PEM certificate, but no private key"),
    ("the-csr", "{bad} is a certificate request (PKCS#10), not a private key"),
    ("the-pfx", "{bad} is a PKCS#12 (PFX) file; give the PEM private key instead"),
    ("the-reply-as-key", "{bad} holds DER PKCS#7 bundle of 3 certificates, but no private key"),
    ("public-key", "{bad}:1: the p"),
    ("ec-parameters-only", "{bad} holds PEM file with no certificate, key or request"),
    ("unknown-pem-label", "{bad} holds PEM label 'OPENSSH PRIVATE KEY', not a private key"),
]:
    CASES.append(("key", "csr", contents, fragment))
    CASES.append(("key", "reply", contents, fragment))
for contents, fragment in [
    ("empty", "{bad}: the file is empty, expected a certificate request"),
    ("the-key", "{bad}: holds PEM private key; expected exactly one certificate request"),
    ("truncated-pem-csr", "{bad}:1: the 'CERTIFICATE REQUEST' block has a BEGIN line but no matching END"),
    ("the-reply-as-key", "{bad}: holds DER PKCS#7 bundle of 3 certificates; expected exactly one"),
    ("corrupted-csr-signature", "{bad}"),
]:
    CASES.append(("csr", "sign", contents, fragment))
for contents, fragment in [
    ("the-key", "{bad}: is a PEM private key, not a certificate"),
    ("the-pfx", "{bad}: is a PKCS#12 (PFX) file"),
    ("truncated-pem-cert", "{bad}:1: the 'CERTIFICATE' block has a BEGIN line but no matching END"),
    ("the-chain", "the certificate does not belong to the key"),
    ("binary-noise", "{bad}: is binary data that is not DER"),
]:
    CASES.append(("cert", "pfx", contents, fragment))
for contents, fragment in [
    ("the-key", "{bad}: is a PEM private key, not a certificate"),
    ("plain-text", "{bad}: is a text file without any PEM block"),
    ("truncated-pem-cert", "{bad}:1: the 'CERTIFICATE' block has a BEGIN line but no matching END"),
    ("the-pfx", "{bad}: is a PKCS#12 (PFX) file"),
]:
    CASES.append(("chain", "pfx", contents, fragment))
    CASES.append(("extra", "reply", contents, fragment))
for contents, fragment in [
    ("binary-noise", "{bad}: is binary data that is not DER"),
    ("the-cert-as-key", "{bad} holds PEM certificate, but no private key"),
    ("truncated-pem-key", "{bad}:1: the 'PRIVATE KEY' block has a BEGIN line but no matching END"),
    ("empty", "{bad}: the file is empty, expected a private key"),
]:
    CASES.append(("key", "key", contents, fragment))
    CASES.append(("key", "pfx", contents, fragment))

IDS = [f"{step}-{slot}-{contents}" for slot, step, contents, _ in CASES]


def test_artifact_corpus_size():
    assert len(CASES) >= 50
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("slot, step, contents, fragment", CASES, ids=IDS)
def test_malformed_artifact(slot: str, step: str, contents: str, fragment: str,
                            workdir: Path, tmp_path: Path):
    bad = workdir / BAD
    bad.write_bytes(CONTENTS[contents](workdir))
    names = {**DEFAULTS, slot: BAD}
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("version: 1\nsteps:\n" + STEPS[step].format(**names), encoding="utf-8")
    before = snapshot(workdir)

    outcome = run_certpipe("run", pipeline, "--workdir", workdir)

    changes = describe_changes(before, snapshot(workdir))
    tally(ARTIFACT_TALLY).record(outcome, 1, bool(changes))
    assert not outcome.crash, outcome.crash
    assert TRACEBACK_MARK not in outcome.text
    assert outcome.exit_code == 1, outcome.err
    assert f"step 'a-{step}' failed: " in outcome.err
    assert fragment.format(bad=bad) in outcome.err
    assert changes == []
    assert temp_files(workdir) == []
