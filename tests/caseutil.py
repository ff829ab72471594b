"""Run ca_reply and pkcs12 steps on copied test data, at a fixed time."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.serialization import pkcs12

from certpipe.engine import RunReport, run_pipeline
from certpipe.openssl import OpenSSL
from certpipe.pipeline.model import load_pipeline
from certpipe.steps.base import StepContext

DATA = Path(__file__).resolve().parent / "data"
# Inside the validity period of every certificate under tests/data.
NOW = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
PFX_PASSWORD = "Test-Pfx-Pass-1"


def copy_data(name: str, dest: Path) -> Path:
    """Copy tests/data/NAME into *dest* and return *dest*."""
    shutil.copytree(DATA / name, dest, dirs_exist_ok=True)
    return dest


def reply_steps(reply: str, key: str, pfx: bool = True, **settings: Any) -> list[dict]:
    """A ca_reply step (and a pkcs12 step after it) with extra ca_reply settings."""
    pkcs12_settings = settings.pop("pkcs12", {})
    steps: list[dict] = [{
        "name": "reply", "kind": "ca_reply", "reply": reply, "key": key,
        "cert_out": "out.crt", "chain_out": "out.chain.pem", **settings,
    }]
    if pfx:
        steps.append({
            "name": "pfx", "kind": "pkcs12", "key": key, "cert": "out.crt",
            "chain": "out.chain.pem", "password": "env:PFX_PASSWORD", "out": "out.pfx",
            **({"key_passphrase": settings["key_passphrase"]}
               if "key_passphrase" in settings else {}),
            **pkcs12_settings,
        })
    return steps


def run_steps(workdir: Path, steps: list[dict], now: dt.datetime = NOW) -> RunReport:
    """Write a pipeline with *steps* into *workdir* and run it there."""
    path = workdir / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "steps": steps}, sort_keys=False), "utf-8")
    pipeline = load_pipeline(path)
    ctx = StepContext(workdir=workdir, openssl_factory=lambda: OpenSSL.discover(None),
                      timeout=60, fixed_now=now)
    return run_pipeline(pipeline, ctx)


def failure(report: RunReport) -> str:
    failed = [s for s in report.steps if s.status == "failed"]
    assert failed, f"expected a failed step, got {[s.status for s in report.steps]}"
    return failed[0].message


def notes(report: RunReport, step: str = "reply") -> list[str]:
    return next(s.result.notes for s in report.steps if s.name == step)


def open_pfx(path: Path) -> pkcs12.PKCS12KeyAndCertificates:
    return pkcs12.load_pkcs12(path.read_bytes(), PFX_PASSWORD.encode())


def subjects(certs: list[Any]) -> list[str]:
    return [c.subject.rfc4514_string() for c in certs]
