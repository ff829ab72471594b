"""``certpipe plan`` shows what ``run`` does; ``certpipe script`` does it with plain sh."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from certpipe.artifacts.intake import read_certificates
from certpipe.artifacts.keys import read_private_key
from certpipe.steps.material import check_order
from certpipe.steps.pkcs12 import default_friendly_name, verify_pfx
from conftest import PIPELINES, needs_openssl
from fake_openssl import FakeOpenSSL

pytestmark = needs_openssl

LOCAL_CA = PIPELINES / "iis-local-ca.yaml"
IIS = PIPELINES / "iis.yaml"


def step_lines(plan: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^\d+\. (\S+) \(\S+\): (.*)$", plan,
                                                        re.MULTILINE)}


def test_plan_before_first_run(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    result = cli("plan", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert step_lines(result.out)["key"] == "would run (no earlier run recorded)"
    assert ("     openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
            "-out www.example.test.key\n") in result.out
    assert "-passout env:PFX_PASSWORD -out www.example.test.pfx" in result.out
    assert "       | DNS.2 = example.test\n" in result.out
    assert pfx_password not in result.out
    assert not work.exists()


def test_plan_after_run_is_up_to_date(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    before = sorted(p.name for p in work.rglob("*"))
    result = cli("plan", LOCAL_CA, "--workdir", work)
    assert result.exit_code == 0, result.err
    assert set(step_lines(result.out).values()) == {"up to date"}
    assert "openssl pkcs7 -inform DER -in ca-reply.p7b -print_certs\n" in result.out
    assert result.out.endswith("5 up to date\n")
    assert sorted(p.name for p in work.rglob("*")) == before


def test_plan_shows_what_a_change_reruns(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", LOCAL_CA, "--workdir", work).exit_code == 0
    result = cli("plan", LOCAL_CA, "--workdir", work, "--force", "sign")
    lines = step_lines(result.out)
    assert lines["key"] == "up to date"
    assert lines["csr"] == "up to date"
    assert lines["sign"] == "would run (--force sign)"
    assert lines["reply"].startswith("would run (step 'sign' would make ca-reply.p7b again")
    assert lines["pfx"].startswith("would run (")


def test_plan_reports_pending_and_blocked(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    assert cli("run", IIS, "--workdir", work).exit_code == 75
    lines = step_lines(cli("plan", IIS, "--workdir", work).out)
    assert lines["reply"] == "pending (certnew.p7b is not there yet)"
    assert lines["pfx"] == "not reached (step 'reply' is pending)"

    (work / "www.example.test.key").unlink()
    lines = step_lines(cli("plan", IIS, "--workdir", work).out)
    assert lines["key"].startswith("blocked (the private key www.example.test.key is missing")


def _normalise(words: list[str]) -> str:
    text = " ".join(words)
    text = re.sub(r"\.([^ /]+)\.certpipe-tmp-[0-9a-f]+", r"\1", text)
    text = re.sub(r"-set_serial 0x[0-9a-f]+", "-set_serial SERIAL", text)
    text = re.sub(r"-name .*? -certpbe", "-name NAME -certpbe", text)
    # A run joins leaf and chain into one file for pkcs12 -in; plan lists the
    # same input as -in LEAF -certfile CHAIN.
    text = re.sub(r"-in \S+ -certfile \S+ -name", "-in LEAF_AND_CHAIN -name", text)
    text = re.sub(r"-in \.certpipe/\S+\.certificates\.pem -name", "-in LEAF_AND_CHAIN -name",
                  text)
    return text.replace("env:PFX_PASSWORD", "env:CERTPIPE_PASSOUT")


def test_plan_commands_are_run_commands(cli, tmp_path, pfx_password, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    planned = cli("plan", LOCAL_CA, "--workdir", ".").out
    fake = FakeOpenSSL(tmp_path / "bin")
    for name, value in fake.env().items():
        if name.startswith(("FAKE_OPENSSL", "CERTPIPE_OPENSSL")):
            monkeypatch.setenv(name, value)
    assert cli("run", LOCAL_CA, "--workdir", ".").exit_code == 0

    expected = []
    for line in planned.splitlines():
        words = shlex.split(line.split("  #")[0]) if line.startswith("     ") else []
        while words and "=" in words[0]:
            words.pop(0)
        if words[:1] == ["openssl"]:
            expected.append(_normalise(words[1:]))
    recorded = [_normalise(call.split(" ")) for call in fake.calls() if call != "version"]
    assert recorded == expected


def run_script(script: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = folder.parent / f"{folder.name}.sh"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(["sh", str(path)], cwd=folder, env=env, capture_output=True,
                          text=True)


def check_pfx(folder: Path, stem: str, password: str) -> None:
    """Apply certpipe's own checks of a .pfx to what the script made."""
    key = read_private_key(folder / f"{stem}.key")
    leaf = read_certificates(folder / f"{stem}.crt").certs[0]
    chain = read_certificates(folder / f"{stem}.chain.pem").certs
    check_order(leaf, chain, folder / f"{stem}.crt", folder / f"{stem}.chain.pem")
    pfx = folder / f"{stem}.pfx"
    verify_pfx(pfx, pfx, password.encode(), key, leaf, chain, default_friendly_name(leaf))


def test_script_makes_pfx_that_certpipe_accepts(cli, tmp_path, pfx_password):
    result = cli("script", LOCAL_CA)
    assert result.exit_code == 0, result.err
    assert pfx_password not in result.out
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {**os.environ, "PFX_PASSWORD": pfx_password}
    done = run_script(result.out, folder, env)
    assert done.returncode == 0, done.stderr
    check_pfx(folder, "www.example.test", pfx_password)
    assert len(read_certificates(folder / "www.example.test.chain.pem").certs) == 1
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca-reply.p7b", "local-ca", "www.example.test.chain.pem", "www.example.test.crt",
        "www.example.test.csr", "www.example.test.key", "www.example.test.pfx"]

    key_bytes = (folder / "www.example.test.key").read_bytes()
    again = run_script(result.out, folder, env)
    assert again.returncode == 0, again.stderr
    assert "key: keeping the existing key www.example.test.key" in again.stdout
    assert (folder / "www.example.test.key").read_bytes() == key_bytes
    check_pfx(folder, "www.example.test", pfx_password)


def test_script_without_password_fails_clearly(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("PFX_PASSWORD", raising=False)
    folder = tmp_path / "empty"
    folder.mkdir()
    done = run_script(cli("script", LOCAL_CA).out, folder, dict(os.environ))
    assert done.returncode == 1
    assert "environment variable PFX_PASSWORD is not set" in done.stderr
    assert not (folder / "www.example.test.pfx").exists()


def test_script_waits_for_reply_then_orders_chain(cli, tmp_path, pfx_password):
    script = cli("script", IIS, "--set", "ca_reply=certnew.pem").out
    folder = tmp_path / "site"
    folder.mkdir()
    env = {**os.environ, "PFX_PASSWORD": pfx_password}
    pending = run_script(script, folder, env)
    assert pending.returncode == 75
    assert "waiting for the CA's reply: send www.example.test.csr to your CA" in pending.stderr

    # Play the CA, then hand back a PEM bundle in the wrong order: root first.
    ca = tmp_path / "ca"
    ca.mkdir()
    shutil.copy(folder / "www.example.test.csr", ca / "request.csr")
    signer = tmp_path / "signer.yaml"
    signer.write_text("version: 1\nsteps:\n  - name: sign\n    kind: local_ca\n"
                      "    csr: request.csr\n    out: reply.p7b\n", encoding="utf-8")
    assert cli("run", signer, "--workdir", ca).exit_code == 0
    certs = read_certificates(ca / "reply.p7b").certs
    from cryptography.hazmat.primitives.serialization import Encoding

    bundle = b"".join(b"some text before\r\n" + c.public_bytes(Encoding.PEM).replace(b"\n", b"\r\n")
                      for c in reversed(certs))
    (folder / "certnew.pem").write_bytes(bundle)

    done = run_script(script, folder, env)
    assert done.returncode == 0, done.stderr
    check_pfx(folder, "www.example.test", pfx_password)


def test_script_reads_password_file(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(LOCAL_CA.read_text().replace("env:PFX_PASSWORD", "file:pw.txt"))
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "pw.txt").write_bytes(b"Pass word;$x\r\n")
    done = run_script(cli("script", pipeline).out, folder, dict(os.environ))
    assert done.returncode == 0, done.stderr
    check_pfx(folder, "www.example.test", "Pass word;$x")


def test_script_for_unknown_reply_key_fails(cli, tmp_path, pfx_password):
    script = cli("script", IIS).out
    folder = tmp_path / "site"
    folder.mkdir()
    env = {**os.environ, "PFX_PASSWORD": pfx_password}
    assert run_script(script, folder, env).returncode == 75
    other = tmp_path / "other"
    assert cli("run", LOCAL_CA, "--workdir", other).exit_code == 0
    shutil.copy(other / "ca-reply.p7b", folder / "certnew.p7b")
    done = run_script(script, folder, env)
    assert done.returncode == 1
    assert "no certificate in certnew.p7b belongs to the key www.example.test.key" in done.stderr
    assert not (folder / "www.example.test.pfx").exists()


@pytest.mark.parametrize("text", [
    "version: 1\nsteps:\n  - name: k\n    kind: private_key\n    algorithm: ec\n    out: a.key\n",
])
def test_script_is_valid_posix_sh(cli, tmp_path, write_pipeline, text):
    script = cli("script", write_pipeline(text)).out
    path = tmp_path / "check.sh"
    path.write_text(script, encoding="utf-8")
    checked = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_script_rejects_incomplete_chain(cli, tmp_path, pfx_password):
    script = cli("script", IIS).out
    folder = tmp_path / "site"
    folder.mkdir()
    env = {**os.environ, "PFX_PASSWORD": pfx_password}
    assert run_script(script, folder, env).returncode == 75
    ca = tmp_path / "ca"
    ca.mkdir()
    shutil.copy(folder / "www.example.test.csr", ca / "request.csr")
    signer = tmp_path / "signer.yaml"
    signer.write_text("version: 1\nsteps:\n  - name: sign\n    kind: local_ca\n"
                      "    csr: request.csr\n    out: reply.p7b\n", encoding="utf-8")
    assert cli("run", signer, "--workdir", ca).exit_code == 0
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = read_certificates(ca / "reply.p7b").certs[0]
    (folder / "certnew.p7b").write_bytes(leaf.public_bytes(Encoding.DER))

    done = run_script(script, folder, env)
    assert done.returncode == 1
    assert "reply: chain incomplete" in done.stderr
    assert not (folder / "www.example.test.crt").exists()


def test_script_reads_pkcs12_reply(cli, tmp_path, write_pipeline, pfx_password):
    made = tmp_path / "made"
    assert cli("run", LOCAL_CA, "--workdir", made).exit_code == 0
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(made / "www.example.test.key", folder / "a.key")
    shutil.copy(made / "www.example.test.pfx", folder / "reply.pfx")
    (folder / "pw.txt").write_text(pfx_password + "\n")
    pipeline = write_pipeline("""\
        version: 1
        steps:
          - name: key
            kind: private_key
            algorithm: rsa
            out: a.key
          - name: reply
            kind: ca_reply
            reply: reply.pfx
            reply_password: file:pw.txt
            allow_incomplete_chain: true
            key: a.key
            cert_out: a.crt
            chain_out: chain.pem
        """)
    done = run_script(cli("script", pipeline).out, folder, dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "warning: reply: chain incomplete" in done.stderr
    leaf = read_certificates(folder / "a.crt").certs
    assert leaf == read_certificates(made / "www.example.test.crt").certs
    chain = read_certificates(folder / "chain.pem").certs
    assert chain == read_certificates(made / "www.example.test.chain.pem").certs


def test_script_prompts_for_prompt_password(cli, tmp_path, write_pipeline):
    text = LOCAL_CA.read_text().replace("env:PFX_PASSWORD",
                                        "prompt")
    script = cli("script", write_pipeline(text)).out
    assert "CERTPIPE_PASSOUT=$(secret_prompt)" in script
    assert "secret_file t" not in script
    work = tmp_path / "empty"
    work.mkdir()
    (work / "t").write_text("not the password\n")
    result = subprocess.run(["sh", "-c", script], cwd=work, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    assert result.returncode == 1
    assert "there is no terminal" in result.stderr
    assert not list(work.glob("*.pfx"))


def test_script_makes_output_folders(cli, tmp_path, write_pipeline):
    text = LOCAL_CA.read_text().replace("out: ${host}.key", "out: keys/${host}.key")
    text = text.replace("key: ${host}.key", "key: keys/${host}.key")
    script = cli("script", write_pipeline(text)).out
    assert "mkdir -p keys" in script
    work = tmp_path / "empty"
    work.mkdir()
    result = subprocess.run(["sh", "-c", script], cwd=work, capture_output=True, text=True,
                            env={**os.environ, "PFX_PASSWORD": "Script-Pass-1"})
    assert result.returncode == 0, result.stderr
    assert (work / "keys" / "www.example.test.key").exists()
    assert (work / "www.example.test.pfx").exists()
