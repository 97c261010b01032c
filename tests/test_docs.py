"""The README stays true: CI runs its test command, and it documents every config key."""

from __future__ import annotations

import re

from schemas.config import env_var_names


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    ci = (repo_root / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_readme_documents_every_config_key(repo_root):
    readme = (repo_root / "README.md").read_text()
    for key, var in env_var_names().items():
        assert f"`{key}`" in readme and f"`{var}`" in readme, key
