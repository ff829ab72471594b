"""Render the pipeline JSON Schema as the Markdown reference in docs/pipeline-reference.md.

The schema is the single source: descriptions, defaults and examples come
from its annotations, so the reference and the editor hover text agree.
"""

from __future__ import annotations

import json
from typing import Any

REGENERATE_COMMAND = "certpipe schema --format markdown > docs/pipeline-reference.md"

# $defs that are neither step kinds nor the step wrapper, in the order shown.
VALUE_TYPE_ORDER = ("path", "out_path", "secret", "dns_name", "subject_value", "subject_values")


def render_reference(schema: dict[str, Any]) -> str:
    """Return the whole reference page for *schema* as Markdown text."""
    renderer = _Renderer(schema)
    return renderer.render()


class _Renderer:
    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})
        self.lines: list[str] = []

    def render(self) -> str:
        self.lines = [
            "# Pipeline reference",
            "",
            "<!-- Generated from certpipe/pipeline/schema.json. Do not edit by hand; "
            f"regenerate with: {REGENERATE_COMMAND} -->",
            "",
            self.schema.get("description", ""),
            "",
            "`certpipe schema` prints the JSON Schema this page is made from; editors that "
            "read JSON Schema show the same descriptions on hover.",
            "",
            "## Top level",
            "",
        ]
        self._table(self.schema)
        self._nested_sections(self.schema, prefix="", level="###")
        self._steps()
        self._value_types()
        return "\n".join(self.lines).rstrip("\n") + "\n"

    def _steps(self) -> None:
        step = self.defs["step"]
        self.lines += ["## Steps", "", step.get("description", ""), "",
                       "Keys of every step:", ""]
        self._table(step)
        for kind in self._kind_order():
            definition = self.defs[kind]
            self.lines += [f"### `{kind}`", "", definition.get("description", ""), ""]
            self._table(definition, kind)
            self._nested_sections(definition, prefix=f"{kind}.", level="####")

    def _kind_order(self) -> list[str]:
        kinds = self.defs["step"]["properties"]["kind"].get("enum", [])
        wired = set()
        for rule in self.defs["step"].get("allOf", []):
            kind = rule.get("if", {}).get("properties", {}).get("kind", {}).get("const")
            target = rule.get("then", {}).get("$ref", "")
            if kind and target == f"#/$defs/{kind}":
                wired.add(kind)
        return [kind for kind in kinds if kind in wired and kind in self.defs]

    def _value_types(self) -> None:
        self.lines += ["## Value types", ""]
        kinds = set(self._kind_order())
        names = [name for name in VALUE_TYPE_ORDER if name in self.defs]
        names += sorted(name for name in self.defs
                        if name not in names and name not in kinds and name != "step")
        for name in names:
            definition = self.defs[name]
            self.lines += [f"### `{name}`", "", definition.get("description", ""), ""]
            facts = [f"Value: {self._value(definition)}."]
            if "pattern" in definition:
                facts.append(f"Pattern: `{definition['pattern']}`.")
            if "examples" in definition:
                facts.append("Examples: " + ", ".join(_code(e) for e in definition["examples"])
                             + ".")
            self.lines += [" ".join(facts), ""]

    def _table(self, schema: dict[str, Any], kind: str | None = None) -> None:
        required = set(schema.get("required", []))
        self.lines += ["| key | required | value | default | description |",
                       "| --- | --- | --- | --- | --- |"]
        for key, prop in schema.get("properties", {}).items():
            prop = prop if isinstance(prop, dict) else {}
            default = _code(prop["default"]) if "default" in prop else ""
            description = prop.get("description", "")
            if "examples" in prop:
                description += " Example: " + ", ".join(_code(e) for e in prop["examples"][:2])
            if kind is not None and key == "kind":
                value = _code(kind)
            elif kind is not None and key == "name":
                value = "string, see [Steps](#steps)"
            else:
                value = self._value(prop)
            cells = [f"`{key}`", "yes" if key in required else "no", value, default,
                     description.strip()]
            self.lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        self.lines.append("")

    def _nested_sections(self, schema: dict[str, Any], prefix: str, level: str) -> None:
        for key, prop in schema.get("properties", {}).items():
            if not isinstance(prop, dict):
                continue
            if "properties" in prop:
                self.lines += [f"{level} `{prefix}{key}`", "", prop.get("description", ""), ""]
                self._table(prop)
            elif isinstance(prop.get("additionalProperties"), dict):
                entry = prop["additionalProperties"]
                names = prop.get("propertyNames", {}).get("pattern")
                self.lines += [f"{level} `{prefix}{key}`", "", prop.get("description", ""), ""]
                text = f"Each entry: a name{f' matching `{names}`' if names else ''}, " \
                       f"and {self._value(entry)}. {entry.get('description', '')}"
                if "examples" in entry:
                    text += " Examples: " + ", ".join(_code(e) for e in entry["examples"]) + "."
                self.lines += [text.strip(), ""]

    def _value(self, schema: Any) -> str:
        """Describe the values *schema* allows, in a few words."""
        if schema is True or not isinstance(schema, dict):
            return "any"
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return f"[{name}](#{'steps' if name == 'step' else name})"
        if "const" in schema:
            return _code(schema["const"])
        if "enum" in schema:
            choices = [_code(choice) for choice in schema["enum"]]
            if len(choices) > 2:
                return "one of " + ", ".join(choices)
            return " or ".join(choices)
        if "oneOf" in schema:
            return " or ".join(self._value(option) for option in schema["oneOf"])
        kind = schema.get("type")
        if isinstance(kind, list):
            return " or ".join(kind)
        if kind == "array":
            text = f"list of {self._value(schema.get('items', True))}"
            return text + _bounds(schema, "minItems", "maxItems", "items")
        if kind == "object":
            return "mapping"
        if kind == "string":
            return "string" + _bounds(schema, "minLength", "maxLength", "characters")
        if kind == "integer":
            return "integer" + _bounds(schema, "minimum", "maximum", "")
        return kind or "any"


def _bounds(schema: dict[str, Any], low_key: str, high_key: str, unit: str) -> str:
    low, high = schema.get(low_key), schema.get(high_key)
    unit = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f" ({low} to {high}{unit})"
    if low is not None:
        return f" (at least {low}{unit})"
    if high is not None:
        return f" (at most {high}{unit})"
    return ""


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
