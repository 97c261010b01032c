"""The one-command mode, as a user runs it: `runt up` in one terminal, `runt train FILE
--follow` in another. Everything in one process on the in-process broker and SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.services import free_port, stop, wait_until_healthy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_up_then_train_follow_learns_cartpole(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
    env.update(RUNT_ADMIN_PASSWORD="embedded-admin-pw", RUNT_LOG_FORMAT="text")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_healthy(port, server)
        preset = yaml.safe_load((REPO / "configs" / "dqn_cartpole.yaml").read_text())
        run_file = tmp_path / "run.yaml"
        run_file.write_text(yaml.safe_dump({**preset, "stop_reward": 200, "target_episode": 600}))
        follow = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "train",
                str(run_file),
                "--follow",
                "--url",
                f"http://127.0.0.1:{port}",
                "--user",
                "admin",
            ],
            env={**env, "RUNT_PASSWORD": "embedded-admin-pw"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert follow.returncode == 0, follow.stdout + follow.stderr
        assert "completed" in follow.stdout
        assert "episodes" in follow.stdout  # the progress line

        token = _login(port)
        model_id = int(follow.stdout.split()[1])  # "run <id> queued"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/models/{model_id}/",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request) as resp:  # noqa: S310 - our test server
            model = json.loads(resp.read())["data"]
        assert model["status"] == "completed"
        assert model["best_eval_return"] >= 150, model["evaluations"]
        assert model["current_episode"] > 0
    finally:
        stop(server)


def _login(port: int) -> str:
    body = json.dumps({"username": "admin", "password": "embedded-admin-pw"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/login/", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as resp:  # noqa: S310 - our test server
        return json.loads(resp.read())["data"]["token"]
