"""Lint and format checks (ruff, with a complexity cap) are part of the test suite."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def ruff(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff") or str(__import__("pathlib").Path(sys.executable).parent / "ruff")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")])
def test_ruff(repo_root, args):
    result = ruff(*args, cwd=repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
