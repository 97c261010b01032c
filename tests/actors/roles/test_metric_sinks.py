"""Metric sinks (actors/roles/sinks.py): a run with `metric_sinks` on writes TensorBoard
event files and an offline Weights & Biases run (WANDB_MODE=offline: nothing leaves the
machine), read back here with TensorBoard's own reader and by scanning the W&B run file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from actors import settings
from actors.algorithms.validate import check_spec
from schemas.config import TrainingConfig
from tests.actors.helpers import run_in_process, spec_for
from tests.conftest import Api

SINKS = {"tensorboard": True, "wandb": {"project": "runt-tests", "mode": "offline"}}
EXPECTED = {
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/env_steps_per_s",
    "losses/td_loss",
    "eval/mean_return",
    "eval/std_return",
}


@pytest.fixture
def metrics_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    before = settings._training
    settings.configure(TrainingConfig(metrics_dir=tmp_path / "metrics"))
    yield tmp_path / "metrics"
    settings.configure(before)


def wandb_records(path: Path):
    """The protobuf records of a W&B run file: a ':W&B' header, then LevelDB-style log
    blocks of 32 KiB whose records carry (crc32, length, type) and may be split."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        room = block - position % block
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        if room < 7 or (length == 0 and kind == 0):  # block trailer / padding
            position += room
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.mark.slow
def test_a_run_with_both_sinks_writes_tensorboard_and_an_offline_wandb_run(metrics_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = spec_for(
        "dqn",
        "CartPole-v1",
        run_id=41,
        target_episode=40,
        metric_sinks=SINKS,
        hyperparameters={
            "hidden": [16],
            "learning_starts": 64,
            "samples_per_insert": 4,
            # ~50 updates in 40 short episodes at this replay ratio: several evaluations
            "eval_interval_updates": 5,
            "eval_episodes": 2,
        },
    )
    events = run_in_process(spec, timeout=90)
    assert any(e.type == "status" and e.status == "completed" for e in events)
    episodes = [e for e in events if e.type == "episode"]

    run_dir = metrics_dir / "run-41"
    (event_file,) = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(event_file.parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert tags >= EXPECTED, tags
    returns = accumulator.Scalars("charts/episodic_return")
    # The trainer counts up to its target; episodes reported after it stopped are not its.
    assert len(returns) >= 40
    assert not Counter(r.value for r in returns) - Counter(e.reward for e in episodes)

    (wandb_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    logged: set[str] = set()
    for record in wandb_records(wandb_file):
        if record.WhichOneof("record_type") == "history":
            logged |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    assert logged >= EXPECTED | {"env_steps"}, logged


def test_no_sinks_write_nothing(metrics_dir):
    run_in_process(spec_for("dqn", "CartPole-v1", target_episode=3), timeout=60)
    assert not metrics_dir.exists()


async def test_bad_sinks_are_400s_naming_the_field(alice: Api):
    run = {"algorithm": "dqn", "env_id": "CartPole-v1", "target_episode": 5}
    bad = {"wandb": {"mode": "cloud"}}
    status, answer = await alice.post("/train/", json={**run, "metric_sinks": bad})
    assert status == 400 and answer["data"]["field"] == "metric_sinks.wandb.mode", answer
    status, answer = await alice.post("/train/", json={**run, "metric_sinks": SINKS})
    assert status == 201, answer
    _, model = await alice.get(f"/models/{answer['id']}/")
    assert model["data"]["metric_sinks"]["tensorboard"] is True


def test_a_missing_package_is_an_error_naming_the_sink(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    spec = spec_for("dqn", "CartPole-v1", metric_sinks={"wandb": {}})
    with pytest.raises(ValueError, match=r"^metric_sinks\.wandb: the wandb package is not"):
        check_spec(spec)
