"""The algorithm interface: the registry's records, the on-policy buffer's assembly of
segments, checkpoints of every algorithm read back for acting and export, and the
actors of each path wired together over the in-process broker on a tiny budget."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
import torch

from actors.algorithms.interfaces import EnvShape, action_kind
from actors.algorithms.table import ALGORITHMS
from actors.algorithms.validate import check_spec
from actors.envs.build import make_env
from actors.export.checkpoints import policy_file, policy_from_checkpoint, torchscript
from actors.roles.factory import ACTORS, make_actor
from actors.roles.onpolicy import SegmentAssembler
from broker.codec import decode_frame, encode_frame, state_to_bytes
from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import (
    BadMessage,
    ResumeFrom,
    ResumeHeader,
    RunSpec,
    SegmentHeader,
    decode_message,
    expand_episodes,
)


def spec_for(algorithm: str, env_id: str, **fields) -> RunSpec:
    base = {
        "run_id": 1,
        "algorithm": algorithm,
        "env_id": env_id,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "buffer_size": 10_000,
        "gamma": 0.99,
        "seed": 3,
        "num_workers": 1,
        "target_episode": 10,
    }
    return RunSpec(**(base | fields))


def segment(value: float, steps: int = 4, envs: int = 2) -> dict[str, np.ndarray]:
    return {
        "reward": np.full((steps, envs), value, np.float32),
        "last_value": np.full(envs, value, np.float32),
    }


# ---- the registry ----------------------------------------------------------------------------


def test_every_algorithm_has_its_buffer_roles_and_config():
    assert set(ALGORITHMS) == {"dqn", "ppo", "sac"}
    assert {name: a.buffer for name, a in ALGORITHMS.items()} == {
        "dqn": "replay",
        "ppo": "on_policy",
        "sac": "replay",
    }
    assert ACTORS["ppo"]["buffer"].__name__ == "OnPolicyBuffer"
    assert ACTORS["dqn"]["buffer"].__name__ == ACTORS["sac"]["buffer"].__name__ == "Buffer"
    assert ACTORS["ppo"]["trainer"] is ACTORS["dqn"]["trainer"]


@pytest.mark.parametrize(
    ("env_id", "kind"),
    [("CartPole-v1", "discrete"), ("Pendulum-v1", "box"), ("Blackjack-v1", "discrete")],
)
def test_action_kinds(env_id, kind):
    env = make_env(env_id)
    assert action_kind(env.action_space) == kind
    env.close()


@pytest.mark.parametrize(
    ("algorithm", "env_id", "error"),
    [
        ("dqn", "CartPole-v1", None),
        ("ppo", "CartPole-v1", None),
        ("ppo", "Pendulum-v1", None),
        ("sac", "Pendulum-v1", None),
        ("dqn", "Pendulum-v1", "algorithm: dqn cannot act in Pendulum-v1's action space Box"),
        ("sac", "CartPole-v1", "algorithm: sac cannot act in CartPole-v1's action space Discrete"),
        ("dqn", "NoSuchEnvironment-v0", "env_id: Environment `NoSuchEnvironment` doesn't exist"),
        ("dqn", "os:Thing-v0", "env_id: 'os:Thing-v0' names the module 'os', which is not under"),
    ],
)
def test_check_spec_makes_the_environment_and_checks_its_action_space(algorithm, env_id, error):
    spec = spec_for(algorithm, env_id)
    if error is None:
        assert check_spec(spec) == ALGORITHMS[algorithm].config.from_spec(spec)
    else:
        with pytest.raises(ValueError) as caught:
            check_spec(spec)
        assert str(caught.value).startswith(error)


def test_check_spec_blames_the_params_when_the_environment_makes_without_them():
    with pytest.raises(ValueError, match=r"^env_params: .*unexpected keyword argument 'gravity_x'"):
        check_spec(spec_for("dqn", "CartPole-v1", env_params={"gravity_x": 1}))


# ---- the on-policy buffer's assembly ---------------------------------------------------------


def test_a_batch_is_assembled_from_segments_of_the_current_version():
    assembler = SegmentAssembler(segments_per_batch=2)
    assert assembler.add(0, segment(1.0))
    assert assembler.take() is None  # one of two
    assert assembler.add(0, segment(2.0))
    version, batch = assembler.take()
    assert version == 0 and assembler.version == 1 and assembler.stale == 0
    assert batch["reward"].shape == (2, 4, 2) and batch["last_value"].shape == (2, 2)
    assert batch["reward"][:, 0, 0].tolist() == [1.0, 2.0]  # in arrival order
    assert assembler.take() is None


def test_stale_segments_are_dropped_and_counted():
    assembler = SegmentAssembler(segments_per_batch=2)
    assembler.add(0, segment(1.0))
    assembler.add(0, segment(1.0))
    assembler.take()  # the learner moves on to version 1
    assert not assembler.add(0, segment(9.0))  # a late segment of version 0
    assert assembler.stale == 1
    assembler.add(1, segment(2.0))
    assert assembler.take() is None  # the stale one does not count towards the batch
    assembler.add(1, segment(3.0))
    version, batch = assembler.take()
    assert version == 1 and 9.0 not in batch["reward"]
    assert assembler.stale == 1


def test_a_newer_version_makes_the_pending_segments_stale():
    assembler = SegmentAssembler(segments_per_batch=3)  # e.g. a resumed run's trainer
    assembler.add(0, segment(1.0))
    assembler.add(0, segment(1.0))
    assembler.add(7, segment(2.0))
    assert (assembler.version, assembler.stale, len(assembler.pending)) == (7, 2, 1)


def test_a_restarted_trainers_versions_win_though_they_are_lower():
    assembler = SegmentAssembler(segments_per_batch=2)
    for version in range(9):  # the lost trainer reached version 9
        assembler.add(version, segment(1.0))
        assembler.add(version, segment(1.0))
        assembler.take()
    assembler.add(9, segment(1.0))  # half a batch for the lost trainer
    assert assembler.add(6, segment(2.0), epoch=1)  # its successor restored version 6
    assert not assembler.add(9, segment(9.0))  # a late segment of the lost trainer
    assert assembler.add(6, segment(3.0), epoch=1)
    version, batch = assembler.take()
    assert version == 6 and batch["reward"][:, 0, 0].tolist() == [2.0, 3.0]
    assert (assembler.epoch, assembler.version, assembler.stale) == (1, 7, 2)


def test_segments_beyond_the_batch_are_stale_once_it_is_taken():
    assembler = SegmentAssembler(segments_per_batch=1)
    assembler.add(0, segment(1.0))
    assembler.add(0, segment(2.0))  # a restarted worker's duplicate of version 0
    version, batch = assembler.take()
    assert version == 0 and batch["reward"].shape[0] == 1 and assembler.stale == 1


def test_a_segment_of_another_layout_is_a_bad_message():
    assembler = SegmentAssembler(segments_per_batch=2)
    assembler.add(0, segment(1.0, steps=4))
    with pytest.raises(BadMessage, match="layout"):
        assembler.add(0, segment(1.0, steps=5))


def test_a_segment_frame_round_trips():
    header = SegmentHeader(run_id=1, worker=2, incarnation=1, policy_version=5, env_steps=64)
    decoded, arrays = decode_frame(encode_frame(header, segment(1.5)))
    assert decoded == header and arrays["reward"].shape == (4, 2)


# ---- checkpoints of every algorithm ----------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "env_id"),
    [
        ("dqn", "CartPole-v1"),
        ("ppo", "CartPole-v1"),
        ("ppo", "Pendulum-v1"),
        ("sac", "Pendulum-v1"),
    ],
)
def test_checkpoints_act_export_and_match_the_learner(algorithm, env_id):
    record = ALGORITHMS[algorithm]
    spec = spec_for(algorithm, env_id, hyperparameters={"hidden": [16]})
    env = make_env(env_id)
    shape = EnvShape.of(env)
    env.close()
    learner = record.make_learner(record.config.from_spec(spec), shape, 5)
    meta = {"algorithm": algorithm, "env_id": env_id, "network": learner.network_meta()}
    weights = state_to_bytes(learner.state())

    policy = policy_from_checkpoint(meta, weights)
    expected = record.policy_from_meta(learner.network_meta(), learner.policy_state())
    obs = np.random.default_rng(0).normal(size=(5, shape.spaces.obs_dim)).astype(np.float32)
    np.testing.assert_allclose(policy.greedy(obs), expected.greedy(obs), rtol=1e-6)
    sampled = policy.act(obs, 0.05, np.random.default_rng(1))
    assert len(sampled) == 5
    if shape.bounds is not None:
        assert (sampled >= shape.bounds.low).all() and (sampled <= shape.bounds.high).all()

    exported = torchscript(meta, weights)(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, expected.greedy(obs), rtol=1e-5, atol=1e-6)
    assert policy_file(meta, weights, version=1, env_steps=10)[:8]  # safetensors bytes


# ---- the actors of each path over the in-process broker --------------------------------------


def run_in_process(spec: RunSpec, timeout: float = 60.0, resume_state: bytes = b"") -> list:
    """Trainer, buffer and workers as threads on memory://; the run's events. With
    `resume_state` (a checkpoint's weights), it is waiting on the run's resume queue."""
    topology = Topology(f"alg{uuid.uuid4().hex[:8]}")
    tap_bus = make_bus("memory://", topology, "tap").connect()
    if resume_state:
        tap_bus.declare(topology.resume(spec.run_id))
        header = ResumeHeader(run_id=spec.run_id, version=spec.resume.version)
        blob = np.frombuffer(resume_state, dtype=np.uint8)
        tap_bus.publish(
            topology.data, f"run.{spec.run_id}.resume", encode_frame(header, {"safetensors": blob})
        )
    tap = topology.event_tap("test", f"run.{spec.run_id}.*")
    tap_bus.declare(tap)
    events: list = []
    # Episode batches are read as the episodes they hold, as the event log stores them.
    tap_bus.consume(
        tap, lambda d: events.extend(expand_episodes([decode_message(d.body)])), prefetch=1000
    )
    stop = threading.Event()
    failures: list[BaseException] = []

    def play(role: str, worker: int) -> None:
        torch.set_num_threads(1)
        bus = make_bus("memory://", topology, f"{role}-{worker}")
        try:
            make_actor(role, spec, bus, topology, worker=worker, stop_event=stop).run()
        except BaseException as exc:
            failures.append(exc)

    roles = [("trainer", 0), ("buffer", 0), ("evaluator", 0)]
    roles += [("rollout", w) for w in range(spec.num_workers)]
    threads = [threading.Thread(target=play, args=r, daemon=True) for r in roles]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not failures:
            tap_bus.poll(0.2)
            if any(e.type == "status" and e.status == "completed" for e in events):
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        tap_bus.poll(0.2)
        tap_bus.close()
    assert not failures, failures
    return events


PPO_SMALL = {"hidden": [16], "n_steps": 16, "envs_per_worker": 2, "n_epochs": 2}


def test_ppo_runs_on_policy_over_the_broker_without_stale_segments():
    spec = spec_for(
        "ppo",
        "CartPole-v1",
        num_workers=2,
        target_episode=40,
        batch_size=32,
        hyperparameters=PPO_SMALL,
    )
    events = run_in_process(spec)
    statuses = [e for e in events if e.type == "status" and e.status == "completed"]
    assert statuses and "40 training episodes" in statuses[0].reason
    episodes = [e for e in events if e.type == "episode"]
    assert {e.worker for e in episodes} == {0, 1}
    # Each worker waits for the next version after a segment: versions only move on.
    for worker in (0, 1):
        versions = [e.policy_version for e in episodes if e.worker == worker]
        assert versions == sorted(versions) and versions[-1] > 0
    metrics = [e.values for e in events if e.type == "metrics"][-1]
    assert metrics["buffer/stale_segments"] == 0 and metrics["charts/policy_lag"] == 0
    assert metrics["charts/updates"] == metrics["charts/policy_version"] > 0
    assert "losses/clip_fraction" in metrics
    checkpoints = [e for e in events if e.type == "checkpoint"]
    assert checkpoints[-1].final and checkpoints[-1].meta["algorithm"] == "ppo"


def test_sac_runs_on_the_replay_path_with_box_actions():
    spec = spec_for(
        "sac",
        "Pendulum-v1",
        target_episode=2,
        batch_size=32,
        hyperparameters={"hidden": [16], "learning_starts": 50, "samples_per_insert": 8},
    )
    events = run_in_process(spec)
    assert any(e.type == "status" and e.status == "completed" for e in events)
    assert len([e for e in events if e.type == "episode"]) >= 2
    metrics = [e.values for e in events if e.type == "metrics"][-1]
    assert metrics["charts/updates"] > 0 and "losses/alpha" in metrics
    assert metrics["charts/replay_ratio"] == pytest.approx(8, rel=0.5)


def test_a_resumed_ppo_run_continues_the_versions_of_its_checkpoint():
    spec = spec_for("ppo", "CartPole-v1", target_episode=20, hyperparameters=PPO_SMALL)
    first = run_in_process(spec)
    final = [e for e in first if e.type == "checkpoint"][-1]
    updates = final.meta["updates"]
    assert updates > 0

    resume = ResumeFrom(model_id=1, version=final.version, env_steps=final.env_steps)
    resumed_spec = spec.model_copy(update={"run_id": 2, "resume": resume})
    events = run_in_process(resumed_spec, resume_state=final.weights)
    versions = [e.policy_version for e in events if e.type == "episode"]
    assert versions and min(versions) >= updates  # workers acted with the restored policy
    metrics = [e.values for e in events if e.type == "metrics"][-1]
    assert metrics["charts/updates"] > updates and metrics["buffer/stale_segments"] == 0
