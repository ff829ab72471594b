"""Test support for the PKCS#12 and server-file steps: a small PKI, a parser for
``openssl pkcs12 -info`` output, and a fake openssl that reports another version.

Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DATA = Path(__file__).resolve().parent / "data"
REAL_OPENSSL = shutil.which("openssl") or "openssl"


@dataclass
class Pki:
    """Files of a three-level PKI: root, intermediate, leaf and the leaf's key."""

    folder: Path
    key: Path
    leaf: Path
    chain: Path  # the intermediate alone
    chain_with_root: Path
    root: Path
    leaf_cert: x509.Certificate
    intermediate_cert: x509.Certificate
    root_cert: x509.Certificate

    def copy_to(self, folder: Path) -> None:
        for path in (self.key, self.leaf, self.chain, self.chain_with_root, self.root):
            shutil.copy(path, folder / path.name)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name: x509.Name, issuer_key, ca: bool,
           now: dt.datetime) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue("Example Test Root", root_key, _name("Example Test Root"), root_key, True, now)
    inter = _issue("Example Test Issuing", inter_key, root.subject, root_key, True, now)
    leaf = _issue("www.example.test", leaf_key, inter.subject, inter_key, False, now)

    def pem(*certs: x509.Certificate) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    files = {
        "key": ("www.key", leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        "leaf": ("www.crt", pem(leaf)),
        "chain": ("chain.pem", pem(inter)),
        "chain_with_root": ("chain-with-root.pem", pem(inter, root)),
        "root": ("root.pem", pem(root)),
    }
    paths = {}
    for role, (name, data) in files.items():
        paths[role] = folder / name
        paths[role].write_bytes(data)
    paths["key"].chmod(0o600)
    return Pki(folder, paths["key"], paths["leaf"], paths["chain"], paths["chain_with_root"],
               paths["root"], leaf, inter, root)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One PKI for the whole session (EC keys, made in-process in milliseconds)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def workdir(tmp_path: Path, pki: Pki) -> Path:
    """A work directory holding a copy of the PKI files."""
    folder = tmp_path / "work"
    folder.mkdir()
    pki.copy_to(folder)
    return folder


@dataclass
class OpenSSLInfo:
    """What ``openssl pkcs12 -info -noout`` printed about a file."""

    mac_digest: str
    mac_iterations: int
    encrypted_data: list[str] = field(default_factory=list)
    plain_data: int = 0
    shrouded_keys: list[str] = field(default_factory=list)
    certificate_bags: int = 0
    text: str = ""


def openssl_info(path: Path, password: str | bytes) -> OpenSSLInfo:
    """Run the real ``openssl pkcs12 -info`` and parse what it reports (on stderr)."""
    value = password if isinstance(password, bytes) else password.encode()
    env = {**os.environ, "PFX_CHECK_PW": os.fsdecode(value)}
    result = subprocess.run(
        [REAL_OPENSSL, "pkcs12", "-info", "-noout", "-in", str(path), "-passin",
         "env:PFX_CHECK_PW"],
        capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stderr
    text = result.stderr + result.stdout
    mac = re.search(r"^MAC: (\S+), Iteration (\d+)", text, re.M)
    assert mac is not None, text
    info = OpenSSLInfo(mac[1], int(mac[2]), text=text)
    for line in text.splitlines():
        if line.startswith("PKCS7 Encrypted data: "):
            info.encrypted_data.append(line.split(": ", 1)[1])
        elif line == "PKCS7 Data":
            info.plain_data += 1
        elif line.startswith("Shrouded Keybag: "):
            info.shrouded_keys.append(line.split(": ", 1)[1])
        elif line == "Certificate bag":
            info.certificate_bags += 1
    return info


FAKE_SCRIPT = """\
#!{python}
# A stand-in for openssl: it records its arguments, prints FAKE_OPENSSL_VERSION
# for 'version', can inject faults, and hands every other command to
# the real openssl.
import json, os, sys

args = sys.argv[1:]
log = os.environ.get("FAKE_OPENSSL_LOG")
if log:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(args) + "\\n")
mode = os.environ.get("FAKE_OPENSSL_MODE", "")
if args == ["version"]:
    sys.stdout.write(os.environ.get("FAKE_OPENSSL_VERSION", "") + "\\n")
    sys.exit(int(os.environ.get("FAKE_OPENSSL_VERSION_EXIT", "0")))
if mode == "reject-iter" and "-iter" in args:
    sys.stderr.write("pkcs12: Unrecognized flag iter\\n")
    sys.exit(1)
if mode == "password-bytes" and args[:2] == ["pkcs12", "-export"]:
    # Behave like LibreSSL: build the PKCS#12 password from the bytes, not the
    # characters. Handing the real openssl each byte as a Latin-1 character
    # gives the same BMPString.
    value = os.environb[b"CERTPIPE_PASSOUT"]
    os.environ["CERTPIPE_PASSOUT"] = value.decode("latin-1")
if mode == "write-aes" and args[:2] == ["pkcs12", "-export"]:
    # An openssl that ignores the algorithm options and writes its default.
    args = [a for a in args]
    for flag in ("-certpbe", "-keypbe", "-macalg"):
        index = args.index(flag)
        del args[index:index + 2]
os.execv({real!r}, [{real!r}] + args)
"""


@dataclass
class FakeOpenSSL:
    path: Path
    log: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]

    def commands(self, name: str) -> list[list[str]]:
        return [call for call in self.calls() if call[:1] == [name]]


@pytest.fixture
def fake_openssl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Return a function that installs a fake openssl reporting VERSION as CERTPIPE_OPENSSL."""

    def install(version: str, mode: str = "") -> FakeOpenSSL:
        folder = tmp_path / "fake-bin"
        folder.mkdir(exist_ok=True)
        script = folder / "openssl"
        script.write_text(textwrap.dedent(FAKE_SCRIPT).format(python=sys.executable,
                                                              real=REAL_OPENSSL), "utf-8")
        script.chmod(0o755)
        log = folder / "calls.jsonl"
        monkeypatch.setenv("CERTPIPE_OPENSSL", str(script))
        monkeypatch.setenv("FAKE_OPENSSL_VERSION", version)
        monkeypatch.setenv("FAKE_OPENSSL_LOG", str(log))
        monkeypatch.setenv("FAKE_OPENSSL_MODE", mode)
        return FakeOpenSSL(script, log)

    return install


def pkcs12_pipeline(extra: str = "", out: str = "www.pfx", chain: str = "chain.pem") -> str:
    """Return a one-step pipeline exporting the PKI's key, leaf and chain to a .pfx."""
    text = f"""\
        version: 1
        steps:
          - name: pfx
            kind: pkcs12
            key: www.key
            cert: www.crt
            chain: {chain}
            password: env:PFX_PASSWORD
            out: {out}
        """
    text = textwrap.dedent(text)
    if extra:
        text += textwrap.indent(textwrap.dedent(extra), "    ")
    return text
