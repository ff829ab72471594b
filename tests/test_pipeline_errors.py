"""Pipeline files with mistakes: each error names file, line, column and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from certpipe.errors import PipelineError
from certpipe.pipeline.model import load_pipeline

GOOD_KEY = """\
version: 1
steps:
  - name: key
    kind: private_key
    algorithm: rsa
    bits: 2048
    out: site.key
"""


def problems_of(write_pipeline, text: str, **overrides: str) -> str:
    path = write_pipeline(text)
    with pytest.raises(PipelineError) as info:
        load_pipeline(path, overrides)
    return str(info.value)


def test_good_pipeline_loads(write_pipeline):
    pipeline = load_pipeline(write_pipeline(GOOD_KEY))
    assert [step.name for step in pipeline.steps] == ["key"]


def test_bad_bits_names_line_and_choices(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY.replace("2048", "2047"))
    assert "pipeline.yaml:6:11: steps[0].bits (step 'key'): 2047 is not allowed" in message
    assert "expected one of 2048, 3072, 4096" in message


def test_misspelt_key_suggests_right_one(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY.replace("    bits:", "    bitz:"))
    assert "pipeline.yaml:6:5: steps[0].bitz (step 'key'): unknown key 'bitz'" in message
    assert "did you mean 'bits'?" in message


def test_missing_required_key(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY.replace("    out: site.key\n", ""))
    assert "steps[0] (step 'key'): 'out' is required but missing" in message


def test_unknown_step_kind(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY.replace("private_key", "private-key"))
    assert "steps[0].kind (step 'key'): \"private-key\" is not allowed" in message


def test_wrong_type(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY.replace("version: 1", "version: one"))
    assert "pipeline.yaml:1:10: version" in message


def test_curve_with_rsa_is_rejected(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY + "    curve: P-256\n")
    assert "'curve' does not apply here" in message


def test_yaml_syntax_error_has_position(write_pipeline):
    message = problems_of(write_pipeline, "version: 1\nsteps: [\n  - name: x\n")
    assert "invalid YAML" in message
    assert "pipeline.yaml:" in message


def test_object_tag_is_rejected(write_pipeline):
    message = problems_of(write_pipeline,
                          "version: 1\nsteps: !!python/object/apply:os.system [id]\n")
    assert "pipeline.yaml:2:8: YAML tag" in message
    assert "is not allowed" in message


def test_duplicate_key_is_rejected(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY + "    out: other.key\n")
    assert "pipeline.yaml:8:5: duplicate key 'out'" in message


def test_empty_file(write_pipeline):
    assert "the file is empty" in problems_of(write_pipeline, "")


def test_top_level_list(write_pipeline):
    assert "top level must be a mapping" in problems_of(write_pipeline, "- 1\n")


def test_unknown_variable(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY.replace("site.key", "${host}.key"))
    assert "pipeline.yaml:7:10: steps[0].out: unknown variable 'host'" in message
    assert "--set host=VALUE" in message


def test_variable_from_set(write_pipeline):
    path = write_pipeline(GOOD_KEY.replace("site.key", "${host}.key"))
    pipeline = load_pipeline(path, {"host": "www"})
    assert pipeline.steps[0].out == "www.key"


def test_set_overrides_vars_and_types_numbers(write_pipeline):
    text = "vars:\n  bits: 2048\n" + GOOD_KEY.replace("bits: 2048", "bits: ${bits}")
    pipeline = load_pipeline(write_pipeline(text), {"bits": "4096"})
    assert pipeline.steps[0].bits == 4096


def test_variable_cycle(write_pipeline):
    text = "vars:\n  a: ${b}\n  b: ${a}\n" + GOOD_KEY
    assert "cycle" in problems_of(write_pipeline, text)


def test_dollar_escape(write_pipeline):
    pipeline = load_pipeline(write_pipeline(GOOD_KEY.replace("site.key", "a$$b.key")))
    assert pipeline.steps[0].out == "a$b.key"


@pytest.mark.parametrize("out, reason", [
    ("../site.key", "leaves the work directory"),
    ("/etc/site.key", "is absolute"),
    (".certpipe/state.json", "inside .certpipe"),
])
def test_output_outside_workdir(write_pipeline, out, reason):
    message = problems_of(write_pipeline, GOOD_KEY.replace("site.key", out))
    assert "steps[0].out (step 'key')" in message
    assert reason in message


def test_duplicate_step_name_and_output(write_pipeline):
    text = GOOD_KEY + GOOD_KEY.split("steps:\n")[1]
    message = problems_of(write_pipeline, text)
    assert "step name 'key' is already used" in message
    assert "'site.key' is already written by step 'key'" in message


def test_input_made_by_later_step(write_pipeline):
    text = """\
    version: 1
    steps:
      - name: csr
        kind: csr
        key: site.key
        subject: {CN: www.example.test}
        out: site.csr
      - name: key
        kind: private_key
        algorithm: ec
        out: site.key
    """
    message = problems_of(write_pipeline, text)
    assert "steps[0].key (step 'csr'): uses 'site.key', which the later step 'key' writes" in message


def test_bad_password_source(write_pipeline):
    text = """\
    version: 1
    steps:
      - name: pfx
        kind: pkcs12
        key: a.key
        cert: a.crt
        password: hunter2
        out: a.pfx
    """
    message = problems_of(write_pipeline, text)
    assert "steps[0].password (step 'pfx'): is not a password source" in message
    assert "env:NAME" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("subject, where, expected", [
    ("{CN: \"a\\nb.example\"}", "steps[0].subject.CN (step 'csr')", "control character"),
    ("{CN: \" www.example.test\"}", "steps[0] (step 'csr')", "starts or ends with a space"),
    ("{O: Example}", "steps[0] (step 'csr')", "needs a CN"),
    ("{CN: Example Corp}", "steps[0] (step 'csr')", "is not a host name"),
])
def test_bad_subject_values(write_pipeline, subject, where, expected):
    text = f"""\
    version: 1
    steps:
      - name: csr
        kind: csr
        key: a.key
        subject: {subject}
        out: a.csr
    """
    message = problems_of(write_pipeline, text)
    assert where in message
    assert expected in message


def test_bad_ip_address(write_pipeline):
    text = """\
    version: 1
    steps:
      - name: csr
        kind: csr
        key: a.key
        subject: {CN: www.example.test}
        subject_alt_names: {ip: [10.0.0.300]}
        out: a.csr
    """
    assert "'10.0.0.300' is not an IPv4 or IPv6 address" in problems_of(write_pipeline, text)


def test_validate_command_exit_codes(cli, write_pipeline, tmp_path):
    good = write_pipeline(GOOD_KEY, "good.yaml")
    bad = write_pipeline(GOOD_KEY.replace("2048", "1024"), "bad.yaml")
    assert cli("validate", good).exit_code == 0
    result = cli("validate", good, bad)
    assert result.exit_code == 2
    assert "bad.yaml:6:11" in result.err
    assert "Traceback" not in result.err


def test_run_with_invalid_pipeline_exits_2(cli, write_pipeline, tmp_path):
    bad = write_pipeline(GOOD_KEY.replace("2048", "1024"))
    result = cli("run", bad, "--workdir", tmp_path / "out")
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_missing_pipeline_file(cli, tmp_path):
    result = cli("run", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "pipeline file not found" in result.err


IIS = Path(__file__).resolve().parent.parent / "pipelines" / "iis.yaml"


@pytest.mark.parametrize("command", ["validate", "plan", "script", "run"])
def test_set_unknown_variable_rejected(cli, tmp_path, command):
    extra = ("--workdir", tmp_path / "out") if command in ("plan", "run") else ()

    result = cli(command, IIS, "--set", "hots=x", *extra)

    assert result.exit_code == 2
    assert ("--set hots: the pipeline defines no variable 'hots' (defined: ca_reply, host)"
            in result.err)
    assert "did you mean 'host'?" in result.err
    assert "valid" not in result.out
    assert not (tmp_path / "out").exists()


def test_set_lists_every_unknown_variable(write_pipeline):
    message = problems_of(write_pipeline, GOOD_KEY, zzz="1", yyy="2")

    assert "--set yyy: the pipeline defines no variable 'yyy' (defined: none)" in message
    assert "--set zzz: the pipeline defines no variable 'zzz' (defined: none)" in message
    assert "did you mean" not in message


def test_set_accepts_referenced_undeclared_variable(cli, write_pipeline):
    path = write_pipeline(GOOD_KEY.replace("name: key", "name: ${step_name}"))

    result = cli("validate", path, "--set", "step_name=make-key")

    assert result.exit_code == 0, result.err
    assert "valid (1 steps)" in result.out


def test_set_accepts_variable_used_in_vars(write_pipeline):
    text = GOOD_KEY.replace("steps:", "vars:\n  file: ${base}.key\nsteps:").replace(
        "site.key", "${file}")

    pipeline = load_pipeline(write_pipeline(text), {"base": "www"})

    assert pipeline.steps[0].out == "www.key"


def test_bad_set_argument(cli, write_pipeline):
    result = cli("run", write_pipeline(GOOD_KEY), "--set", "no-equals")
    assert result.exit_code == 2
    assert "expected NAME=VALUE" in result.err


def test_usage_error_exits_2(cli):
    assert cli("frobnicate").exit_code == 2
