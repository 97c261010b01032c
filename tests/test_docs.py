"""The documentation stays true: CI runs the README's test command, docs/configuration.md
documents every config key, docs/api.md lists exactly the operations of /openapi.json,
and every relative link in README.md, CHANGELOG.md and docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.config import env_var_names

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)
OPERATION_HEADING = re.compile(r"^### ([A-Z]+) (/\S*)$", re.M)
OPERATION_MENTION = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/[^\s`)\]|,;]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(markdown: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", markdown)


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    ci = (repo_root / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_configuration_doc_documents_every_config_key(repo_root):
    """Each key has a row of its own naming the key and its environment variable."""
    doc = (repo_root / "docs" / "configuration.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| `")}
    for key, var in env_var_names().items():
        assert f"`{key}`" in rows, f"docs/configuration.md has no row for {key}"
        assert f"`{var}`" in rows[f"`{key}`"], f"the row of {key} does not name {var}"


# ---- docs/api.md against the OpenAPI document -------------------------------------------


def documented_operations(api_doc: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(the operations api.md gives a section, every operation it names anywhere)."""
    prose = _prose(api_doc)
    sections = set(OPERATION_HEADING.findall(prose))
    named = {(m, p.rstrip(".")) for m, p in OPERATION_MENTION.findall(prose)}
    return sections, named | sections


def api_doc_mismatches(api_doc: str, spec: dict) -> tuple[set, set]:
    """(operations of the document api.md has no section for, operations api.md names
    that the document lacks)."""
    operations = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    sections, named = documented_operations(api_doc)
    return operations - sections, named - operations


def _openapi() -> dict:
    from web.openapi import document  # the document GET /openapi.json serves

    return document()


def test_api_doc_lists_every_operation(repo_root):
    missing, unknown = api_doc_mismatches((repo_root / "docs" / "api.md").read_text(), _openapi())
    assert not missing, f"docs/api.md has no '### METHOD /path' section for {sorted(missing)}"
    assert not unknown, f"docs/api.md names operations /openapi.json lacks: {sorted(unknown)}"


def test_the_api_doc_check_finds_a_real_mismatch(repo_root):
    api_doc = (repo_root / "docs" / "api.md").read_text()
    spec = _openapi()
    without_train = api_doc.replace("### POST /train/\n", "### Creating a run\n")
    assert api_doc_mismatches(without_train, spec)[0] == {("POST", "/train/")}
    with_extra = api_doc + "\n### DELETE /models/{model_id}/\n\nDeletes a run.\n"
    assert api_doc_mismatches(with_extra, spec)[1] == {("DELETE", "/models/{model_id}/")}
    misspelt = api_doc + "\nSee `GET /models/<id>/`.\n"
    assert api_doc_mismatches(misspelt, spec)[1] == {("GET", "/models/<id>/")}


# ---- links ---------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(_prose(path.read_text()))}


def _markdown_files(repo_root: Path) -> list[Path]:
    return [
        repo_root / "README.md",
        repo_root / "CHANGELOG.md",
        *sorted(repo_root.glob("docs/*.md")),
    ]


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path.read_text())):
        if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("name", ["README.md", "CHANGELOG.md", "docs"])
def test_relative_links_resolve(repo_root, name):
    files = [p for p in _markdown_files(repo_root) if p.relative_to(repo_root).parts[0] == name]
    assert files
    broken = {str(p.relative_to(repo_root)): b for p in files if (b := broken_links(p))}
    assert not broken


def test_the_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## A section\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#a-section) [gone](c.md) [no anchor](a.md#elsewhere) [self](#top)\n")
    assert broken_links(page) == [
        "c.md: no such file",
        "a.md#elsewhere: no heading with that anchor",
        "#top: no heading with that anchor",
    ]
