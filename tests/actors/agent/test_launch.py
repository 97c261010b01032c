"""actors/agent/launch.py: the environment an actor process starts with."""

from __future__ import annotations

import os
from pathlib import Path

from actors.agent.launch import ProcessLauncher


def test_actor_processes_import_runt_from_the_source_tree(tmp_path):
    """`python -m actors.agent.runner` must import from the checkout the agent runs from,
    installed or not: the first PYTHONPATH entry is the folder that holds `actors/`."""
    launcher = ProcessLauncher(
        "test", env={"PYTHONPATH": "/elsewhere"}, work_dir=str(tmp_path), fork=False
    )
    first, *rest = launcher.env["PYTHONPATH"].split(os.pathsep)
    assert (Path(first) / "actors" / "agent" / "runner.py").is_file()
    assert rest == ["/elsewhere"]
