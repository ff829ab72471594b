"""The certpipe-validate hook in .pre-commit-hooks.yaml, run by the real pre-commit.

``pre-commit try-repo`` installs the hook repository into a fresh virtual
environment, so each of these tests takes about 10 seconds (measured on a
2-core machine) and needs PyPI, or a local wheel index, for certpipe's
dependencies. The hook repository is a copy of
this checkout, committed in a temporary git repository, so uncommitted
changes are tested too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

HOOKS_FILE = ROOT / ".pre-commit-hooks.yaml"

needs_pre_commit = pytest.mark.skipif(
    importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None,
    reason="pre-commit or git not installed",
)

GOOD = """\
version: 1
steps:
  - name: key
    kind: private_key
    algorithm: ec
    out: www.key
"""

BAD = """\
version: 1
steps:
  - name: key
    kind: private_key
    algorithm: ec
    ot: www.key
"""

GIT_IDENTITY = ["-c", "user.name=certpipe tests", "-c", "user.email=tests@example.test",
                "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_IDENTITY, *args], cwd=folder, check=True, capture_output=True)


def _checkout_files() -> list[str]:
    """List the checkout's files as git lists them, committed or not, ignored ones left out."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    return [name for name in listed if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with a committed copy of this checkout."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in _checkout_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "snapshot for the hook test")
    return repo


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hook environment cache shared by the module's tests."""
    return tmp_path_factory.mktemp("pre-commit-home")


def _project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    return root


def _try_repo(project: Path, hook_repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    env.pop("PRE_COMMIT", None)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "certpipe-validate", "--color", "never",
         *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )


def test_hooks_file_declares_validate_hook():
    hooks = yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))

    assert [hook["id"] for hook in hooks] == ["certpipe-validate"]
    assert hooks[0]["entry"] == "certpipe validate"
    assert hooks[0]["language"] == "python"


@pytest.mark.parametrize("name, matched", [
    ("pipelines/iis.yaml", True),
    ("deploy/pipelines/www.yml", True),
    ("pipeline/nginx.yaml", True),
    ("certpipe.yaml", True),
    ("web/www.certpipe.yaml", True),
    (".github/workflows/ci.yml", False),
    (".gitlab-ci.yml", False),
    ("pipelines/README.md", False),
])
def test_hook_file_pattern(name, matched):
    pattern = yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))[0]["files"]

    assert bool(re.search(pattern, name)) is matched


@needs_pre_commit
def test_try_repo_passes_good_fails_bad(tmp_path, hook_repo, pre_commit_home):
    project = _project(tmp_path / "project", {
        "pipelines/good.yaml": GOOD,
        "pipelines/bad.yaml": BAD,
        "ci.yml": "not: [a, pipeline\n",  # outside the hook's file pattern
    })

    result = _try_repo(project, hook_repo, pre_commit_home, "--all-files")

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(r"certpipe validate\.+Failed", output), output
    assert "pipelines/good.yaml: valid (1 steps)" in output
    assert ("pipelines/bad.yaml:6:5: steps[0].ot (step 'key'): unknown key 'ot'; did you "
            "mean 'out'?") in output
    assert "ci.yml" not in output


@needs_pre_commit
def test_try_repo_good_file_passes(tmp_path, hook_repo, pre_commit_home):
    project = _project(tmp_path / "project", {"pipelines/good.yaml": GOOD})

    result = _try_repo(project, hook_repo, pre_commit_home, "--all-files")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"certpipe validate\.+Passed", output), output
