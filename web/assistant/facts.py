"""What the assistant knows about a run: from a stored model (config, episodes, metrics,
evaluations) or from a free request (hyperparameters and rewards), plus the
environment's reward threshold from its Gymnasium spec."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from actors.algorithms import table
from schemas.api import AssistantRequest
from web.assistant.ranges import ALGORITHM_HINTS
from web.assistant.records import RunFacts
from web.db.store import owned_model
from web.db.tables import Evaluation, Metric, TrainingData

MAX_EPISODES = 100_000  # the most recent episodes read from a run
MAX_METRICS = 500  # the most recent metrics reports
MAX_EVALUATIONS = 200
MODEL_FIELDS = ("learning_rate", "batch_size", "buffer_size", "gamma", "num_workers")


def env_info(env_id: str | None) -> tuple[float | None, int | None]:
    """(reward_threshold, max_episode_steps) of a registered Gymnasium environment.

    A registry lookup only: no environment is made and no module imported."""
    spec = gym.registry.get(env_id) if env_id else None
    if spec is None:
        return None, None
    threshold = spec.reward_threshold
    return (None if threshold is None else float(threshold)), spec.max_episode_steps


def algorithm_defaults(algorithm: str | None) -> dict[str, Any]:
    """The settings a runt run of `algorithm` takes when it leaves them out."""
    config = table.CONFIGS.get(algorithm or "")
    if config is None:
        return {}
    defaults = {}
    for field in dataclasses.fields(config):
        if field.name == "seed" or field.default is dataclasses.MISSING:
            continue
        value = field.default
        defaults[field.name] = list(value) if isinstance(value, tuple) else value
    return defaults


def guess_algorithm(hyperparameters: dict[str, Any]) -> str | None:
    for algorithm, names in ALGORITHM_HINTS.items():
        if any(name in hyperparameters for name in names):
            return algorithm
    return None


def build(
    algorithm: str | None, env_id: str | None, given: dict[str, Any], **more: Any
) -> RunFacts:
    """Facts from the settings a run was `given`, filled up with the algorithm's defaults
    (an algorithm left out is guessed from names only it uses)."""
    algorithm = algorithm or guess_algorithm(given)
    defaults = {k: v for k, v in algorithm_defaults(algorithm).items() if k not in given}
    threshold, max_steps = env_info(env_id)
    return RunFacts(
        algorithm=algorithm,
        env_id=env_id,
        hyperparameters=defaults | given,
        defaults=frozenset(defaults),
        reward_threshold=threshold,
        max_episode_steps=max_steps,
        trainable=algorithm in table.ALGORITHMS,
        **more,
    )


def from_request(body: AssistantRequest) -> RunFacts:
    return build(
        body.algorithm, body.env_id, dict(body.hyperparameters), rewards=tuple(body.rewards)
    )


def load_run(db: DbSession, owner_id: int, model_id: int) -> RunFacts | None:
    """A stored run's facts; None if it does not exist or is another user's."""
    model = owned_model(db, owner_id, model_id)
    if model is None:
        return None
    episodes = db.execute(
        select(TrainingData.reward, TrainingData.length)
        .where(
            TrainingData.model_id == model_id,
            TrainingData.episode > model.current_episode - MAX_EPISODES,
        )
        .order_by(TrainingData.episode)
    ).all()
    metrics = db.execute(
        select(Metric.env_steps, Metric.values)
        .where(Metric.model_id == model_id)
        .order_by(Metric.id.desc())
        .limit(MAX_METRICS)
    ).all()
    evaluations = db.scalars(
        select(Evaluation.mean_return)
        .where(Evaluation.model_id == model_id)
        .order_by(Evaluation.id.desc())
        .limit(MAX_EVALUATIONS)
    ).all()
    finite = [(r, length) for r, length in episodes if math.isfinite(r)]
    given = {name: getattr(model, name) for name in MODEL_FIELDS} | dict(model.hyperparameters)
    return build(
        model.algorithm,
        model.env_id,
        given,
        rewards=tuple(float(r) for r, _ in finite),
        lengths=tuple(int(length) for _, length in finite),
        metrics=tuple({**values, "env_steps": steps} for steps, values in reversed(metrics)),
        evaluations=tuple(float(v) for v in reversed(evaluations)),
        model_id=model.id,
        target_episode=model.target_episode,
        stop_reward=model.stop_reward,
    )
