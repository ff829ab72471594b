"""JSON and JUnit reports for CI, and the status lines on the terminal."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from certpipe.engine import RunReport, StepReport
from certpipe.report import StatusPrinter, load_report_schema
from conftest import PIPELINES, needs_openssl

pytestmark = needs_openssl

LOCAL_CA = PIPELINES / "iis-local-ca.yaml"
IIS = PIPELINES / "iis.yaml"


def validate(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        load_report_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []
    return data


def junit(path):
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return suite


def test_report_of_made_and_up_to_date_runs(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert cli("run", LOCAL_CA, "--workdir", work, "--report", first).exit_code == 0
    assert cli("run", LOCAL_CA, "--workdir", work, "--report", second).exit_code == 0

    made = validate(first)
    assert made["status"] == "ok"
    assert made["openssl"]["version"].startswith(("OpenSSL", "LibreSSL"))
    assert [s["status"] for s in made["steps"]] == ["made"] * 5
    key_step = made["steps"][0]
    assert key_step["artifacts"][0]["path"] == "www.example.test.key"
    assert key_step["artifacts"][0]["made"] is True
    assert key_step["openssl_calls"] == 1
    assert all(c["result"] == "passed" for c in key_step["checks"])
    import hashlib

    pfx = next(a for a in made["steps"][4]["artifacts"] if a["path"].endswith(".pfx"))
    assert pfx["sha256"] == hashlib.sha256((work / pfx["path"]).read_bytes()).hexdigest()
    sign_files = [a["path"] for a in made["steps"][2]["artifacts"]]
    assert "local-ca/root.pem" in sign_files

    again = validate(second)
    assert again["decided_from_manifest"] is True
    assert [s["status"] for s in again["steps"]] == ["up to date"] * 5
    assert again["openssl"] == made["openssl"]
    assert again["steps"][4]["artifacts"] == [dict(pfx, made=False)]


def test_report_and_junit_of_failed_run(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("PFX_PASSWORD", raising=False)
    report, xml = tmp_path / "r.json", tmp_path / "r.xml"
    result = cli("run", LOCAL_CA, "--workdir", tmp_path / "w", "--report", report,
                 "--junit", xml)
    assert result.exit_code == 1
    data = validate(report)
    assert data["status"] == "failed"
    assert data["exit_code"] == 1
    assert data["steps"][4]["status"] == "failed"
    assert "PFX_PASSWORD is not set" in data["steps"][4]["message"]
    assert data["steps"][4]["checks"][-1]["result"] == "failed"

    suite = junit(xml)
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "1"
    failure = suite.find("testcase[@name='pfx (pkcs12)']/failure")
    assert failure is not None
    assert "PFX_PASSWORD is not set" in failure.get("message")


def test_report_and_junit_of_pending_run(cli, tmp_path, pfx_password):
    report, xml = tmp_path / "r.json", tmp_path / "r.xml"
    result = cli("run", IIS, "--workdir", tmp_path / "w", "--report", report, "--junit", xml)
    assert result.exit_code == 75
    data = validate(report)
    assert data["status"] == "pending"
    assert [s["status"] for s in data["steps"]] == ["made", "made", "pending", "not run"]
    suite = junit(xml)
    assert suite.get("skipped") == "2"
    assert suite.get("failures") == "0"


def test_report_and_junit_of_invalid_pipeline(cli, tmp_path, write_pipeline):
    pipeline = write_pipeline("version: 2\nsteps: []\n")
    report, xml = tmp_path / "r.json", tmp_path / "r.xml"
    result = cli("run", pipeline, "--workdir", tmp_path / "w", "--report", report,
                 "--junit", xml)
    assert result.exit_code == 2
    data = validate(report)
    assert data["status"] == "invalid"
    assert data["steps"] == []
    assert "invalid pipeline" in data["error"]
    suite = junit(xml)
    assert suite.get("failures") == "1"
    assert suite.find("testcase[@name='pipeline']/failure") is not None


def test_no_secret_in_any_output(cli, tmp_path, pfx_password):
    work = tmp_path / "work"
    report, xml = tmp_path / "r.json", tmp_path / "r.xml"
    run = cli("run", LOCAL_CA, "--workdir", work, "-v", "--report", report, "--junit", xml)
    assert run.exit_code == 0
    texts = [run.out, run.err, report.read_text(), xml.read_text(),
             (work / ".certpipe" / "state.json").read_text(),
             cli("plan", LOCAL_CA, "--workdir", work).out, cli("script", LOCAL_CA).out]
    for text in texts:
        assert pfx_password not in text
    assert "env:PFX_PASSWORD" in texts[-1]


def test_unwritable_report_is_usage_error(cli, tmp_path, pfx_password):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("run", LOCAL_CA, "--workdir", tmp_path / "w", "--report", blocker / "r.json")
    assert result.exit_code == 2
    assert f"--report {blocker / 'r.json'}: {blocker} is a file, not a folder" in result.err
    assert not (tmp_path / "w").exists(), "nothing runs when a report path is unusable"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def sample() -> StepReport:
    return StepReport("key", "private_key", "made", 0.5, made=["a.key"])


def test_colour_on_terminal_only(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal, pipe = Terminal(), io.StringIO()
    StatusPrinter(terminal).step(sample())
    StatusPrinter(pipe).step(sample())
    assert "\033[32mmade\033[0m" in terminal.getvalue()
    assert "\033[" not in pipe.getvalue()


def test_no_color_disables_colour(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    StatusPrinter(terminal).step(sample())
    assert "\033[" not in terminal.getvalue()
    assert "key (private_key) " in terminal.getvalue()


@pytest.mark.parametrize("quiet, verbose, shown", [(True, False, False), (False, True, True)])
def test_quiet_and_verbose(quiet, verbose, shown):
    stream = io.StringIO()
    printer = StatusPrinter(stream, quiet=quiet, verbose=verbose)
    step = sample()
    step.reasons = ["no earlier run recorded"]
    printer.step(step)
    printer.summary(RunReport("p", "p.yaml", "", Path(".")))
    assert ("why: no earlier run recorded" in stream.getvalue()) is shown
    assert (stream.getvalue() == "") is (not shown)


def test_verbose_run_logs_openssl_commands(cli, tmp_path, pfx_password):
    result = cli("run", LOCAL_CA, "--workdir", tmp_path, "-v")
    assert "DEBUG certpipe.openssl: [key] openssl genpkey" in result.err
    assert "INFO certpipe.engine: step key runs: no earlier run recorded" in result.err
    quiet = cli("run", LOCAL_CA, "--workdir", tmp_path, "-q")
    assert quiet.exit_code == 0
    assert quiet.out == ""
    assert quiet.err == ""


# --- report paths that must not be written ------------------------------------------------


@pytest.fixture
def made_work(cli, tmp_path, pfx_password):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_bytes(LOCAL_CA.read_bytes())
    work = tmp_path / "work"
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    return pipeline, work


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("option", ["--report", "--junit"])
def test_report_over_private_key_rejected(cli, made_work, option):
    pipeline, work = made_work
    key = work / "www.example.test.key"
    before = key.read_bytes()
    result = cli("run", pipeline, "--workdir", work, option, key)
    assert result.exit_code == 2
    assert f"{option} {key}: the file contains a private key" in result.err
    assert key.read_bytes() == before


@pytest.mark.parametrize("option", ["--report", "--junit"])
def test_report_over_pipeline_rejected(cli, made_work, option):
    pipeline, work = made_work
    before = pipeline.read_bytes()
    result = cli("run", pipeline, "--workdir", work, option, pipeline)
    assert result.exit_code == 2
    assert f"{option} {pipeline}: is the pipeline file" in result.err
    assert pipeline.read_bytes() == before


def test_report_through_symlink_rejected(cli, made_work, tmp_path):
    pipeline, work = made_work
    link = tmp_path / "innocent.json"
    link.symlink_to(pipeline)
    before = pipeline.read_bytes()
    result = cli("run", pipeline, "--workdir", work, "--report", link)
    assert result.exit_code == 2
    assert "is the pipeline file" in result.err
    assert pipeline.read_bytes() == before
    assert link.is_symlink()


def test_report_over_future_output_rejected(cli, write_pipeline, tmp_path):
    pipeline = write_pipeline("""\
        version: 1
        steps:
          - name: key
            kind: private_key
            algorithm: ec
            out: site.key
        """)
    work = tmp_path / "work"
    work.mkdir()
    result = cli("run", pipeline, "--workdir", work, "--report", work / "site.key")
    assert result.exit_code == 2
    assert f"--report {work / 'site.key'}: is site.key, a file of step 'key'" in result.err
    assert list(work.iterdir()) == []


def test_report_over_output_when_up_to_date(cli, made_work):
    pipeline, work = made_work
    pfx = work / "www.example.test.pfx"
    pfx.unlink()
    assert cli("run", pipeline, "--workdir", work).exit_code == 0
    before = snapshot(work)
    # Up to date: decided from the manifest, so the check uses the recorded outputs.
    result = cli("run", pipeline, "--workdir", work, "--report", work / "missing.json")
    assert result.exit_code == 0
    (work / "missing.json").unlink()
    crt = work / "www.example.test.crt"
    crt.unlink()
    result = cli("run", pipeline, "--workdir", work, "--junit", crt)
    assert result.exit_code == 2
    assert f"--junit {crt}: is www.example.test.crt, a file of step" in result.err
    assert not crt.exists()
    assert snapshot(work) == {k: v for k, v in before.items() if k != "www.example.test.crt"}


def test_report_in_state_folder_rejected(cli, made_work):
    pipeline, work = made_work
    target = work / ".certpipe" / "report.json"
    result = cli("run", pipeline, "--workdir", work, "--report", target)
    assert result.exit_code == 2
    assert f"is inside {work / '.certpipe'}" in result.err
    assert not target.exists()


def test_report_over_other_file_rejected(cli, made_work, tmp_path):
    pipeline, work = made_work
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n', encoding="utf-8")
    result = cli("run", pipeline, "--workdir", work, "--report", notes)
    assert result.exit_code == 2
    assert "the file exists and is not an earlier JSON report" in result.err
    assert notes.read_text(encoding="utf-8") == '{"mine": true}\n'


def test_report_replaces_earlier_report(cli, made_work, tmp_path):
    pipeline, work = made_work
    report, junit_file = tmp_path / "r.json", tmp_path / "j.xml"
    for _ in range(2):
        result = cli("run", pipeline, "--workdir", work, "--report", report, "--junit",
                     junit_file)
        assert result.exit_code == 0
    assert validate(report)["status"] == "ok"
    assert junit(junit_file) is not None
    swapped = cli("run", pipeline, "--workdir", work, "--report", junit_file)
    assert swapped.exit_code == 2
    assert "is not an earlier JSON report" in swapped.err


def test_report_folder_missing_not_created(cli, made_work, tmp_path):
    pipeline, work = made_work
    target = tmp_path / "absent" / "deeper" / "r.json"
    result = cli("run", pipeline, "--workdir", work, "--report", target)
    assert result.exit_code == 2
    assert f"the folder {target.parent} does not exist" in result.err
    assert not (tmp_path / "absent").exists()


def test_report_parent_is_file(cli, made_work, tmp_path):
    pipeline, work = made_work
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    result = cli("run", pipeline, "--workdir", work, "--report", afile / "r.json")
    assert result.exit_code == 2
    assert f"{afile} is a file, not a folder" in result.err


def test_report_and_junit_same_path(cli, made_work, tmp_path):
    pipeline, work = made_work
    target = tmp_path / "both"
    result = cli("run", pipeline, "--workdir", work, "--report", target, "--junit", target)
    assert result.exit_code == 2
    assert "--report and --junit both name" in result.err
