"""``certpipe schema``, the schema's annotations for editors, and the generated reference."""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from certpipe.cli import main
from certpipe.pipeline.reference import REGENERATE_COMMAND, render_reference
from conftest import PIPELINES, ROOT

SCHEMA_FILE = ROOT / "certpipe" / "pipeline" / "schema.json"
REFERENCE_FILE = ROOT / "docs" / "pipeline-reference.md"
TEMPLATES = ROOT / "certpipe" / "templates"
MODELINE_RE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def printed_schema() -> dict[str, Any]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["schema"]) == 0
    return json.loads(buffer.getvalue())


def _editor_errors(schema: dict[str, Any], path: Path) -> list[Any]:
    """Validate the raw YAML of *path* against *schema*, as an editor's language server does."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(jsonschema.Draft202012Validator(schema).iter_errors(data))


def _property_schemas(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (location, schema) for every key a pipeline may contain, at any depth."""
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield f"{where}.properties.{key}", value
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            yield f"{where}.additionalProperties", extra
        for key, value in node.items():
            if key != "if":  # conditions name keys only to test them
                yield from _property_schemas(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _property_schemas(value, f"{where}[{index}]")


def test_schema_prints_shipped_file(cli):
    result = cli("schema")

    assert result.exit_code == 0
    assert result.out == SCHEMA_FILE.read_text(encoding="utf-8")


def test_schema_is_valid_draft_2020_12(printed_schema):
    jsonschema.Draft202012Validator.check_schema(printed_schema)


def test_every_key_has_description(printed_schema):
    missing = [where for where, prop in _property_schemas(printed_schema)
               if not (isinstance(prop, dict) and prop.get("description", "").strip())]

    assert missing == []


def test_every_definition_has_description(printed_schema):
    missing = [name for name, definition in printed_schema["$defs"].items()
               if not definition.get("description", "").strip()]

    assert missing == []


def test_defaults_and_examples_are_valid(printed_schema):
    """Each default and example must pass the rules of the key it annotates."""
    bad = []
    for where, prop in _property_schemas(printed_schema):
        if not isinstance(prop, dict):
            continue
        checked = {k: v for k, v in prop.items() if k not in ("default", "examples")}
        validator = jsonschema.Draft202012Validator(
            {**checked, "$defs": printed_schema["$defs"]})
        for value in [prop["default"]] if "default" in prop else []:
            if not validator.is_valid(value):
                bad.append(f"{where} default {value!r}")
        for value in prop.get("examples", []):
            if not validator.is_valid(value):
                bad.append(f"{where} example {value!r}")

    assert bad == []


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_printed_schema_validates_example(printed_schema, path):
    assert _editor_errors(printed_schema, path) == []


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_modeline_points_at_schema(path):
    match = MODELINE_RE.search(path.read_text(encoding="utf-8"))

    assert match is not None
    target = (path.parent / match.group(1)).resolve()
    assert target == SCHEMA_FILE.resolve()


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.yaml")), ids=lambda p: p.name)
def test_printed_schema_validates_template(printed_schema, path):
    assert _editor_errors(printed_schema, path) == []


MISSPELT = """\
version: 1
steps:
  - name: reply
    kind: ca_reply
    reply: certnew.p7b
    key: www.key
    cert_out: www.crt
    {key}: www.chain.pem
"""


@pytest.mark.parametrize("typo, right, words", [
    ("chain_ot", "chain_out", "chain"),
    ("cert_out_", "cert_out", "leaf certificate"),
    ("extra_cert", "extra_certs", "intermediate"),
    ("includeRoot", "include_root", "root"),
])
def test_misspelt_key_finds_right_description(printed_schema, tmp_path, typo, right, words):
    text = MISSPELT.format(key=typo)
    if typo.startswith("cert_out"):
        text = text.replace("    cert_out: www.crt\n", "    chain_out: www.chain.pem\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")

    errors = [e for e in _editor_errors(printed_schema, path)
              if e.validator == "additionalProperties"]

    assert len(errors) == 1
    assert "Additional properties are not allowed" in errors[0].message
    assert repr(typo) in errors[0].message
    allowed = errors[0].schema["properties"]
    assert difflib.get_close_matches(typo, list(allowed), n=1) == [right]
    assert words in allowed[right]["description"]


def test_misspelt_top_level_key_finds_steps(printed_schema, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("version: 1\nstpes: []\n", encoding="utf-8")

    errors = [e for e in _editor_errors(printed_schema, path)
              if e.validator == "additionalProperties"]

    assert len(errors) == 1
    allowed = errors[0].schema["properties"]
    assert difflib.get_close_matches("stpes", list(allowed), n=1) == ["steps"]
    assert "The steps, run in this order" in allowed["steps"]["description"]


def test_misspelt_name_key_in_step_is_described(printed_schema, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("version: 1\nsteps:\n  - nme: key\n    name: key\n    kind: private_key\n"
                    "    algorithm: ec\n    out: k.pem\n", encoding="utf-8")

    errors = [e for e in _editor_errors(printed_schema, path)
              if e.validator == "additionalProperties"]

    assert len(errors) == 1
    assert "Unique name of the step" in errors[0].schema["properties"]["name"]["description"]


def test_validate_suggests_right_key(cli, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(MISSPELT.format(key="chain_ot"), encoding="utf-8")

    result = cli("validate", path)

    assert result.exit_code == 2
    assert f"{path}:8:5: steps[0].chain_ot (step 'reply'): unknown key 'chain_ot'; did you " \
           f"mean 'chain_out'?" in result.err


def test_reference_matches_schema(printed_schema):
    expected = render_reference(printed_schema)
    actual = REFERENCE_FILE.read_text(encoding="utf-8") if REFERENCE_FILE.exists() else ""

    assert actual == expected, (
        f"{REFERENCE_FILE.relative_to(ROOT)} is out of date with the schema; regenerate it "
        f"from the repository root with: {REGENERATE_COMMAND}"
    )


def test_reference_lists_every_kind_and_key(printed_schema):
    text = REFERENCE_FILE.read_text(encoding="utf-8")
    for kind in printed_schema["$defs"]["step"]["properties"]["kind"]["enum"]:
        assert f"### `{kind}`" in text
        for key in printed_schema["$defs"][kind]["properties"]:
            assert f"| `{key}` |" in text, f"{kind}.{key}"


def test_schema_markdown_format_prints_reference(cli):
    result = cli("schema", "--format", "markdown")

    assert result.exit_code == 0
    assert result.out == REFERENCE_FILE.read_text(encoding="utf-8")


def test_schema_unknown_format_is_usage_error(cli):
    result = cli("schema", "--format", "yaml")

    assert result.exit_code == 2
    assert "invalid choice: 'yaml'" in result.err
