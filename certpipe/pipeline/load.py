"""Load a pipeline YAML file into plain data plus the line and column of every node.

PyYAML's SafeLoader refuses object tags; composing the node tree first keeps
each node's start mark, so later errors can point at ``file:line:column``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from certpipe.errors import PipelineError
from certpipe.fsutil import FileRejected, read_limited

# A pipeline is a few kilobytes; these limits stop hostile or accidental
# giant inputs before PyYAML spends time or memory on them.
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 100_000

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    path: Path
    data: Any
    marks: dict[KeyPath, Mark]
    key_marks: dict[KeyPath, Mark]
    sha256: str

    def where(self, key_path: KeyPath, at_key: bool = False) -> str:
        """Return ``file:line:column`` for the nearest marked node on *key_path*.

        With *at_key*, point at the mapping key itself rather than its value.
        """
        if at_key and tuple(key_path) in self.key_marks:
            mark = self.key_marks[tuple(key_path)]
            return f"{self.path}:{mark.line}:{mark.column}"
        for end in range(len(key_path), -1, -1):
            mark = self.marks.get(tuple(key_path[:end]))
            if mark is not None:
                return f"{self.path}:{mark.line}:{mark.column}"
        return str(self.path)


def format_key_path(key_path: KeyPath) -> str:
    parts = []
    for item in key_path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def load_document(path: Path) -> Document:
    """Read and parse *path*, raising PipelineError with a location on any problem."""
    import hashlib

    try:
        raw = read_limited(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise PipelineError(f"{path}: pipeline file not found") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a folder, expected a pipeline file") from None
    except FileRejected as exc:
        raise PipelineError(f"{path}: {exc.reason}, more than the maximum of {MAX_FILE_BYTES} "
                            f"bytes for a pipeline file" if exc.too_large else
                            f"{path}: {exc.reason}; expected a pipeline file") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read pipeline file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); save the file as UTF-8"
        ) from None
    if "\x00" in text:
        offset = text.index("\x00")
        raise PipelineError(f"{path}: contains a NUL byte at offset {offset}")
    node = _compose(path, text)
    if node is None:
        raise PipelineError(f"{path}: the file is empty; expected a mapping with 'steps'")
    marks: dict[KeyPath, Mark] = {}
    key_marks: dict[KeyPath, Mark] = {}
    data = _to_python(path, node, (), (marks, key_marks), depth=0, count=[0])
    return Document(path=path, data=data, marks=marks, key_marks=key_marks,
                    sha256=hashlib.sha256(raw).hexdigest())


def _compose(path: Path, text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise PipelineError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise PipelineError(f"{path}: the document is nested too deeply") from None


_SAFE = yaml.SafeLoader("")
_TEXT_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}
_SCALAR_TAGS = {
    "tag:yaml.org,2002:" + name for name in ("str", "int", "float", "bool", "null")
}


def _to_python(path: Path, node: yaml.Node, key_path: KeyPath,
               all_marks: tuple[dict[KeyPath, Mark], dict[KeyPath, Mark]],
               depth: int, count: list[int]) -> Any:
    marks, key_marks = all_marks
    count[0] += 1
    where = f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    if depth > MAX_DEPTH:
        raise PipelineError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if count[0] > MAX_NODES:
        raise PipelineError(f"{path}: more than {MAX_NODES} YAML nodes")
    marks[key_path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)

    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            raise PipelineError(f"{where}: YAML tag {node.tag!r} is not allowed")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PipelineError(f"{where}: YAML merge keys ('<<') are not supported")
            if not isinstance(key_node, yaml.ScalarNode):
                kw = f"{path}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
                raise PipelineError(f"{kw}: a mapping key must be a plain string")
            key = key_node.value
            if key in result:
                kw = f"{path}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
                raise PipelineError(f"{kw}: duplicate key {key!r}")
            key_marks[(*key_path, key)] = Mark(key_node.start_mark.line + 1,
                                               key_node.start_mark.column + 1)
            result[key] = _to_python(path, value_node, (*key_path, key), all_marks,
                                     depth + 1, count)
        return result

    if isinstance(node, yaml.SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            raise PipelineError(f"{where}: YAML tag {node.tag!r} is not allowed")
        return [
            _to_python(path, item, (*key_path, index), all_marks, depth + 1, count)
            for index, item in enumerate(node.value)
        ]

    # Scalars: let the safe constructor resolve ints, bools, nulls and strings,
    # keep dates and binary as the text written, and refuse any other tag
    # (python objects and the like).
    if node.tag in _TEXT_TAGS:
        return str(node.value)
    if node.tag not in _SCALAR_TAGS:
        raise PipelineError(f"{where}: YAML tag {node.tag!r} is not allowed")
    try:
        value = _SAFE.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{where}: invalid value: {exc}") from None
    if isinstance(value, float) and value != value:  # NaN
        return str(node.value)
    return value
