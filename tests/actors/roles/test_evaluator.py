"""The evaluator (actors/roles/evaluator.py): it scores exactly the policy the trainer
sends, with the seed the request names. (What the trainer keeps of an evaluated state is
in test_trainer.py.)"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from actors.algorithms.dqn import QPolicy
from actors.algorithms.evaluate import evaluate
from actors.envs.build import EnvSpaces, make_env
from actors.roles.factory import make_actor
from broker.codec import encode_frame, state_to_bytes
from broker.sync import make_bus
from broker.topology import Topology
from schemas.messages import EvaluateHeader, EvaluationFinished, decode_message
from tests.actors.helpers import spec_for


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
