"""The CI examples and the links between the docs pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

DOCS = ROOT / "docs"
GITHUB = DOCS / "ci" / "github-actions.yml"
GITLAB = DOCS / "ci" / "gitlab-ci.yml"
LINK_RE = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _scripts(node: object) -> list[str]:
    """Collect every shell line of a CI file (run: blocks and script: lists)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                found += value.splitlines()
            elif key in ("script", "before_script") and isinstance(value, list):
                found += [str(line) for line in value]
            else:
                found += _scripts(value)
    elif isinstance(node, list):
        for item in node:
            found += _scripts(item)
    return found


def _artifact_paths(node: object) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "path" and isinstance(value, str):
                found += value.split()
            elif key == "paths" and isinstance(value, list):
                found += value
            else:
                found += _artifact_paths(value)
    elif isinstance(node, list):
        for item in node:
            found += _artifact_paths(item)
    return found


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_ci_example_runs_with_report(path):
    lines = _scripts(yaml.safe_load(path.read_text(encoding="utf-8")))

    runs = [line for line in lines if "certpipe run " in line]
    assert len(runs) == 1
    assert "--report out/report.json" in runs[0]
    assert "--workdir out" in runs[0]
    assert any(line.strip().startswith("certpipe validate ") for line in lines)


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_ci_example_keeps_report_not_key(path):
    paths = _artifact_paths(yaml.safe_load(path.read_text(encoding="utf-8")))

    assert "out/report.json" in paths
    assert "out/*.pfx" in paths
    assert not [p for p in paths if p.endswith(".key") or p in ("out", "out/", "out/*")]


def test_github_password_from_secrets():
    text = GITHUB.read_text(encoding="utf-8")

    assert "PFX_PASSWORD: ${{ secrets.PFX_PASSWORD }}" in text
    assert "if: always()" in text


def test_gitlab_password_from_variables():
    data = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))

    assert "PFX_PASSWORD" not in data.get("variables", {})
    assert "PFX_PASSWORD" not in data["certificates"].get("variables", {})
    assert data["certificates"]["artifacts"]["when"] == "always"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")) + [ROOT / "README.md"],
                         ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    prose = re.sub(r"`[^`\n]*`", "", page.read_text(encoding="utf-8"))  # code spans hold no links
    for match in LINK_RE.finditer(prose):
        target = match.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        if not (page.parent / target).exists():
            broken.append(target)

    assert broken == []


def test_troubleshooting_covers_iis_symptoms():
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")

    for heading in ['The certificate disappears after "Complete Certificate Request"',
                    '"The password you entered is incorrect" when importing a .pfx',
                    "An incomplete chain in browsers",
                    "A key left on another machine"]:
        assert f"### {heading}" in text
    for code in ("0", "1", "2", "75", "130"):
        assert f"| {code} |" in text


def test_troubleshooting_anchors_exist():
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    headings = {_anchor(line.lstrip("#").strip())
                for line in text.splitlines() if line.startswith("#")}

    anchors = set(re.findall(r"\]\(#([^)]+)\)", text))

    assert anchors <= headings


def _anchor(heading: str) -> str:
    """Return the anchor GitHub makes for a heading: lower case, punctuation dropped."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")
