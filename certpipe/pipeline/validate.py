"""Validate a loaded pipeline document against the JSON Schema shipped in the package.

Each jsonschema error becomes one line: ``file:line:col: key.path: problem``,
worded like a compiler error so the user can fix the file without reading
the schema. A second pass rejects control characters in every string value,
because no pipeline value is meant to span lines or carry terminal escapes.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

from certpipe.pipeline.load import Document, KeyPath, format_key_path

MAX_REPORTED_ERRORS = 20
MAX_SHOWN_CHARS = 60

# Step names that are safe to repeat in a message label. Other names are
# shown only as the invalid value itself.
_PRINTABLE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    text = resources.files("certpipe.pipeline").joinpath("schema.json").read_text("utf-8")
    return json.loads(text)


def schema_problems(doc: Document, data: Any) -> list[str]:
    """Return one formatted line per problem in *data*, in file order.

    Problems are schema errors and string values with control characters.
    A type error hides the other errors at or below its key path, because
    once a step is not a mapping, complaints about its keys only add noise.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = list(validator.iter_errors(data))
    mistyped = [tuple(e.absolute_path) for e in errors if e.validator == "type"]
    found: list[tuple[tuple[int, int], str]] = []
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator != "type" and any(path[:len(m)] == m for m in mistyped):
            continue
        for line in _describe(doc, data, error):
            found.append((_position(doc, path), line))
    for path, char in _control_characters(data, ()):
        found.append((_position(doc, path), _control_message(doc, data, path, char)))
    found.sort(key=lambda item: item[0])

    problems: list[str] = []
    seen: set[str] = set()
    for _, line in found:
        if line not in seen:
            seen.add(line)
            problems.append(line)
    if len(problems) > MAX_REPORTED_ERRORS:
        hidden = len(problems) - MAX_REPORTED_ERRORS
        problems = problems[:MAX_REPORTED_ERRORS] + [f"... and {hidden} more errors"]
    return problems


def _position(doc: Document, path: KeyPath) -> tuple[int, int]:
    for end in range(len(path), -1, -1):
        mark = doc.marks.get(path[:end])
        if mark is not None:
            return (mark.line, mark.column)
    return (0, 0)


def _control_characters(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """Yield the key path and first control character of each string value that has one."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _control_characters(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _control_characters(item, (*path, index))
    elif isinstance(value, str):
        for char in value:
            # Category Cc covers C0, DEL and C1 (with U+0085 NEXT LINE). Zl and
            # Zp are the Unicode line and paragraph separators.
            if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
                yield path, char
                return


def _control_message(doc: Document, data: Any, path: KeyPath, char: str) -> str:
    name = unicodedata.name(char, "") or _C0_NAMES.get(ord(char), "control character")
    return (f"{doc.where(path)}: {_label(data, path)}: contains a control character "
            f"(U+{ord(char):04X}, {name.lower()}); pipeline values must be single-line "
            f"text, so remove it")


_C0_NAMES = {0x00: "NUL", 0x09: "tab", 0x0A: "line feed", 0x0D: "carriage return",
             0x1B: "escape", 0x7F: "delete", 0x85: "next line"}


def _step_label(data: Any, path: KeyPath) -> str:
    if len(path) < 2 or path[0] != "steps" or not isinstance(path[1], int):
        return ""
    if path[2:] == ("name",):
        return ""  # the name is the invalid value, so a label would repeat it
    try:
        step = data["steps"][path[1]]
    except (KeyError, IndexError, TypeError):
        return ""
    name = step.get("name") if isinstance(step, dict) else None
    if isinstance(name, str) and _PRINTABLE_NAME_RE.match(name):
        return f" (step '{name}')"
    return ""


def _label(data: Any, path: KeyPath) -> str:
    return _short_key_path(path) + _step_label(data, path)


def _short_key_path(path: KeyPath) -> str:
    return format_key_path(tuple(_short_text(p) if isinstance(p, str) else p for p in path))


def _is_secret(error: Any) -> bool:
    return bool(error.schema == load_schema()["$defs"]["secret"])


def _describe(doc: Document, data: Any, error: Any) -> list[str]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_keys(doc, data, path, error)
    where = doc.where(path)
    label = _label(data, path)
    if _is_secret(error):
        # Never repeat the value: a password typed where its source belongs.
        return [f"{where}: {label}: is not a password source; use env:NAME (an environment "
                f"variable), file:PATH (a file holding the password) or none"]
    return [f"{where}: {label}: {_problem(error)}"]


def _unknown_keys(doc: Document, data: Any, path: KeyPath, error: Any) -> list[str]:
    allowed = sorted(error.schema.get("properties", {}))
    lines = []
    for key in error.instance:
        if key in allowed:
            continue
        where = doc.where((*path, key), at_key=True)
        hint = difflib.get_close_matches(key, allowed, n=1) if len(key) <= 64 else []
        suggestion = f"did you mean '{hint[0]}'? " if hint else ""
        lines.append(
            f"{where}: {_label(data, (*path, key))}: unknown key '{_short_text(key)}'; "
            f"{suggestion}allowed keys: {', '.join(allowed)}"
        )
    return lines


def _problem(error: Any) -> str:
    validator = error.validator
    instance = error.instance
    limit = error.validator_value
    if validator == "required":
        missing = [key for key in limit if key not in instance]
        return f"'{missing[0] if missing else limit[0]}' is required but missing"
    if validator == "enum":
        choices = ", ".join(json.dumps(choice) for choice in limit)
        return f"{_shown(instance)} is not allowed; expected one of {choices}"
    if validator == "const":
        return f"{_shown(instance)} is not allowed; expected {json.dumps(limit)}"
    if validator == "type":
        expected = " or ".join(limit) if isinstance(limit, list) else limit
        return f"expected {_article(expected)}, got {_type_and_value(instance)}"
    if validator == "pattern":
        hint = error.schema.get("description")
        return f"{_shown(instance)} is not valid ({hint or f'must match {limit}'})"
    if validator in ("minLength", "minItems", "minProperties"):
        if limit == 1:
            return f"{_shown(instance)} should be non-empty"
        return f"{_shown(instance)} is too short (at least {limit})"
    if validator == "maxLength":
        return f"{_shown(instance)} is too long ({len(instance)} characters; at most {limit})"
    if validator == "maxItems":
        return f"is too long ({len(instance)} items; at most {limit})"
    if validator == "minimum":
        return f"{_shown(instance)} is less than the minimum of {limit}"
    if validator == "maximum":
        return f"{_shown(instance)} is greater than the maximum of {limit}"
    if validator == "not":
        return f"this combination of keys is not allowed ({_not_hint(error)})"
    if validator == "oneOf":
        return f"expected a string or a list of strings, got {_type_and_value(instance)}"
    if validator == "propertyNames":
        return f"{_shown(instance)} is not a valid name"
    return _short_text(error.message, 200)


def _not_hint(error: Any) -> str:
    value = error.validator_value
    required = value.get("required", []) if isinstance(value, dict) else []
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


def _type_and_value(value: Any) -> str:
    if value is None or isinstance(value, (list, dict)):
        return _type_name(value)
    return f"{_type_name(value)} {_shown(value)}"


def _shown(value: Any) -> str:
    """Render *value* as JSON, cut to a readable length."""
    if isinstance(value, dict) and value:
        return "a mapping"
    if isinstance(value, list) and value:
        return "a list"
    return _short_text(json.dumps(value, ensure_ascii=False))


def _short_text(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit - 3]}... ({len(text)} characters)"
