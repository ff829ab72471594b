"""Generated documents either load as a pipeline or raise PipelineError, nothing else.

Four generators approach the loader from different sides: arbitrary bytes,
text built from YAML's punctuation, arbitrary data dumped as YAML, and valid
pipelines with one or more values replaced, removed or added. The examples
are deterministic (``derandomize``), so a failure reproduces on every run.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from certpipe.errors import PipelineError
from certpipe.pipeline.load import load_document
from certpipe.pipeline.model import load_pipeline
from reliability.harness import tally

PROFILE = settings.get_profile("reliability")
HYPOTHESIS_TALLY = "hypothesis documents"

VALID = {
    "version": 1,
    "name": "generated",
    "vars": {"host": "www.example.test", "bits": 2048},
    "timeout": 60,
    "steps": [
        {"name": "key", "kind": "private_key", "algorithm": "rsa", "bits": "${bits}",
         "out": "${host}.key"},
        {"name": "csr", "kind": "csr", "key": "${host}.key",
         "subject": {"C": "XX", "O": ["Example", "Org"], "CN": "${host}"},
         "subject_alt_names": {"dns": ["example.test"], "ip": ["192.0.2.1"]},
         "digest": "sha256", "out": "${host}.csr"},
        {"name": "sign", "kind": "local_ca", "csr": "${host}.csr", "days": 30,
         "ca_dir": "ca", "ca_name": "Test", "out": "reply.p7b"},
        {"name": "reply", "kind": "ca_reply", "reply": "reply.p7b", "key": "${host}.key",
         "csr": "${host}.csr", "extra_certs": ["chain.pem"], "include_root": False,
         "allow_incomplete_chain": False, "weak_signature": "warn",
         "cert_out": "${host}.crt", "chain_out": "chain.out.pem"},
        {"name": "pfx", "kind": "pkcs12", "key": "${host}.key", "cert": "${host}.crt",
         "chain": "chain.out.pem", "password": "env:PFX_PASSWORD",
         "key_passphrase": "none", "friendly_name": "www", "profile": "modern",
         "out": "${host}.pfx"},
    ],
}

KEYS = ["version", "name", "vars", "timeout", "steps", "kind", "out", "key", "csr",
        "subject", "CN", "bits", "curve", "algorithm", "password", "reply", "cert",
        "chain", "extra_certs", "days", "ca_dir", "subject_alt_names", "dns", "ip", "<<"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["${host}", "${nope}", "${", "$$", "${bits}", "env:X", "file:",
                     "none", "../x", "/abs", ".", "private_key", "csr", "pkcs12", "rsa",
                     "ec", "P-256", "\n", "\x00", "a\u2028b", "C:\\x"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children,
                        max_size=4),
    ),
    max_leaves=25,
)

YAML_ALPHABET = st.sampled_from(list(":-[]{}!&*#|>'\"%@`,? \n\t\\$") + [
    "version: 1\n", "steps:\n", "  - ", "name: ", "kind: ", "!!python/object:", "*a", "&a ",
    "<<: ", "---\n", "...\n", "!!binary ", "${", "}", "0x1F", "1e400", "~", "\ufeff",
])


def record(path: Path, loader: Any) -> None:
    """Load *path* with *loader*; count the outcome and fail on any exception but PipelineError."""
    counts = tally(HYPOTHESIS_TALLY)
    counts.tried += 1
    try:
        loader(path)
    except PipelineError as exc:
        counts.clean += 1
        message = str(exc)
        assert message.startswith(str(path)), message
        assert "Traceback" not in message
        return
    except BaseException:
        counts.tracebacks += 1
        raise
    counts.extra["valid"] += 1


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "generated.yaml"
    path.write_bytes(content)
    return path


@PROFILE
@given(content=st.binary(max_size=300))
def test_random_bytes_load_cleanly(tmp_path: Path, content: bytes):
    record(write(tmp_path, content), load_pipeline)


@PROFILE
@given(pieces=st.lists(YAML_ALPHABET, max_size=40))
def test_yaml_punctuation_loads_cleanly(tmp_path: Path, pieces: list[str]):
    path = write(tmp_path, "".join(pieces).encode("utf-8"))
    record(path, load_document)
    record(path, load_pipeline)


@PROFILE
@given(data=documents)
def test_dumped_data_loads_cleanly(tmp_path: Path, data: Any):
    if isinstance(data, dict):
        data.setdefault("version", 1)
    text = yaml.safe_dump(data, allow_unicode=True)
    record(write(tmp_path, text.encode("utf-8")), load_pipeline)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside *value*, the empty path included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


ALL_PATHS = [path for path in _paths(VALID) if path]


@st.composite
def mutated_pipelines(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    document = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(documents)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.sampled_from(KEYS))] = draw(documents)
            else:
                parent.append(draw(documents))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced this path
    overrides = draw(st.dictionaries(
        st.sampled_from(["host", "bits", "other"]),
        st.one_of(st.text(max_size=12), st.sampled_from(["4096", "1024", "${host}", "${"])),
        max_size=2,
    ))
    return document, overrides


@PROFILE
@given(case=mutated_pipelines())
def test_mutated_pipelines_load_cleanly(tmp_path: Path, case: tuple[dict[str, Any], dict]):
    document, overrides = case
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    record(write(tmp_path, text.encode("utf-8")),
           lambda path: load_pipeline(path, overrides))


def test_valid_pipeline_loads(tmp_path: Path):
    path = write(tmp_path, yaml.safe_dump(VALID, sort_keys=False).encode("utf-8"))
    pipeline = load_pipeline(path)
    assert [step.name for step in pipeline.steps] == ["key", "csr", "sign", "reply", "pfx"]
    assert pipeline.steps[0].bits == 2048
    assert re.fullmatch(r"www\.example\.test\.key", pipeline.steps[0].out)
