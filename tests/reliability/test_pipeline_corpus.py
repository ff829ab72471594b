"""Every malformed pipeline file gets a clean error and leaves the work directory as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reliability.harness import (
    TRACEBACK_MARK, describe_changes, run_certpipe, snapshot, tally, temp_files,
)
from reliability.pipeline_corpus import CASES, Case

PIPELINE_TALLY = "pipeline files"


def test_corpus_size():
    assert len(CASES) >= 100
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_pipeline(case: Case, workdir: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch):
    pipeline = tmp_path / "pipeline.yaml"
    content = case.content if isinstance(case.content, bytes) else case.content.encode()
    pipeline.write_bytes(content)
    if case.prepare is not None:
        case.prepare(pipeline)
    for name, data in case.files.items():
        (workdir / name).write_bytes(data)
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    args = [arg.replace("{work}", str(workdir)) for arg in case.args]
    before = snapshot(workdir)

    outcome = run_certpipe("run", pipeline, "--workdir", workdir, *args)

    after = snapshot(workdir)
    changes = describe_changes(before, after)
    tally(PIPELINE_TALLY).record(outcome, case.code, bool(changes))
    assert not outcome.crash, outcome.crash
    assert TRACEBACK_MARK not in outcome.text
    assert outcome.exit_code == case.code, outcome.err
    where = case.where.format(file=pipeline, work=workdir)
    problem = case.problem.replace("{work}", str(workdir))
    assert where in outcome.err
    assert problem in outcome.err
    assert changes == []
    assert temp_files(workdir) == []
    assert len(outcome.err) < 20_000, "the error message should stay readable"


@pytest.mark.parametrize("case", [c for c in CASES if c.code == 2 and not c.args
                                  and c.prepare is None],
                         ids=lambda c: c.id)
def test_validate_reports_same_problem(case: Case, tmp_path: Path):
    pipeline = tmp_path / "pipeline.yaml"
    content = case.content if isinstance(case.content, bytes) else case.content.encode()
    pipeline.write_bytes(content)

    outcome = run_certpipe("validate", pipeline)

    assert not outcome.crash, outcome.crash
    assert outcome.exit_code == 2
    assert case.problem in outcome.err


def test_unreadable_pipeline_file(tmp_path: Path, workdir: Path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("version: 1\n", encoding="utf-8")
    pipeline.chmod(0)
    outcome = run_certpipe("run", pipeline, "--workdir", workdir)
    assert outcome.exit_code == 2
    assert f"{pipeline}: cannot read pipeline file: Permission denied" in outcome.err
