"""The evaluator: scores the trainer's policy greedily, beside the trainer instead of
inside it.

The trainer publishes an `evaluate` request (weights, update count, env steps, seed) every
`eval_interval_updates` updates on a queue that keeps only the newest; the evaluator plays
`eval_episodes` greedy episodes (actors/algorithms/evaluate.py) and publishes the
`evaluation` event, on which the trainer ends the run once the mean reaches `stop_reward`.

An actor of its own because playing a good policy's long episodes takes as long as many
updates, and the trainer is the run's bottleneck: here evaluation runs on another core
while the trainer keeps learning. It holds nothing worth keeping: the agent restarts one
that dies, and a request lost with it is followed by the next.
"""

from __future__ import annotations

import logging

from actors.algorithms.evaluate import evaluate
from actors.roles.base import Actor
from broker.codec import bytes_to_state, decode_frame
from schemas.messages import BadMessage, EvaluateHeader, EvaluationFinished

log = logging.getLogger("runt.evaluator")


class Evaluator(Actor):
    role = "evaluator"

    def setup(self) -> None:
        self.config = self.algorithm.config_of(self.spec)
        self.request: tuple[EvaluateHeader, bytes] | None = None
        queue = self.topology.evaluate(self.run_id)
        self.bus.declare(queue)
        self.bus.consume(queue, self.on_request, prefetch=1)
        self.publish_status("running", f"{self.name} waiting for policies to score")

    def on_request(self, delivery) -> None:
        header, arrays = decode_frame(delivery.body)
        if not isinstance(header, EvaluateHeader):
            raise BadMessage(f"{header.type} on the evaluate queue")
        # Kept until the next step: a poll that took two requests scores only the newer.
        self.request = (header, arrays["safetensors"].tobytes())

    def step(self) -> None:
        self.bus.poll(0.05)
        if self.request is not None and not self.stopping:
            header, weights = self.request
            self.request = None
            self.score(header, bytes_to_state(weights))

    def score(self, header: EvaluateHeader, policy_state) -> None:
        # A fresh policy each time, as a checkpoint is loaded: cheap beside the evaluation
        # itself, and nothing is carried over from the last one.
        policy = self.algorithm.policy_from_meta(header.network, policy_state)
        result = evaluate(
            policy,
            self.spec.env_id,
            self.spec.env_params,
            self.config.eval_episodes,
            seed=header.seed,
        )
        log.info(
            "evaluation after %d updates: %.1f ± %.1f", header.updates, result.mean, result.std
        )
        self.publish_event(
            EvaluationFinished(
                run_id=self.run_id,
                env_steps=header.env_steps,
                mean_return=result.mean,
                std_return=result.std,
                episodes=result.episodes,
                updates=header.updates,
            )
        )
