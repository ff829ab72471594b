"""The command_ca step: a CA reached through its command-line tool.

The CA command is tests/helpers/sign-csr.sh, which signs with a test CA made
here by the real openssl; small inline scripts inject failures.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from conftest import PIPELINES, needs_openssl

pytestmark = needs_openssl

SIGNER = Path(__file__).resolve().parent / "helpers" / "sign-csr.sh"
CA_PASS = "Ca-Key-Pass-7"
HOST = "www.example.test"


def _openssl(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed test CA with an encrypted EC key, made once for the module."""
    folder = tmp_path_factory.mktemp("test-ca")
    env = {"SIGN_CSR_KEY_PASS": CA_PASS}
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-aes256", "-pass", "env:SIGN_CSR_KEY_PASS", "-out", str(folder / "ca.key"), env=env)
    _openssl("req", "-x509", "-new", "-key", str(folder / "ca.key"),
             "-passin", "env:SIGN_CSR_KEY_PASS", "-subj", "/CN=certpipe test signing CA",
             "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", str(folder / "ca.pem"), env=env)
    (folder / "leaf.cnf").write_text(
        "[leaf]\nbasicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n"
        f"subjectAltName = DNS:{HOST}\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def ca_env(test_ca: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the signing script at the test CA and offer its passphrase as CI_CA_PASS."""
    monkeypatch.setenv("SIGN_CSR_CA_DIR", str(test_ca))
    monkeypatch.setenv("CI_CA_PASS", CA_PASS)
    monkeypatch.delenv("SIGN_CSR_KEY_PASS", raising=False)
    (test_ca / "calls.log").unlink(missing_ok=True)
    return test_ca


def _calls(test_ca: Path) -> list[list[str]]:
    log = test_ca / "calls.log"
    if not log.exists():
        return []
    calls, current = [], []
    for line in log.read_text(encoding="utf-8").splitlines():
        if line == "--":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return calls


def _pipeline(command: list[str], extra: str = "", csr: str = "www.csr",
              with_pfx: bool = False) -> str:
    """Return key, csr, command_ca ('sign', with *extra* keys) and ca_reply steps as YAML."""
    extra_lines = "".join(f"    {line}\n" for line in extra.splitlines())
    text = (
        "version: 1\n"
        "steps:\n"
        "  - name: key\n"
        "    kind: private_key\n"
        "    algorithm: ec\n"
        "    out: www.key\n"
        "  - name: csr\n"
        "    kind: csr\n"
        "    key: www.key\n"
        f"    subject: {{CN: {HOST}}}\n"
        f"    out: {json.dumps(csr)}\n"
        "  - name: sign\n"
        "    kind: command_ca\n"
        f"    csr: {json.dumps(csr)}\n"
        f"    command: {json.dumps(command)}\n"
        "    environment:\n"
        "      SIGN_CSR_KEY_PASS: env:CI_CA_PASS\n"
        f"{extra_lines}"
        "    out: reply.pem\n"
        "  - name: reply\n"
        "    kind: ca_reply\n"
        "    reply: reply.pem\n"
        "    key: www.key\n"
        f"    csr: {json.dumps(csr)}\n"
        "    cert_out: www.crt\n"
        "    chain_out: www.chain.pem\n"
    )
    if with_pfx:
        text += (
            "  - name: pfx\n"
            "    kind: pkcs12\n"
            "    key: www.key\n"
            "    cert: www.crt\n"
            "    chain: www.chain.pem\n"
            "    password: env:PFX_PASSWORD\n"
            "    out: www.pfx\n"
        )
    return text


def _fail_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "ca-tool.sh"
    script.write_text("#!/bin/sh\n" + textwrap.dedent(body), encoding="utf-8")
    script.chmod(0o755)
    return script


def test_signs_end_to_end_to_pfx(cli, write_pipeline, tmp_path, ca_env, pfx_password):
    pipeline = write_pipeline(
        _pipeline(["sh", str(SIGNER), "{csr}", "{out}"], with_pfx=True))
    work = tmp_path / "work"

    result = cli("run", pipeline, "--workdir", work)

    assert result.exit_code == 0, result.err
    assert "sign (command_ca) " in result.out
    assert "made reply.pem" in result.out
    bundle = pkcs12.load_pkcs12((work / "www.pfx").read_bytes(), pfx_password.encode())
    assert bundle.cert is not None
    assert bundle.cert.certificate.issuer.rfc4514_string() == "CN=certpipe test signing CA"
    assert bundle.cert.certificate.public_key() == bundle.key.public_key()
    calls = _calls(ca_env)
    assert calls == [[str(work / "www.csr"), calls[0][1]]]
    assert calls[0][1].endswith("/reply.pem")
    assert str(work / ".certpipe") in calls[0][1]
    assert not list((work / ".certpipe").glob("sign.*"))


def test_example_pipeline_runs(cli, tmp_path, ca_env, pfx_password, monkeypatch):
    monkeypatch.setenv("CA_KEY_PASS", CA_PASS)
    work = tmp_path / "OUT"

    result = cli("run", PIPELINES / "iis-command-ca.yaml", "--workdir", work,
                 "--set", f"ca_tool={SIGNER}")

    assert result.exit_code == 0, result.err
    assert (work / "www.example.test.pfx").is_file()
    assert len(_calls(ca_env)) == 1


def test_second_run_does_not_call_command(cli, write_pipeline, tmp_path, ca_env):
    pipeline = write_pipeline(_pipeline(["sh", str(SIGNER), "{csr}", "{out}"]))
    assert cli("run", pipeline, "--workdir", tmp_path / "w").exit_code == 0

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err
    assert "sign (command_ca) " in result.out
    assert len(_calls(ca_env)) == 1


def test_reply_read_from_stdout(cli, write_pipeline, tmp_path, ca_env):
    pipeline = write_pipeline(_pipeline(["sh", str(SIGNER), "{csr}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err
    reply = (tmp_path / "w" / "reply.pem").read_bytes()
    assert x509.load_pem_x509_certificates(reply)[0].subject.rfc4514_string() == f"CN={HOST}"


def test_csr_passed_on_stdin(cli, write_pipeline, tmp_path, ca_env):
    pipeline = write_pipeline(_pipeline(["sh", str(SIGNER), "-", "{out}"], extra="stdin: csr"))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err
    assert _calls(ca_env)[0][0] == "-"


def test_secret_reaches_env_not_argv(cli, write_pipeline, tmp_path, ca_env):
    recorder = _fail_script(tmp_path, f"""\
        printf '%s\\n' "$@" > "{tmp_path}/argv"
        printf '%s' "$SIGN_CSR_KEY_PASS" > "{tmp_path}/env-value"
        exec sh "{SIGNER}" "$@"
        """)
    pipeline = write_pipeline(_pipeline([str(recorder), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err
    assert (tmp_path / "env-value").read_text() == CA_PASS
    assert CA_PASS not in (tmp_path / "argv").read_text()


def test_missing_secret_names_variable(cli, write_pipeline, tmp_path, ca_env, monkeypatch):
    monkeypatch.delenv("CI_CA_PASS")
    pipeline = write_pipeline(_pipeline(["sh", str(SIGNER), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "step 'sign' failed" in result.err
    assert "environment variable CI_CA_PASS is not set" in result.err
    assert _calls(ca_env) == []


def test_secret_from_file(cli, write_pipeline, tmp_path, ca_env):
    (tmp_path / "ca-pass.txt").write_text(CA_PASS + "\n", encoding="utf-8")
    text = _pipeline(["sh", str(SIGNER), "{csr}", "{out}"]).replace(
        "env:CI_CA_PASS", f"file:{tmp_path / 'ca-pass.txt'}")
    pipeline = write_pipeline(text)

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err


def test_nonzero_exit_shows_code_and_stderr(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, """\
        echo "request denied: profile web-server is not allowed for this account" >&2
        exit 3
        """)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "step 'sign' failed: the command exited with code 3" in result.err
    assert f"command: {tool} {tmp_path / 'w' / 'www.csr'} " in result.err
    assert "    request denied: profile web-server is not allowed" in result.err
    assert not (tmp_path / "w" / "reply.pem").exists()


def test_secret_in_stderr_is_masked(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, """\
        echo "bad passphrase $SIGN_CSR_KEY_PASS" >&2
        exit 1
        """)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "bad passphrase <hidden>" in result.err
    assert CA_PASS not in result.err
    assert CA_PASS not in result.out


def test_short_secret_does_not_garble_paths(cli, write_pipeline, tmp_path, ca_env,
                                           monkeypatch):
    monkeypatch.setenv("CI_CA_PASS", "x")
    tool = _fail_script(tmp_path, """\
        echo "request for $1 denied" >&2
        exit 2
        """)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"], csr="www.example.csr"))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    csr = tmp_path / "w" / "www.example.csr"
    assert result.exit_code == 1
    assert f"command: {tool} {csr} " in result.err
    assert f"request for {csr} denied" in result.err
    assert "<hidden>" not in result.err


def test_secret_in_path_not_masked_in_command(cli, write_pipeline, tmp_path, ca_env,
                                              monkeypatch):
    monkeypatch.setenv("CI_CA_PASS", "example")
    tool = _fail_script(tmp_path, """\
        echo "key pass $SIGN_CSR_KEY_PASS rejected" >&2
        exit 2
        """)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"], csr="www.example.csr"))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert f"command: {tool} {tmp_path / 'w' / 'www.example.csr'} " in result.err
    assert "key pass <hidden> rejected" in result.err


def test_long_stderr_is_cut(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, """\
        i=0
        while [ $i -lt 3000 ]; do echo "noise line $i" >&2; i=$((i+1)); done
        echo "final reason" >&2
        exit 2
        """)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "[output cut to its last 2000 characters]" in result.err
    assert "final reason" in result.err
    assert "noise line 0\n" not in result.err
    assert len(result.err) < 4000


def test_timeout_stops_command_and_children(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, f"""\
        sleep 300 &
        echo $! > "{tmp_path}/child.pid"
        wait
        """)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"], extra="timeout: 1"))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "the command did not finish within 1 second and was stopped" in result.err
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(50):  # the kernel may need a moment to reap the killed child
        if not Path(f"/proc/{child}").exists() or _is_zombie(child):
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or _is_zombie(child)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_program_not_on_path(cli, write_pipeline, tmp_path, ca_env):
    pipeline = write_pipeline(_pipeline(["no-such-ca-tool-xyz", "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "program 'no-such-ca-tool-xyz' not found on PATH" in result.err


def test_relative_program_missing_explains_base(cli, write_pipeline, tmp_path, ca_env):
    pipeline = write_pipeline(_pipeline(["scripts/sign.sh", "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert f"program {tmp_path / 'w' / 'scripts' / 'sign.sh'} not found" in result.err
    assert "relative to the work directory" in result.err


def test_program_not_executable(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, "exit 0\n")
    tool.chmod(0o644)
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert f"{tool} is not an executable file" in result.err


def test_exit_zero_without_file(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, "echo 'queued as request 4711'\nexit 0\n")
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "exited with code 0 but wrote no file at {out}" in result.err
    assert "queued as request 4711" in result.err


def test_symlink_at_out_rejected(cli, write_pipeline, tmp_path, ca_env):
    secret = tmp_path / "not-for-the-ca.txt"
    secret.write_text("private notes\n", encoding="utf-8")
    tool = _fail_script(tmp_path, f'ln -s "{secret}" "$2"\n')
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}", "{out}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "left something other than a regular file at {out}" in result.err
    assert "private notes" not in result.err
    assert not (tmp_path / "w" / "reply.pem").exists()


def test_empty_stdout_reply(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, "exit 0\n")
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert "returned nothing on standard output" in result.err


def test_output_not_certificate_is_kept(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, "echo '<html><body>Login required</body></html>'\n")
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    kept = tmp_path / "w" / ".certpipe" / "sign.command-output"
    assert result.exit_code == 1
    assert "the command's output is not a certificate reply" in result.err
    assert "HTML or XML page" in result.err
    assert f"kept as {kept}" in result.err
    assert kept.exists()
    assert not (tmp_path / "w" / "reply.pem").exists()


def test_certificate_for_other_key_rejected(cli, write_pipeline, tmp_path, ca_env):
    tool = _fail_script(tmp_path, f'cat "{ca_env / "ca.pem"}"\n')
    pipeline = write_pipeline(_pipeline([str(tool), "{csr}"]))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 1
    assert f"contains no certificate for {tmp_path / 'w' / 'www.csr'}" in result.err
    assert "'CN=certpipe test signing CA'" in result.err
    assert not (tmp_path / "w" / "reply.pem").exists()


def test_placeholder_path_cannot_become_option(cli, write_pipeline, tmp_path, ca_env):
    recorder = _fail_script(tmp_path, f"""\
        printf '%s\\n' "$@" > "{tmp_path}/argv"
        exec sh "{SIGNER}" "$2" "${{3#--out=}}"
        """)
    csr = "-in{out}$(touch pwned).csr"
    pipeline = write_pipeline(_pipeline(
        [str(recorder), "--csr", "{csr}", "--out={out}", "{{literal}}"], csr=csr))
    work = tmp_path / "w"

    result = cli("run", pipeline, "--workdir", work)

    assert result.exit_code == 0, result.err
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "--csr"
    assert argv[1] == str(work / csr)
    assert argv[2].startswith(f"--out={work / '.certpipe'}")
    assert argv[3] == "{literal}"
    assert not (work / "pwned").exists()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("command, message", [
    (["ca-tool", "{cert}"], "unknown placeholder {cert}; the placeholders are {csr} and {out}"),
    (["ca-tool", "a{b"], "has a lone '{'; write {{ for a literal brace"),
    (["ca-tool", "x}"], "has a lone '}'; write }} for a literal brace"),
    (["{csr}", "x"], "command[0] '{csr}' must name the program"),
])
def test_bad_command_rejected_on_validate(cli, write_pipeline, command, message):
    pipeline = write_pipeline(_pipeline(command))

    result = cli("validate", pipeline)

    assert result.exit_code == 2
    assert message in result.err
    assert "(step 'sign')" in result.err


def test_environment_rejects_plain_password(cli, write_pipeline):
    text = _pipeline(["ca-tool", "{csr}"]).replace("env:CI_CA_PASS", "pass:hunter2")
    pipeline = write_pipeline(text)

    result = cli("validate", pipeline)

    assert result.exit_code == 2
    assert "steps[2].environment.SIGN_CSR_KEY_PASS (step 'sign')" in result.err
    assert "env:NAME or file:PATH" in result.err


def test_output_is_own_input_rejected(cli, write_pipeline):
    text = _pipeline(["ca-tool", "{csr}"]).replace("out: reply.pem", "out: www.csr")
    pipeline = write_pipeline(text)

    result = cli("validate", pipeline)

    assert result.exit_code == 2
    assert "'www.csr' is already written by step 'csr'" in result.err


def test_relative_workdir_gives_absolute_paths(cli, tmp_path, ca_env, pfx_password,
                                               monkeypatch):
    monkeypatch.setenv("CA_KEY_PASS", CA_PASS)
    recorder = _fail_script(tmp_path, f"""\
        printf '%s\\n' "$@" > "{tmp_path}/argv"
        exec sh "{SIGNER}" "$@"
        """)
    monkeypatch.chdir(tmp_path)

    result = cli("run", PIPELINES / "iis-command-ca.yaml", "--workdir", "OUTB",
                 "--set", f"ca_tool={recorder}")

    assert result.exit_code == 0, result.err
    csr_arg, out_arg = (tmp_path / "argv").read_text().splitlines()
    assert csr_arg == str(tmp_path / "OUTB" / "www.example.test.csr")
    assert out_arg.startswith(str(tmp_path / "OUTB" / ".certpipe") + "/")
    assert out_arg.endswith("/ca-reply.pem")
    assert (tmp_path / "OUTB" / "www.example.test.pfx").is_file()


def _env_dump_pipeline(tool: Path) -> str:
    """Return a pipeline whose 'sign' step runs *tool*, and a second command_ca step."""
    return _pipeline([str(tool), "{csr}", "{out}"], with_pfx=True) + (
        "  - name: second-sign\n"
        "    kind: command_ca\n"
        "    csr: www.csr\n"
        f"    command: {json.dumps(['sh', str(SIGNER), '{csr}', '{out}'])}\n"
        "    environment:\n"
        "      SIGN_CSR_KEY_PASS: env:CI_CA_PASS\n"
        "      OTHER_TOKEN: env:OTHER_CA_TOKEN\n"
        "    out: second-reply.pem\n"
    )


def _dump_env_tool(tmp_path: Path) -> Path:
    return _fail_script(tmp_path, f"""\
        env > "{tmp_path}/env-dump"
        exec sh "{SIGNER}" "$@"
        """)


def _dumped_names(tmp_path: Path) -> set[str]:
    lines = (tmp_path / "env-dump").read_text().splitlines()
    return {line.partition("=")[0] for line in lines if "=" in line}


def test_environment_withholds_pipeline_secrets(cli, write_pipeline, tmp_path, ca_env,
                                                pfx_password, monkeypatch):
    monkeypatch.setenv("OTHER_CA_TOKEN", "other-token-value")
    monkeypatch.setenv("CERTPIPE_PASSIN", "stale-passin")
    monkeypatch.setenv("CERTPIPE_PASSOUT", "stale-passout")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    pipeline = write_pipeline(_env_dump_pipeline(_dump_env_tool(tmp_path)))

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err
    names = _dumped_names(tmp_path)
    assert "SIGN_CSR_KEY_PASS" in names
    assert "UNRELATED_SETTING" in names
    assert "PATH" in names
    assert "PFX_PASSWORD" not in names
    assert "CI_CA_PASS" not in names
    assert "OTHER_CA_TOKEN" not in names
    assert "CERTPIPE_PASSIN" not in names
    assert "CERTPIPE_PASSOUT" not in names
    dump = (tmp_path / "env-dump").read_text()
    assert pfx_password not in dump
    assert "other-token-value" not in dump


def test_environment_passes_named_secret(cli, write_pipeline, tmp_path, ca_env,
                                         pfx_password, monkeypatch):
    monkeypatch.setenv("OTHER_CA_TOKEN", "other-token-value")
    sign_environment = "      SIGN_CSR_KEY_PASS: env:CI_CA_PASS\n"
    text = _env_dump_pipeline(_dump_env_tool(tmp_path)).replace(
        sign_environment, sign_environment + "      PFX_PASSWORD: env:PFX_PASSWORD\n", 1)
    pipeline = write_pipeline(text)

    result = cli("run", pipeline, "--workdir", tmp_path / "w")

    assert result.exit_code == 0, result.err
    names = _dumped_names(tmp_path)
    assert "PFX_PASSWORD" in names
    assert "SIGN_CSR_KEY_PASS" in names
    assert "CI_CA_PASS" not in names
    assert "OTHER_CA_TOKEN" not in names


def test_pipeline_collects_secret_sources(write_pipeline):
    from certpipe.pipeline.model import load_pipeline

    text = _pipeline(["ca-tool", "{csr}", "{out}"], with_pfx=True) + textwrap.indent(
        textwrap.dedent("""\
            - name: csr2
              kind: csr
              key: www.key
              key_passphrase: env:CSR_KEY_PASS
              subject: {CN: www.example.test}
              out: www2.csr
            - name: reply2
              kind: ca_reply
              reply: other.pfx
              reply_password: env:REPLY_PASS
              key: www.key
              key_passphrase: env:REPLY_KEY_PASS
              cert_out: www2.crt
              chain_out: www2.chain.pem
            - name: files
              kind: server_files
              format: pkcs8_key
              key: www.key
              key_passphrase: env:FILES_KEY_PASS
              passphrase: env:PKCS8_PASS
              out: www.p8
            - name: pfx2
              kind: pkcs12
              key: www.key
              cert: www.crt
              password: file:pfx-password.txt
              out: www2.pfx
            """), "  ")

    pipeline = load_pipeline(write_pipeline(text))

    assert pipeline.secret_env_names == {
        "CI_CA_PASS", "PFX_PASSWORD", "CSR_KEY_PASS", "REPLY_PASS", "REPLY_KEY_PASS",
        "FILES_KEY_PASS", "PKCS8_PASS",
    }
    assert pipeline.step("sign").pipeline_secret_env == pipeline.secret_env_names
