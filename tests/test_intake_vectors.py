"""Intake over the certificate, PKCS#7 and PKCS#12 files of the cryptography-vectors package.

Every file must be either read correctly or rejected with an ArtifactError;
no file may raise anything else. Where cryptography's own loader reads a
file, intake must find the same certificates.
"""

from __future__ import annotations

import collections
import traceback
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs7

from certpipe.artifacts.intake import inspect_bytes, read_contents
from certpipe.artifacts.keys import load_key_block
from certpipe.errors import ArtifactError
from certpipe.secrets import Secret, SecretRef

vectors = pytest.importorskip("cryptography_vectors")
ROOT = Path(vectors.__file__).resolve().parent
FOLDERS = ["x509", "pkcs7", "pkcs12"]


def _passwords(path: Path) -> list[Secret]:
    """Return the password the package uses for *path* (none for its no-password files)."""
    if "no-pwd" in path.name or "no-password" in path.name:
        return []
    value = b"password" if "PKITS_data" in path.parts else b"cryptography"
    return [Secret(SecretRef("env:VECTORS_PASSWORD"), value)]


def _direct_reading(path: Path) -> list[str] | None:
    """Return the certificates cryptography's own loaders read from *path*, or None."""
    raw = path.read_bytes()
    loaders = [
        lambda: x509.load_pem_x509_certificates(raw),
        lambda: [x509.load_der_x509_certificate(raw)],
        lambda: pkcs7.load_pem_pkcs7_certificates(raw),
        lambda: pkcs7.load_der_pkcs7_certificates(raw),
    ]
    for loader in loaders:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return sorted(c.fingerprint(hashes.SHA256()).hex() for c in loader())
        except Exception:  # noqa: BLE001 - any failure means this loader does not fit
            continue
    return None


# Opening a PKCS#12 file derives keys several times (about 50 ms each for the
# 405 PKITS files), so only every tenth PKITS file is opened; the rest are
# identified without their password.
PKITS_PKCS12_SAMPLE = 10


def _read(path: Path, index: int) -> None:
    passwords = _passwords(path)
    if path.suffix == ".p12" and "PKITS_data" in path.parts and index % PKITS_PKCS12_SAMPLE:
        contents = inspect_bytes(path, path.read_bytes())
        assert contents.pkcs12, f"{path} was not recognised as PKCS#12"
        return
    contents = read_contents(path, passwords=passwords)
    for block in contents.key_blocks:
        try:
            load_key_block(block, path, passwords[0] if passwords else None)
        except ArtifactError:
            pass
    expected = _direct_reading(path)
    if expected is not None:
        found = sorted(c.fingerprint(hashes.SHA256()).hex() for c in contents.certs)
        assert set(expected) <= set(found), f"{path}: certpipe missed certificates"


def test_vectors_read_or_rejected_cleanly(capsys):
    counts: collections.Counter[str] = collections.Counter()
    tracebacks = []
    files = sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*") if p.is_file()
                   and p.suffix != ".py")
    for index, path in enumerate(files):
        counts["tried"] += 1
        try:
            _read(path, index)
        except ArtifactError as exc:
            counts["rejected"] += 1
            assert str(path) in str(exc), f"rejection does not name the file: {exc}"
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001 - the test counts exactly these
            tracebacks.append(f"{path}:\n{traceback.format_exc()}")
        else:
            counts["read"] += 1
    with capsys.disabled():
        print(f"\ncryptography-vectors intake: {counts['tried']} files tried, "
              f"{counts['read']} read, {counts['rejected']} rejected cleanly, "
              f"{len(tracebacks)} tracebacks")
    assert counts["tried"] > 1000
    assert counts["read"] > 900
    assert not tracebacks, "\n".join(tracebacks[:5])
