"""Validate a loaded pipeline document against the JSON Schema shipped in the package.

Each jsonschema error becomes one line: ``file:line:col: key.path: problem``,
worded like a compiler error so the user can fix the file without reading
the schema.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from certpipe.pipeline.load import Document, format_key_path

MAX_REPORTED_ERRORS = 20


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    text = resources.files("certpipe.pipeline").joinpath("schema.json").read_text("utf-8")
    return json.loads(text)


def schema_problems(doc: Document, data: Any) -> list[str]:
    """Return one formatted line per schema error in *data*, in file order."""
    import jsonschema

    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: _sort_key(doc, e))
    problems: list[str] = []
    seen: set[str] = set()
    for error in errors:
        line = _describe(doc, data, error)
        if line not in seen:
            seen.add(line)
            problems.append(line)
    if len(problems) > MAX_REPORTED_ERRORS:
        hidden = len(problems) - MAX_REPORTED_ERRORS
        problems = problems[:MAX_REPORTED_ERRORS] + [f"... and {hidden} more errors"]
    return problems


def _sort_key(doc: Document, error: Any) -> tuple[int, int]:
    path = tuple(error.absolute_path)
    for end in range(len(path), -1, -1):
        mark = doc.marks.get(path[:end])
        if mark is not None:
            return (mark.line, mark.column)
    return (0, 0)


def _step_label(data: Any, path: tuple[Any, ...]) -> str:
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        try:
            step = data["steps"][path[1]]
            if isinstance(step, dict) and isinstance(step.get("name"), str):
                return f" (step '{step['name']}')"
        except (KeyError, IndexError, TypeError):
            pass
    return ""


def _describe(doc: Document, data: Any, error: Any) -> str:
    path = tuple(error.absolute_path)
    label = format_key_path(path) + _step_label(data, path)
    validator = error.validator
    instance = error.instance
    schema = error.schema

    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extras = [key for key in instance if key not in allowed]
        lines = []
        for key in extras:
            where = doc.where((*path, key), at_key=True)
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            lines.append(
                f"{where}: {format_key_path((*path, key))}{_step_label(data, path)}: "
                f"unknown key '{key}'{suggestion} Allowed keys: {', '.join(allowed)}"
            )
        return "\n  ".join(lines)

    where = doc.where(path)
    if validator == "required":
        return f"{where}: {label}: {error.message.replace(' is a required property', '')} is required but missing"
    if validator == "enum":
        choices = ", ".join(json.dumps(choice) for choice in error.validator_value)
        return f"{where}: {label}: {json.dumps(instance)} is not allowed; expected one of {choices}"
    if validator == "const":
        return f"{where}: {label}: {json.dumps(instance)} is not allowed; expected {json.dumps(error.validator_value)}"
    if validator == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where}: {label}: expected {_article(expected_text)}, got {_type_name(instance)} {_short(instance)}"
    if validator == "pattern":
        hint = schema.get("description")
        tail = f" ({hint})" if hint else f" (must match {error.validator_value})"
        return f"{where}: {label}: {_short(instance)} is not valid{tail}"
    if validator in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
                     "minProperties"):
        return f"{where}: {label}: {error.message}"
    if validator == "not":
        return f"{where}: {label}: this combination of keys is not allowed ({_not_hint(error)})"
    if validator == "oneOf":
        return f"{where}: {label}: expected a string or a list of strings, got {_type_name(instance)} {_short(instance)}"
    return f"{where}: {label}: {error.message}"


def _not_hint(error: Any) -> str:
    required = error.validator_value.get("required", []) if isinstance(error.validator_value, dict) else []
    if required:
        return f"'{required[0]}' does not apply here"
    return "see the step's documentation"


def _article(text: str) -> str:
    return ("an " if text[:1] in "aeiou" else "a ") + text


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, (dict, list)) else ""
    if len(text) > 60:
        text = text[:57] + "..."
    return text
