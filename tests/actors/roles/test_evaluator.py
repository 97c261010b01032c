"""The evaluator actor: it scores exactly the policy the trainer sends, with the seed the
request names, and a run that reaches `stop_reward` keeps the evaluated state as its
final checkpoint even though the trainer went on learning meanwhile."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from actors.algorithms.dqn import QPolicy
from actors.algorithms.evaluate import evaluate
from actors.envs.build import EnvSpaces, make_env
from actors.export.checkpoints import loaded_policy
from actors.roles.factory import make_actor
from broker.codec import encode_frame, state_to_bytes
from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import EvaluateHeader, EvaluationFinished, decode_message
from tests.actors.algorithms.test_algorithms import run_in_process, spec_for


def test_the_evaluator_scores_the_policy_it_is_sent_with_the_requested_seed():
    spec = spec_for("dqn", "CartPole-v1", hyperparameters={"hidden": [8], "eval_episodes": 5})
    topology = Topology(f"ev{uuid.uuid4().hex[:8]}")
    policy = QPolicy.from_spaces(
        EnvSpaces.from_env(make_env("CartPole-v1")), [8], seed=11
    )  # not the run's seed: the evaluator must use the weights it is sent
    tap_bus = make_bus("memory://", topology, "tap").connect()
    tap = topology.event_tap("test", f"run.{spec.run_id}.evaluation")
    tap_bus.declare(tap, topology.evaluate(spec.run_id))
    events: list = []
    tap_bus.consume(tap, lambda d: events.append(decode_message(d.body)), prefetch=100)
    for updates, seed in ((250, 40), (500, 41)):
        header = EvaluateHeader(
            run_id=spec.run_id,
            updates=updates,
            env_steps=2 * updates,
            seed=seed,
            network=policy.network.network_meta(),
        )
        blob = np.frombuffer(state_to_bytes(dict(policy.network.state_dict())), np.uint8)
        tap_bus.publish(
            topology.data,
            f"run.{spec.run_id}.evaluate",
            encode_frame(header, {"safetensors": blob}),
        )
        # one request at a time: the queue keeps only the newest
        stop = threading.Event()
        actor = make_actor(
            "evaluator", spec, make_bus("memory://", topology, "ev"), topology, stop_event=stop
        )
        thread = threading.Thread(target=actor.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not any(e.updates == updates for e in events) and time.monotonic() < deadline:
            tap_bus.poll(0.05)
        stop.set()
        thread.join(10)
    tap_bus.close()

    scores = [e for e in events if isinstance(e, EvaluationFinished)]
    assert [(e.updates, e.env_steps, e.episodes) for e in scores] == [(250, 500, 5), (500, 1000, 5)]
    for event, seed in zip(scores, (40, 41), strict=True):
        expected = evaluate(policy, "CartPole-v1", {}, 5, seed=seed)
        assert (event.mean_return, event.std_return) == (expected.mean, expected.std)


def test_a_solved_run_keeps_the_evaluated_state_as_its_final_checkpoint():
    stop_reward = 60.0  # well above an untrained greedy CartPole policy (~10)
    spec = spec_for(
        "dqn",
        "CartPole-v1",
        target_episode=3000,
        stop_reward=stop_reward,
        learning_rate=2.3e-3,
        batch_size=64,
        hyperparameters={
            "hidden": [32],
            "learning_starts": 500,
            "samples_per_insert": 16,
            "eval_interval_updates": 50,
            "eval_episodes": 5,
            "exploration_fraction": 0.1,
            "exploration_budget_steps": 20_000,
        },
    )
    events = run_in_process(spec, timeout=240)
    done = [e for e in events if e.type == "status" and e.status == "completed"]
    assert done and "reached stop_reward" in done[0].reason, [
        e for e in events if e.type == "status"
    ]
    solved = next(e for e in events if e.type == "evaluation" and e.mean_return >= stop_reward)
    final = [e for e in events if e.type == "checkpoint"][-1]
    assert final.final
    assert final.version == final.meta["updates"] == solved.updates
    assert final.env_steps == solved.env_steps
    # The stored policy is the one that scored: played on the evaluation's seed, it
    # scores the same again.
    replayed = evaluate(
        loaded_policy(final.meta, final.weights),
        "CartPole-v1",
        {},
        solved.episodes,
        seed=spec.seed + 7 + solved.updates,
    )
    assert replayed.mean == solved.mean_return


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_state_being_evaluated_is_kept_however_many_requests_follow_it():
    """The evaluator plays one request at a time and takes the newest queued one next.
    A slow evaluation must not cost the trainer the state it is playing: while the kept
    states are at the limit, no request is sent (instead of the oldest being dropped)."""
    from actors.roles.trainer import KeptStates

    clock = FakeClock()
    kept = KeptStates(limit=4, stall_s=30.0, clock=clock)
    sent = []
    for updates in range(250, 250 * 21, 250):  # 20 requests during one long evaluation
        clock.now += 0.1
        if kept.offer(updates, 2 * updates, lambda u=updates: {"at": u}):
            sent.append(updates)
    assert sent == [250, 500, 750, 1000]  # the evaluator took 250; 1000 is queued
    assert kept.answered(250) == (500, {"at": 250})
    # The evaluator now plays 1000, the queued request; 500 and 750 were dropped unplayed
    # but stay until a later answer clears them. There is room to ask again.
    assert len(kept) == 3 and kept.offer(5250, 10500, lambda: {"at": 5250})
    assert kept.answered(1000) == (2000, {"at": 1000}) and len(kept) == 1
    assert kept.answered(5250) == (10500, {"at": 5250}) and len(kept) == 0


def test_a_request_nobody_answers_is_given_up_after_the_stall_time():
    """An evaluator that died while playing, with nothing queued, would otherwise leave
    the trainer never asking again."""
    from actors.roles.trainer import KeptStates

    clock = FakeClock()
    kept = KeptStates(limit=2, stall_s=30.0, clock=clock)
    assert kept.offer(250, 500, dict) and kept.offer(500, 1000, dict)
    clock.now = 29.0
    assert not kept.offer(750, 1500, dict)
    clock.now = 31.0
    assert kept.offer(1000, 2000, dict)  # the oldest (250) went
    assert kept.answered(250) is None  # answered after all: too late, but no error
    assert kept.answered(1000) == (2000, {})


def test_an_answer_to_a_request_not_kept_finds_nothing():
    from actors.roles.trainer import KeptStates

    kept = KeptStates(limit=8)
    assert kept.offer(1000, 2000, dict)
    assert kept.answered(750) is None  # e.g. a request of an earlier trainer
    assert kept.answered(1000) == (2000, {})
