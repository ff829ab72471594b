"""Pipelines with certificates:, several pipeline files, -j, --only, --shard and --fail-fast.

The pipelines use EC keys and no CA, so each certificate takes a few
openssl calls; the behaviour under test does not depend on the key type.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from certpipe.batch import shard_of, worst_exit_code
from certpipe.report import load_report_schema
from conftest import needs_openssl
from fake_openssl import FakeOpenSSL, certpipe_command

pytestmark = needs_openssl

SITES = """\
version: 1
name: sites
vars:
  domain: example.test
  curve: P-256
certificates:
  - name: www
  - name: api
    vars: {curve: P-384}
  - name: shop-eu
    vars: {host: eu.shop}
steps:
  - name: key
    kind: private_key
    algorithm: ec
    curve: ${curve}
    out: site.key
  - name: csr
    kind: csr
    key: site.key
    subject: {CN: "${certificate}.${domain}"}
    out: site.csr
"""

# The reply step waits (exit 75) where no reply was saved in the certificate's folder.
WITH_REPLY = SITES + """\
  - name: reply
    kind: ca_reply
    reply: reply.pem
    key: site.key
    cert_out: site.crt
    chain_out: chain.pem
"""


def lines_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def csr_subject(path: Path) -> str:
    result = subprocess.run(["openssl", "req", "-in", str(path), "-noout", "-subject",
                             "-nameopt", "RFC2253"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def key_curve(path: Path) -> str:
    result = subprocess.run(["openssl", "pkey", "-in", str(path), "-noout", "-text"],
                            capture_output=True, text=True, check=True)
    return next(line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
                if "NIST CURVE" in line)


def validate_report(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in
              jsonschema.Draft202012Validator(load_report_schema()).iter_errors(data)]
    assert errors == []
    return data


def test_each_certificate_gets_its_folder_and_variables(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    result = cli("run", pipeline, "--workdir", work, "-j", "1")
    assert result.exit_code == 0, result.err
    assert sorted(p.name for p in work.iterdir()) == [".certpipe", "api", "shop-eu", "www"]
    assert csr_subject(work / "www" / "site.csr") == "subject=CN=www.example.test"
    assert csr_subject(work / "shop-eu" / "site.csr") == "subject=CN=shop-eu.example.test"
    assert key_curve(work / "www" / "site.key") == "P-256"
    assert key_curve(work / "api" / "site.key") == "P-384"


def test_set_overrides_certificate_variables(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    result = cli("run", pipeline, "--workdir", work, "--set", "curve=P-256", "--only", "api")
    assert result.exit_code == 0, result.err
    assert key_curve(work / "api" / "site.key") == "P-256"


def test_status_lines_name_the_certificate(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    result = cli("run", pipeline, "--workdir", tmp_path / "work", "-j", "2")
    assert result.exit_code == 0, result.err
    lines = lines_of(result.out)
    step_lines = [line for line in lines if "(private_key)" in line or "(csr)" in line]
    assert len(step_lines) == 6
    for name in ("www", "api", "shop-eu"):
        assert any(line.startswith(f"{name}: key (private_key) ") and " made " in line
                   for line in step_lines)
        assert any(line.startswith(f"{name}: csr (csr) ") for line in step_lines)
    assert lines[-1].startswith("3 certificates: 3 done in ")


def test_report_has_an_entry_per_certificate_and_step(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    result = cli("run", pipeline, "--workdir", tmp_path / "work", "--report", report,
                 "--junit", junit)
    assert result.exit_code == 0, result.err
    data = validate_report(report)
    assert data["status"] == "ok"
    assert [c["name"] for c in data["certificates"]] == ["www", "api", "shop-eu"]
    assert {c["status"] for c in data["certificates"]} == {"ok"}
    assert [(s["certificate"], s["name"]) for s in data["steps"]] == [
        ("www", "key"), ("www", "csr"), ("api", "key"), ("api", "csr"),
        ("shop-eu", "key"), ("shop-eu", "csr")]
    assert data["pipeline"]["name"] == "sites"
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["www", "api", "shop-eu"]
    assert all(s.get("tests") == "2" for s in suites)


def test_worst_exit_code_wins_and_others_finish(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(WITH_REPLY)
    work = tmp_path / "work"
    (work / "api").mkdir(parents=True)
    (work / "api" / "site.key").write_text("not a key\n")
    report = tmp_path / "report.json"
    result = cli("run", pipeline, "--workdir", work, "-j", "1", "--report", report)
    assert result.exit_code == 1
    data = validate_report(report)
    assert {c["name"]: c["status"] for c in data["certificates"]} == {
        "www": "pending", "api": "failed", "shop-eu": "pending"}
    assert (work / "shop-eu" / "site.csr").exists()
    assert "certpipe: api: step 'key' failed" in result.err
    summary = lines_of(result.out)[-1]
    assert "2 pending (www, shop-eu)" in summary
    assert "1 failed (api)" in summary


def test_pending_beats_done(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(WITH_REPLY)
    result = cli("run", pipeline, "--workdir", tmp_path / "work", "--only", "www")
    assert result.exit_code == 75


@pytest.mark.parametrize("codes, worst", [
    ([0, 75, 0], 75), ([75, 1, 0], 1), ([1, 2], 2), ([2, 70, 1], 70), ([70, 130], 130),
    ([2, 130, 1], 130), ([], 0), ([0], 0)])
def test_worst_exit_code_order(codes, worst):
    assert worst_exit_code(codes) == worst


def test_fail_fast_starts_no_further_certificate(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    (work / "www").mkdir(parents=True)
    (work / "www" / "site.key").write_text("not a key\n")
    report = tmp_path / "report.json"
    result = cli("run", pipeline, "--workdir", work, "-j", "1", "--fail-fast",
                 "--report", report)
    assert result.exit_code == 1
    data = validate_report(report)
    assert [c["status"] for c in data["certificates"]] == ["failed", "not run", "not run"]
    assert not (work / "api").exists()
    assert "2 not run (api, shop-eu)" in lines_of(result.out)[-1]


def test_only_selects_by_name_list_and_wildcard(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    result = cli("run", pipeline, "--workdir", work, "--only", "www,shop-*")
    assert result.exit_code == 0, result.err
    assert sorted(p.name for p in work.iterdir() if p.name != ".certpipe") == ["shop-eu", "www"]
    again = cli("run", pipeline, "--workdir", work, "--only", "api", "--only", "www")
    assert again.exit_code == 0, again.err
    assert (work / "api" / "site.key").exists()
    assert "www: key (private_key) " in again.out
    assert "up to date" in again.out


def test_only_unknown_name_is_a_usage_error(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    result = cli("run", pipeline, "--workdir", tmp_path / "work", "--only", "wwww")
    assert result.exit_code == 2
    assert "--only wwww: no certificate of that name; certificates: www, api, shop-eu" \
        in result.err
    assert not (tmp_path / "work").exists()


def test_shards_split_the_certificates(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    made: list[str] = []
    for index in (1, 2):
        work = tmp_path / f"shard{index}"
        result = cli("run", pipeline, "--workdir", work, "--shard", f"{index}/2")
        assert result.exit_code == 0, result.err
        if work.exists():
            made += [p.name for p in work.iterdir() if p.name != ".certpipe"]
    assert sorted(made) == ["api", "shop-eu", "www"]


def test_empty_shard_does_nothing_and_succeeds(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    total = 40
    used = {shard_of(name, total) for name in ("www", "api", "shop-eu")}
    empty = min(set(range(1, total + 1)) - used)
    report = tmp_path / "report.json"
    result = cli("run", pipeline, "--workdir", tmp_path / "work", "--shard",
                 f"{empty}/{total}", "--report", report)
    assert result.exit_code == 0, result.err
    assert f"--shard {empty}/{total} holds no certificate" in result.err
    assert validate_report(report)["certificates"] == []


@pytest.mark.parametrize("value", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_shard_rejects_bad_values(cli, tmp_path, write_pipeline, value):
    pipeline = write_pipeline(SITES)
    result = cli("run", pipeline, "--workdir", tmp_path / "work", "--shard", value)
    assert result.exit_code == 2
    assert "expected INDEX/TOTAL" in result.err


def test_several_files_get_a_folder_each(cli, tmp_path, write_pipeline):
    single = write_pipeline(SITES.split("certificates:")[0] + "steps:" +
                            SITES.split("steps:", 1)[1].replace("${certificate}", "one"),
                            name="one.yaml")
    many = write_pipeline(SITES, name="many.yaml")
    work = tmp_path / "work"
    report = tmp_path / "report.json"
    result = cli("run", single, many, "--workdir", work, "--report", report)
    assert result.exit_code == 0, result.err
    assert (work / "one" / "site.key").exists()
    assert (work / "many" / "api" / "site.key").exists()
    assert "many/api: key (private_key) " in result.out
    assert "one: key (private_key) " in result.out
    data = validate_report(report)
    assert data["pipeline"] is None
    assert [p["path"] for p in data["pipelines"]] == [str(single), str(many)]
    assert [c["label"] for c in data["certificates"]] == ["one", "many/www", "many/api",
                                                          "many/shop-eu"]
    only = cli("run", single, many, "--workdir", work, "--only", "many/api")
    assert only.exit_code == 0, only.err
    assert lines_of(only.out)[-1].startswith("1 certificate: 1 done")


def test_several_files_with_one_name_are_rejected(cli, tmp_path, write_pipeline):
    first = write_pipeline(SITES, name="sites.yaml")
    (tmp_path / "other").mkdir()
    second = tmp_path / "other" / "sites.yaml"
    second.write_text(SITES)
    result = cli("run", first, second, "--workdir", tmp_path / "work")
    assert result.exit_code == 2
    assert "would both use the folder" in result.err


@pytest.mark.parametrize("certificates, message", [
    ("  - name: www\n  - name: WWW\n", "'WWW' is already used by certificates[0]"),
    ("  - name: ../up\n", "certificates[0].name: '../up' is not valid"),
    ("  - name: .hidden\n", "certificates[0].name: '.hidden' is not valid"),
    ("  - vars: {a: b}\n", "certificates[0].name: is required but missing"),
    ("  - name: www\n    host: x\n", "certificates[0].host: unknown key 'host'"),
    ("  - name: www\n    vars: [a]\n", "certificates[0].vars: expected a mapping"),
    ("  - name: www\n    vars: {1x: a}\n", "invalid variable name"),
    ("  []\n", "certificates: expected a list with at least one entry"),
])
def test_invalid_certificates_are_reported(cli, tmp_path, write_pipeline, certificates,
                                           message):
    text = SITES.split("certificates:")[0] + "certificates:\n" + certificates + "steps:" + \
        SITES.split("steps:", 1)[1]
    pipeline = write_pipeline(text)
    result = cli("run", pipeline, "--workdir", tmp_path / "work")
    assert result.exit_code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "work").exists()


def test_shared_error_names_every_certificate(cli, write_pipeline):
    text = SITES.replace("subject: {CN: \"${certificate}.${domain}\"}",
                         "subject: {CN: \"${certificate}.${domian}\"}")
    # The same variable names everywhere, so that the message is the same too.
    text = text.replace("{host: eu.shop}", "{curve: P-256}")
    result = cli("validate", write_pipeline(text))
    assert result.exit_code == 2
    assert "unknown variable 'domian'" in result.err
    assert "(certificates 'www', 'api', 'shop-eu')" in result.err
    assert result.err.count("unknown variable 'domian'") == 1


def test_error_of_one_certificate_names_it(cli, write_pipeline):
    text = SITES.replace("    vars: {host: eu.shop}\n", "    vars: {curve: P-999}\n")
    result = cli("validate", write_pipeline(text))
    assert result.exit_code == 2
    assert "steps[0].curve (step 'key'): \"P-999\" is not allowed" in result.err
    assert "(certificate 'shop-eu')" in result.err
    assert "'www'" not in result.err


def test_certificate_variable_reference_error_points_at_it(cli, write_pipeline):
    text = SITES.replace("    vars: {host: eu.shop}\n", "    vars: {host: \"${nope}\"}\n")
    result = cli("validate", write_pipeline(text))
    assert result.exit_code == 2
    assert "pipeline.yaml:11:18: " in result.err
    assert "certificates[2].vars.host: unknown variable 'nope' (certificate 'shop-eu')" \
        in result.err


def test_validate_counts_certificates(cli, write_pipeline):
    result = cli("validate", write_pipeline(SITES))
    assert result.exit_code == 0, result.err
    assert "valid (2 steps, 3 certificates)" in result.out


def test_plan_and_script_cover_each_certificate(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    plan = cli("plan", pipeline, "--workdir", tmp_path / "work", "--only", "api,www")
    assert plan.exit_code == 0, plan.err
    assert "Plan for sites, certificate www" in plan.out
    assert "Plan for sites, certificate api" in plan.out
    assert "shop-eu" not in plan.out
    assert "ec_paramgen_curve:P-384" in plan.out

    script = cli("script", pipeline)
    assert script.exit_code == 0, script.err
    folder = tmp_path / "scripted"
    folder.mkdir()
    (folder / "flow.sh").write_text(script.out)
    ran = subprocess.run(["sh", "flow.sh"], cwd=folder, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "shop-eu: csr: done" in ran.stdout
    assert csr_subject(folder / "api" / "site.csr") == "subject=CN=api.example.test"
    assert key_curve(folder / "api" / "site.key") == "P-384"
    assert not list(folder.rglob(".certpipe-script"))


def run_probe(args: list[str], env: dict[str, str]) -> list[str]:
    """Run certpipe in a fresh Python and return its exit code and the heavy modules it loaded."""
    probe = (
        "import sys\n"
        "from certpipe.cli import main\n"
        f"code = main({args!r})\n"
        "heavy = [m for m in ('jsonschema', 'cryptography', 'sh', 'yaml') if m in sys.modules]\n"
        "print(code, ','.join(heavy) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_up_to_date_certificates_load_no_heavy_module(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    env = {**os.environ, "CERTPIPE_OPENSSL": "/nonexistent/openssl"}
    report = tmp_path / "report.json"
    assert run_probe(["run", str(pipeline), "--workdir", str(work), "-q", "--report",
                      str(report)], env) == ["0", "none"]
    data = validate_report(report)
    assert data["decided_from_manifest"] is True
    assert run_probe(["run", str(pipeline), "--workdir", str(work), "-q", "--only", "api"],
                     env) == ["0", "none"]


def test_openssl_version_is_asked_once_per_run(tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    fake = FakeOpenSSL(tmp_path / "bin")

    def run(*extra: str) -> list[str]:
        before = len(fake.calls())
        result = subprocess.run(certpipe_command("run", pipeline, "--workdir", work, *extra),
                                env=fake.env(), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return fake.calls()[before:]

    first = run("-j", "2")
    assert first.count("version") == 1
    assert sum(call.startswith("genpkey") for call in first) == 3
    assert run() == []  # up to date: no openssl at all
    forced = run("--force", "csr", "-j", "1")
    assert forced.count("version") == 0  # the manifest records this binary's version
    assert sum(call.startswith("req") for call in forced) == 3


def test_ctrl_c_stops_parallel_certificates(tmp_path, write_pipeline):
    pipeline = write_pipeline(SITES)
    work = tmp_path / "work"
    fake = FakeOpenSSL(tmp_path / "bin")
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        certpipe_command("run", pipeline, "--workdir", work, "-j", "2", "--report", report),
        env=fake.env("req", "before"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    fake.wait_until_stopped(process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "certpipe: interrupted" in err
    assert [path for path in work.rglob("*") if ".certpipe-tmp-" in path.name] == []
    data = validate_report(report)
    assert data["status"] == "interrupted"
    assert "interrupted" in {c["status"] for c in data["certificates"]}
    assert " interrupted" in out
