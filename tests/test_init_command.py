"""``certpipe init`` templates and ``certpipe --version``."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from cryptography import x509

from certpipe.commands.init import TEMPLATES
from conftest import ROOT, needs_openssl

SCHEMA_FILE = ROOT / "certpipe" / "pipeline" / "schema.json"
MODELINE_RE = re.compile(r"\A# yaml-language-server: \$schema=(\S+)\n")


@pytest.mark.parametrize("template", TEMPLATES)
def test_init_template_validates(cli, tmp_path, template):
    path = tmp_path / f"{template}.yaml"

    result = cli("init", "--template", template, path)

    assert result.exit_code == 0, result.err
    assert f"wrote {path} from the {template} template" in result.out
    validated = cli("validate", path)
    assert validated.exit_code == 0, validated.err
    assert "valid (" in validated.out


@pytest.mark.parametrize("template", TEMPLATES)
def test_init_output_passes_editor_schema(cli, tmp_path, template):
    path = tmp_path / "pipeline.yaml"
    assert cli("init", "--template", template, path).exit_code == 0

    text = path.read_text(encoding="utf-8")
    match = MODELINE_RE.match(text)
    assert match is not None
    schema_path = Path(match.group(1))
    assert schema_path.is_absolute()
    assert schema_path.read_text(encoding="utf-8") == SCHEMA_FILE.read_text(encoding="utf-8")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(text)))
    assert errors == []


@needs_openssl
@pytest.mark.parametrize("template", TEMPLATES)
def test_init_output_runs_until_pending(cli, tmp_path, template):
    path = tmp_path / "pipeline.yaml"
    assert cli("init", "--template", template, "--host", "shop.example.test", path).exit_code == 0

    result = cli("run", path, "--workdir", tmp_path / "out")

    assert result.exit_code == 75, result.err
    assert (tmp_path / "out" / "shop.example.test.csr").exists()
    assert str(tmp_path / "out" / "certnew.p7b") in result.err


def _sign_with_local_ca(cli, csr: Path, reply: Path, folder: Path) -> None:
    """Play the CA: sign *csr* with a local_ca pipeline in *folder* and save *reply*."""
    folder.mkdir()
    (folder / "request.csr").write_bytes(csr.read_bytes())
    signer = folder / "signer.yaml"
    signer.write_text("version: 1\nsteps:\n  - name: sign\n    kind: local_ca\n"
                      "    csr: request.csr\n    out: reply.p7b\n", encoding="utf-8")
    assert cli("run", signer, "--workdir", folder).exit_code == 0
    reply.write_bytes((folder / "reply.p7b").read_bytes())


@needs_openssl
@pytest.mark.parametrize("template, served", [
    ("nginx", "shop.example.test.fullchain.pem"),
    ("haproxy", "shop.example.test.pem"),
])
def test_init_server_template_writes_fullchain(cli, tmp_path, template, served):
    path = tmp_path / "pipeline.yaml"
    out = tmp_path / "out"
    assert cli("init", "--template", template, "--host", "shop.example.test", path).exit_code == 0
    assert cli("run", path, "--workdir", out).exit_code == 75
    _sign_with_local_ca(cli, out / "shop.example.test.csr", out / "certnew.p7b", tmp_path / "ca")

    result = cli("run", path, "--workdir", out)

    assert result.exit_code == 0, result.err
    certs = x509.load_pem_x509_certificates((out / served).read_bytes())
    assert len(certs) == 2
    assert certs[0].subject.rfc4514_string() == "CN=shop.example.test,O=Example Org,C=XX"
    assert certs[1].subject == certs[0].issuer


@needs_openssl
def test_init_haproxy_key_beside_crt(cli, tmp_path):
    path = tmp_path / "pipeline.yaml"
    assert cli("init", "--template", "haproxy", path).exit_code == 0

    assert cli("run", path, "--workdir", tmp_path / "out").exit_code == 75

    key = tmp_path / "out" / "www.example.test.pem.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_init_defaults_to_iis_certpipe_yaml(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    result = cli("init")

    assert result.exit_code == 0, result.err
    text = (tmp_path / "certpipe.yaml").read_text(encoding="utf-8")
    assert "name: iis" in text
    assert "kind: pkcs12" in text
    assert "certpipe run certpipe.yaml --workdir OUT" in text
    assert "THIS_FILE" not in text


def test_init_keeps_existing_file(cli, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("# my own pipeline\n", encoding="utf-8")

    result = cli("init", path)

    assert result.exit_code == 2
    assert f"{path} already exists; choose another name, or pass --force" in result.err
    assert path.read_text(encoding="utf-8") == "# my own pipeline\n"


def test_init_force_overwrites(cli, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("# my own pipeline\n", encoding="utf-8")

    result = cli("init", "--force", "--template", "nginx", path)

    assert result.exit_code == 0, result.err
    assert "name: nginx" in path.read_text(encoding="utf-8")


def test_init_rejects_folder(cli, tmp_path):
    result = cli("init", tmp_path)

    assert result.exit_code == 2
    assert f"{tmp_path} is a folder; give a file name such as {tmp_path / 'certpipe.yaml'}" \
        in result.err


def test_init_creates_parent_folders(cli, tmp_path):
    path = tmp_path / "repo" / "pipelines" / "www.yaml"

    result = cli("init", path)

    assert result.exit_code == 0, result.err
    assert path.is_file()


def test_init_to_stdout(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    result = cli("init", "-", "--template", "haproxy")

    assert result.exit_code == 0, result.err
    assert result.out.startswith("# yaml-language-server: $schema=")
    assert "name: haproxy" in result.out
    assert list(tmp_path.iterdir()) == []


def test_init_host_fills_vars(cli, tmp_path):
    path = tmp_path / "pipeline.yaml"

    result = cli("init", "--host", "shop.example.test", path)

    assert result.exit_code == 0, result.err
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["vars"]["host"] == "shop.example.test"


def test_init_wildcard_host_is_quoted(cli, tmp_path):
    path = tmp_path / "pipeline.yaml"

    result = cli("init", "--host", "*.example.test", path)

    assert result.exit_code == 0, result.err
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["vars"]["host"] == "*.example.test"
    assert cli("validate", path).exit_code == 0


@pytest.mark.parametrize("host, message", [
    ("bad host", "is not a valid DNS name"),
    ("-leading.example.test", "is not a valid DNS name"),
    ("a" * 60 + ".example.test", "is longer than 64 characters"),
])
def test_init_rejects_bad_host(cli, tmp_path, host, message):
    path = tmp_path / "pipeline.yaml"

    result = cli("init", f"--host={host}", path)

    assert result.exit_code == 2
    assert message in result.err
    assert not path.exists()


def test_init_schema_path_made_relative(cli, tmp_path):
    path = tmp_path / "pipelines" / "www.yaml"

    result = cli("init", "--schema", tmp_path / "certpipe.schema.json", path)

    assert result.exit_code == 0, result.err
    match = MODELINE_RE.match(path.read_text(encoding="utf-8"))
    assert match is not None
    assert match.group(1) == "../certpipe.schema.json"


def test_init_schema_url_kept(cli, tmp_path):
    path = tmp_path / "www.yaml"
    url = "https://pki.example.test/certpipe/schema.json"

    assert cli("init", "--schema", url, path).exit_code == 0

    assert path.read_text(encoding="utf-8").startswith(f"# yaml-language-server: $schema={url}\n")


def test_init_unknown_template_is_usage_error(cli, tmp_path):
    result = cli("init", "--template", "apache", tmp_path / "x.yaml")

    assert result.exit_code == 2
    assert "invalid choice: 'apache'" in result.err


def test_version_names_openssl(cli):
    result = cli("--version")

    assert result.exit_code == 0
    lines = result.out.splitlines()
    assert re.fullmatch(r"certpipe \d+\.\d+\.\d+\S* \(Python \d+\.\d+\.\d+\S*\)", lines[0])
    assert re.match(r"openssl: (OpenSSL|LibreSSL) \d+\.\d+\.\d+.* at /", lines[1])


def test_version_without_openssl(tmp_path):
    """Run in a subprocess with a PATH that has no openssl."""
    env = {k: v for k, v in os.environ.items() if k != "CERTPIPE_OPENSSL"}
    env["PATH"] = str(tmp_path)

    result = subprocess.run([sys.executable, "-m", "certpipe", "--version"],
                            capture_output=True, text=True, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "openssl: not found"


def test_version_with_too_old_openssl(tmp_path, monkeypatch, cli):
    fake = tmp_path / "openssl"
    fake.write_text('#!/bin/sh\necho "OpenSSL 1.0.2k-fips  26 Jan 2017"\n', encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("CERTPIPE_OPENSSL", str(fake))

    result = cli("--version")

    assert result.exit_code == 0
    assert result.out.splitlines()[1].startswith(
        f"openssl: not usable: {fake} is OpenSSL 1.0.2k-fips  26 Jan 2017, which is too old")
