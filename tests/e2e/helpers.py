"""What the end-to-end tests share: the training presets they start runs from, waiting
for a run to reach a state, reading all of a run's episodes, and finding an agent's actor
processes by role."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from tests.conftest import Api
from tests.services import REPO, child_pids

PRESET = yaml.safe_load((REPO / "configs" / "dqn_cartpole.yaml").read_text())
PPO_PRESET = yaml.safe_load((REPO / "configs" / "ppo_cartpole.yaml").read_text())
SAC_PRESET = yaml.safe_load((REPO / "configs" / "sac_pendulum.yaml").read_text())
TERMINAL = ("completed", "stopped", "failed")


async def wait_for(api: Api, model_id: int, done, timeout: float, every: float = 1.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await api.get(f"/models/{model_id}/")
        assert status == 200, body
        model = body["data"]
        if done(model):
            return model
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; the run is {model}")
        await asyncio.sleep(every)


async def all_episodes(api: Api, model_id: int) -> list[dict]:
    rows, page = [], 1
    while True:
        _, body = await api.get(f"/models/{model_id}/train-data/?page={page}&page_size=500")
        rows += body["data"]["train_data"]
        if page >= body["data"]["total_pages"]:
            return rows
        page += 1


def actor_pids(agent_pid: int, role: str) -> set[int]:
    """The agent's actor processes of one role: forked ones are named `runt-<role>`,
    started ones have `--role <role>` on their command line."""
    found = set()
    for pid in child_pids(agent_pid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if name == f"runt-{role}" or role.encode() in cmdline:
            found.add(pid)
    return found
