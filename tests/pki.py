"""Small helpers that make test PKI material with the real openssl binary."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed: {result.stderr}")
    return result.stdout


def make_key(path: Path, spec: str = "ec") -> Path:
    if spec == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", path)
    else:
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{spec}",
                "-out", path)
    return path


def make_ca(folder: Path, name: str = "Test Root") -> tuple[Path, Path]:
    """Make a self-signed CA; return (certificate, key)."""
    key = make_key(folder / f"{name}.key")
    cert = folder / f"{name}.pem"
    ext = folder / f"{name}.ext"
    ext.write_text("[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
                   "subjectKeyIdentifier=hash\n")
    openssl("req", "-x509", "-new", "-key", key, "-subj", f"/CN={name}", "-days", "30",
            "-config", ext, "-extensions", "v3", "-out", cert)
    return cert, key


def make_csr(folder: Path, key: Path, cn: str, sans: list[str] | None = None) -> Path:
    csr = folder / f"{cn}.csr"
    args: list[str | Path] = ["req", "-new", "-key", key, "-subj", f"/CN={cn}", "-out", csr]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(sans)]
    openssl(*args)
    return csr


def sign(folder: Path, csr: Path, ca: tuple[Path, Path], out: Path, sans: list[str] | None,
         digest: str = "sha256", ca_cert: bool = False, days: int = 30) -> Path:
    ext = folder / (out.name + ".ext")
    lines = ["[v3]", f"basicConstraints=critical,CA:{'TRUE' if ca_cert else 'FALSE'}"]
    if ca_cert:
        lines.append("keyUsage=critical,keyCertSign")
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-set_serial", "7",
            "-days", str(days), f"-{digest}", "-extfile", ext, "-extensions", "v3", "-out", out)
    return out


def make_intermediate(folder: Path, root: tuple[Path, Path], name: str = "Test Issuing"
                      ) -> tuple[Path, Path]:
    key = make_key(folder / f"{name}.key")
    csr = folder / f"{name}.csr"
    openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr)
    cert = sign(folder, csr, root, folder / f"{name}.pem", None, ca_cert=True)
    return cert, key
