"""Which actor class plays which role for which algorithm."""

from __future__ import annotations

from actors.base import Actor
from actors.buffer import Buffer
from actors.dqn import DQNConfig
from actors.rollout import RolloutWorker
from actors.trainer import Trainer
from schemas.messages import RunSpec

ACTORS: dict[str, dict[str, type[Actor]]] = {
    "dqn": {"trainer": Trainer, "buffer": Buffer, "rollout": RolloutWorker},
}


CONFIGS = {"dqn": DQNConfig}


def check_spec(spec: RunSpec):
    """The algorithm's config for this spec; ValueError naming the field if the actors
    could not run it."""
    algorithm = spec.algorithm.lower()
    if algorithm not in ACTORS:
        available = ", ".join(sorted(ACTORS))
        raise ValueError(f"algorithm: {algorithm} is not available yet (available: {available})")
    return CONFIGS[algorithm].from_spec(spec)


def make_actor(role: str, spec: RunSpec, bus, topology, **kwargs) -> Actor:
    algorithm = spec.algorithm.lower()
    if algorithm not in ACTORS:
        raise ValueError(f"algorithm {algorithm!r} has no actors yet (available: dqn)")
    return ACTORS[algorithm][role](spec, bus, topology, **kwargs)
