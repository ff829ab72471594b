"""Turn a loaded document into validated, resolved pipelines: one per certificate.

A pipeline file without ``certificates:`` resolves to one Pipeline whose
files go into the work directory. With ``certificates:``, the steps are
resolved once for each certificate, with the pipeline's variables, then the
certificate's own, then ``--set`` values, and each certificate's files go
into a sub-folder of the work directory named after it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from certpipe.errors import PipelineError
from certpipe.pipeline.load import Document, KeyPath, format_key_path, load_document

_VAR_RE = re.compile(r"\$(\$|\{([^}]*)\})")
# A '${' with no closing brace, once every '$$' escape is taken out.
_UNCLOSED_RE = re.compile(r"\$\{[^}]*\Z")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_VAR_DEPTH = 10
# Certificate names become folder names: no separators, no leading dot.
CERTIFICATE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# The variable that contains a certificate's name, unless vars define it.
CERTIFICATE_VAR = "certificate"
CERTIFICATE_KEYS = ("name", "vars")
# A problem shared by many certificates names this many of them.
MAX_NAMED_CERTIFICATES = 5

VarSource = tuple[dict[str, Any], KeyPath]  # (variables, where they are in the file)


@dataclass
class Pipeline:
    path: Path
    sha256: str
    name: str
    timeout: float
    steps: list[Any]  # certpipe.steps.base.Step
    vars: dict[str, Any] = field(default_factory=dict)
    # Environment variables named as env:NAME secret sources anywhere in the pipeline.
    secret_env_names: frozenset[str] = frozenset()
    document: Document | None = field(default=None, repr=False, compare=False)
    # The certificate this pipeline is resolved for; None without certificates:.
    certificate: str | None = None

    def step(self, name: str) -> Any:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Parse ``--set NAME=VALUE`` arguments."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _NAME_RE.match(name):
            raise PipelineError(
                f"--set {pair!r}: expected NAME=VALUE with NAME made of letters, digits and _"
            )
        result[name] = value
    return result


def load_pipeline(path: Path, overrides: Mapping[str, str] | None = None) -> Pipeline:
    """Load, resolve and validate a pipeline without ``certificates:``.

    Raise PipelineError listing every problem; a file with ``certificates:``
    needs :func:`load_pipelines`.
    """
    pipelines = load_pipelines(path, overrides)
    if pipelines[0].certificate is not None:
        raise PipelineError(f"{path}: declares certificates:, so it resolves to one pipeline "
                            f"per certificate")
    return pipelines[0]


def load_pipelines(path: Path, overrides: Mapping[str, str] | None = None) -> list[Pipeline]:
    """Load *path* and resolve it once per certificate, or once without ``certificates:``.

    Every certificate is validated before any is returned; PipelineError
    lists each problem once, naming the certificates it concerns.
    """
    doc = load_document(path)
    data = doc.data
    if not isinstance(data, dict):
        raise PipelineError(
            f"{doc.where(())}: the top level must be a mapping with 'version' and 'steps'"
        )
    certificates = _read_certificates(doc, data)
    if certificates is None:
        return [_resolve(doc, data, overrides or {}, None)]
    declared = {CERTIFICATE_VAR}
    for variables in [data.get("vars")] + [source[0] for _, _, source in certificates]:
        if isinstance(variables, dict):
            declared.update(name for name in variables if isinstance(name, str))
    _check_overrides(doc, data, dict.fromkeys(declared), overrides or {})
    pipelines = []
    problems: dict[str, list[str]] = {}  # problem -> names of the certificates it concerns
    about_list: list[str] = []  # problems in other entries of certificates:, found once
    for index, name, source in certificates:
        first = index == certificates[0][0]
        try:
            pipelines.append(_resolve(doc, data, overrides or {}, (name, source),
                                      check_certificates=first))
        except PipelineError as exc:
            for problem in exc.problems or [str(exc)]:
                if first and _about_other_entry(problem, index):
                    about_list.append(problem)
                else:
                    problems.setdefault(problem, []).append(name)
    if problems or about_list:
        raise PipelineError(f"{path}: invalid pipeline", about_list + [
            problem + _certificates_label(names) for problem, names in problems.items()])
    return pipelines


def _about_other_entry(problem: str, index: int) -> bool:
    """Tell whether a problem concerns the certificates: list, but not entry *index*.

    Problems read ``file:line:column: key.path: text``. The schema check of
    the whole list runs with the first certificate only, and a problem it
    finds in another entry names that entry by its key path already.
    """
    mentioned = ": certificates[" in problem or ": certificates: " in problem
    return mentioned and f": certificates[{index}]" not in problem


def _certificates_label(names: list[str]) -> str:
    if len(names) == 1:
        return f" (certificate '{names[0]}')"
    shown = ", ".join(f"'{name}'" for name in names[:MAX_NAMED_CERTIFICATES])
    more = len(names) - MAX_NAMED_CERTIFICATES
    return f" (certificates {shown}{f' and {more} more' if more > 0 else ''})"


def _read_certificates(doc: Document,
                       data: dict[str, Any]) -> list[tuple[int, str, VarSource]] | None:
    """Return (index, name, variables) of each certificate, or None without certificates:."""
    if "certificates" not in data:
        return None
    raw = data["certificates"]
    where = doc.where(("certificates",))
    if not isinstance(raw, list) or not raw:
        raise PipelineError(f"{doc.path}: invalid pipeline", [
            f"{where}: certificates: expected a list with at least one entry such as "
            f"'- name: www.example.test'"])
    problems: list[str] = []
    found: list[tuple[int, str, VarSource]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        key_path: KeyPath = ("certificates", index)
        label = format_key_path(key_path)
        if not isinstance(entry, dict):
            problems.append(f"{doc.where(key_path)}: {label}: expected a mapping with name "
                            f"and optional vars")
            continue
        for key in entry:
            if key not in CERTIFICATE_KEYS:
                problems.append(f"{doc.where((*key_path, key), at_key=True)}: {label}.{key}: "
                                f"unknown key '{key}'; allowed keys: name, vars")
        name = entry.get("name")
        if not isinstance(name, str) or not CERTIFICATE_NAME_RE.match(name):
            problems.append(
                f"{doc.where((*key_path, 'name'))}: {label}.name: "
                f"{'is required but missing' if name is None else repr(name) + ' is not valid'}"
                f"; a certificate name is also its folder name: 1 to 128 letters, digits, "
                f"'.', '_' or '-', starting with a letter or digit")
            continue
        if name.lower() in seen:
            problems.append(f"{doc.where((*key_path, 'name'))}: {label}.name: '{name}' is "
                            f"already used by certificates[{seen[name.lower()]}] (names are "
                            f"compared without case, as folder names may be)")
            continue
        seen[name.lower()] = index
        variables = entry.get("vars") or {}
        if not isinstance(variables, dict):
            problems.append(f"{doc.where((*key_path, 'vars'))}: {label}.vars: expected a "
                            f"mapping of names to values")
            continue
        found.append((index, name, (variables, (*key_path, "vars"))))
    if problems:
        raise PipelineError(f"{doc.path}: invalid pipeline", problems)
    return found


def _resolve(doc: Document, data: dict[str, Any], overrides: Mapping[str, str],
             certificate: tuple[str, VarSource] | None,
             check_certificates: bool = True) -> Pipeline:
    """Resolve and validate the steps for one certificate, or for the pipeline alone.

    The ``certificates:`` list is checked against the schema only with
    *check_certificates*: once per file, not once per certificate, which
    would take time that grows with the square of their number.
    """
    path = doc.path
    variables = _collect_vars(doc, data, overrides, certificate)
    resolved = {key: value for key, value in data.items()
                if key not in ("vars", "certificates")}
    problems: list[str] = []
    resolved = _substitute(doc, resolved, (), variables, problems)
    for key in ("vars", "certificates"):
        if key in data and (key != "certificates" or check_certificates):
            resolved[key] = data[key]
    if problems:
        raise PipelineError(f"{path}: invalid pipeline", problems)

    from certpipe.pipeline.validate import schema_problems

    problems = schema_problems(doc, resolved)
    if problems:
        raise PipelineError(f"{path}: invalid pipeline", problems)

    from certpipe.steps import build_step

    steps = []
    for index, settings in enumerate(resolved["steps"]):
        try:
            steps.append(build_step(settings))
        except PipelineError as exc:
            problems.append(f"{doc.where(('steps', index))}: steps[{index}] "
                            f"(step '{settings['name']}'): {exc}")
    problems += _check_graph(doc, steps)
    if problems:
        raise PipelineError(f"{path}: invalid pipeline", problems)
    secret_env_names = frozenset(
        ref.env_name for step in steps for ref in step.secret_refs() if ref.env_name
    )
    return Pipeline(
        path=path,
        sha256=doc.sha256,
        name=resolved.get("name") or path.stem,
        timeout=float(resolved.get("timeout", 300)),
        steps=[step.with_pipeline_secrets(secret_env_names) for step in steps],
        vars=variables,
        document=doc,
        certificate=certificate[0] if certificate else None,
        secret_env_names=secret_env_names,
    )


def _collect_vars(doc: Document, data: dict[str, Any], overrides: Mapping[str, str],
                  certificate: tuple[str, VarSource] | None = None) -> dict[str, Any]:
    raw = data.get("vars", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{doc.where(('vars',))}: vars: expected a mapping of names to values")
    sources: list[VarSource] = [(raw, ("vars",))]
    if certificate is not None:
        sources.append(certificate[1])
    problems = []
    for variables, key_path in sources:
        label = format_key_path(key_path)
        for name, value in variables.items():
            if not isinstance(name, str) or not _NAME_RE.match(name):
                problems.append(f"{doc.where((*key_path, name), at_key=True)}: {label}.{name}: "
                                f"invalid variable name; use letters, digits and _")
            elif not isinstance(value, (str, int, bool)) or value is None:
                problems.append(f"{doc.where((*key_path, name))}: {label}.{name}: expected a "
                                f"string, number or boolean")
    if problems:
        raise PipelineError(f"{doc.path}: invalid pipeline", problems)
    if certificate is None:
        _check_overrides(doc, data, raw, overrides)
    merged: dict[str, Any] = {}
    places: dict[str, KeyPath] = {}
    if certificate is not None:
        merged[CERTIFICATE_VAR] = certificate[0]
    for variables, key_path in sources:
        merged.update(variables)
        places.update({name: (*key_path, name) for name in variables})
    merged.update(overrides)
    # Resolve references between variables, refusing cycles.
    resolved: dict[str, Any] = {}
    for name in merged:
        resolved[name] = _resolve_var(doc, name, merged, places, (), problems)
    if problems:
        raise PipelineError(f"{doc.path}: invalid pipeline", problems)
    return resolved


def _check_overrides(doc: Document, data: dict[str, Any], declared: Mapping[str, Any],
                     overrides: Mapping[str, str]) -> None:
    """Raise PipelineError for a ``--set`` name that the pipeline neither declares nor uses.

    A name used as ${name} but not declared under vars: is accepted, because
    such a variable is meant to be given by --set.
    """
    known = set(declared) | _referenced_names(data)
    problems = []
    for name in sorted(set(overrides) - known):
        listed = ", ".join(sorted(known)) or "none"
        problem = (f"--set {name}: the pipeline defines no variable '{name}' "
                   f"(defined: {listed})")
        close = difflib.get_close_matches(name, sorted(known), n=1)
        if close:
            problem += f"; did you mean '{close[0]}'?"
        problems.append(problem)
    if len(problems) == 1:
        raise PipelineError(f"{doc.path}: {problems[0]}")
    if problems:
        raise PipelineError(f"{doc.path}: invalid --set arguments", problems)


def _referenced_names(value: Any) -> set[str]:
    """Return the variable names used as ${name} in the string values within *value*."""
    if isinstance(value, dict):
        return set().union(*(_referenced_names(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_referenced_names(item) for item in value))
    if not isinstance(value, str):
        return set()
    names = {match.group(2) for match in _VAR_RE.finditer(value) if match.group(2)}
    return {name for name in names if _NAME_RE.match(name)}


def _resolve_var(doc: Document, name: str, merged: Mapping[str, Any],
                 places: Mapping[str, KeyPath], stack: tuple[str, ...],
                 problems: list[str]) -> Any:
    value = merged[name]
    if not isinstance(value, str):
        return value
    place = places.get(name, ("vars", name))
    where = f"{doc.where(place)}: {format_key_path(place)}"
    if name in stack:
        chain = " -> ".join((*stack, name))
        problems.append(f"{where}: variables refer to each other in a cycle ({chain})")
        return ""
    if len(stack) > MAX_VAR_DEPTH:
        problems.append(f"{where}: variable references nest more than {MAX_VAR_DEPTH} levels")
        return ""

    unclosed = _unclosed_reference(value)
    if unclosed:
        problems.append(f"{doc.where(('vars', name))}: vars.{name}: unclosed variable "
                        f"reference '{unclosed}'; write ${{name}}, or $$ for a literal '$'")
        return ""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$$"  # kept for the final pass, which turns it into '$'
        ref = match.group(2)
        if not _NAME_RE.match(ref):
            problems.append(f"{doc.where(('vars', name))}: vars.{name}: invalid variable "
                            f"reference '${{{ref}}}'")
            return ""
        if ref not in merged:
            problems.append(f"{where}: unknown variable '{ref}'")
            return ""
        return str(_resolve_var(doc, ref, merged, places, (*stack, name), problems))

    return _VAR_RE.sub(replace, value)


def _substitute(doc: Document, value: Any, key_path: KeyPath, variables: Mapping[str, Any],
                problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(doc, v, (*key_path, k), variables, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(doc, v, (*key_path, i), variables, problems)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    unclosed = _unclosed_reference(value)
    if unclosed:
        problems.append(f"{doc.where(key_path)}: {format_key_path(key_path)}: unclosed "
                        f"variable reference '{unclosed}'; write ${{name}}, or $$ for a "
                        f"literal '$'")
        return value
    whole = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value)
    if whole and whole.group(1) in variables:
        typed = variables[whole.group(1)]
        if isinstance(typed, str) and re.fullmatch(r"-?\d{1,9}", typed):
            return int(typed)  # a number given by --set, for keys such as bits
        if not isinstance(typed, str):
            return typed
        return typed.replace("$$", "$")

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        ref = match.group(2)
        if not _NAME_RE.match(ref):
            problems.append(f"{doc.where(key_path)}: {format_key_path(key_path)}: "
                            f"invalid variable reference '${{{ref}}}'")
            return ""
        if ref not in variables:
            known = ", ".join(sorted(variables)) or "none"
            problems.append(f"{doc.where(key_path)}: {format_key_path(key_path)}: unknown "
                            f"variable '{ref}' (defined: {known}); add it under vars: or "
                            f"pass --set {ref}=VALUE")
            return ""
        return str(variables[ref]).replace("$$", "$")

    return _VAR_RE.sub(replace, value)


def _unclosed_reference(value: str) -> str | None:
    """Return the text from an unclosed '${' to the end of *value*, if there is one."""
    stripped = value.replace("$$", "\0\0")  # same length, so offsets stay valid
    match = _UNCLOSED_RE.search(stripped)
    return value[match.start():] if match else None


def check_out_path(value: str) -> str | None:
    """Return why *value* may not be an output path, or None when it is fine."""
    if "\x00" in value:
        return "contains a NUL byte"
    pure = PurePosixPath(value)
    if pure.is_absolute() or value.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", value):
        return "is absolute; outputs must stay inside the work directory"
    if ".." in pure.parts or "\\" in value:
        return "leaves the work directory ('..' or a backslash)"
    if pure.parts and pure.parts[0] == ".certpipe":
        return "is inside .certpipe, which certpipe keeps for its own state"
    if not pure.parts or pure.parts == (".",):
        return "names the work directory itself; give a file name"
    # Temporary names add about 30 bytes to the file name; Linux and macOS
    # allow 255 bytes per name (NAME_MAX).
    long_parts = [part for part in pure.parts if len(part.encode("utf-8", "surrogatepass")) > 220]
    if long_parts:
        return "has a file or folder name longer than 220 bytes; use a shorter name"
    return None


def check_confinement(pipeline: Pipeline, workdir: Path) -> None:
    """Raise PipelineError when an output would land outside *workdir* through a symlink.

    Call it before anything runs: load_pipeline checks paths lexically, and
    this resolves the symlinks present in the work directory now.
    """
    from certpipe.fsutil import escape_reason

    problems = []
    for index, step in enumerate(pipeline.steps):
        for key, out in step.outputs().items():
            reason = escape_reason(workdir, out)
            if reason is None:
                continue
            where = pipeline.document.where(("steps", index, key)) if pipeline.document \
                else str(pipeline.path)
            problems.append(f"{where}: steps[{index}].{key} (step '{step.name}'): {out!r} "
                            f"{reason}")
    if problems:
        raise PipelineError(f"{pipeline.path}: output paths leave the work directory {workdir}",
                            problems)


def _check_graph(doc: Document, steps: list[Any]) -> list[str]:
    problems = []
    seen_names: dict[str, int] = {}
    producers: dict[str, tuple[int, str]] = {}
    for index, step in enumerate(steps):
        where = doc.where(("steps", index, "name"))
        if step.name in seen_names:
            problems.append(f"{where}: steps[{index}].name: step name '{step.name}' is already "
                            f"used by steps[{seen_names[step.name]}]")
        seen_names.setdefault(step.name, index)
        for key, out in step.outputs().items():
            reason = check_out_path(out)
            if reason:
                problems.append(f"{doc.where(('steps', index, key))}: steps[{index}].{key} "
                                f"(step '{step.name}'): {out!r} {reason}")
                continue
            normal = str(PurePosixPath(out))
            if normal in producers:
                other = producers[normal]
                problems.append(f"{doc.where(('steps', index, key))}: steps[{index}].{key} "
                                f"(step '{step.name}'): {out!r} is already written by step "
                                f"'{steps[other[0]].name}'")
            producers[normal] = (index, key)
    for index, step in enumerate(steps):
        for key_path, used in step.inputs():
            normal = str(PurePosixPath(used))
            if normal in producers and producers[normal][0] >= index:
                maker = steps[producers[normal][0]]
                relation = "itself" if maker is step else f"the later step '{maker.name}'"
                label = format_key_path(("steps", index, *key_path))
                problems.append(f"{doc.where(('steps', index, *key_path))}: {label} "
                                f"(step '{step.name}'): "
                                f"uses {used!r}, which {relation} writes; "
                                f"order the steps so that files are made before they are used")
    return problems
