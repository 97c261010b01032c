"""The evaluator actor: it scores exactly the policy the trainer sends, with the seed the
request names, and a run that reaches `stop_reward` keeps the evaluated state as its
final checkpoint even though the trainer went on learning meanwhile."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from actors.checkpoints import loaded_policy
from actors.dqn import QPolicy
from actors.envs import EnvSpaces, make_env
from actors.evaluate import evaluate
from actors.registry import make_actor
from broker.codec import encode_frame, state_to_bytes
from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import EvaluateHeader, EvaluationFinished, decode_message
from tests.test_algorithms import run_in_process, spec_for


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
