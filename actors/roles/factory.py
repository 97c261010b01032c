"""Which actor class plays which role of a run: the rollout worker, the trainer and the
evaluator are the same for every algorithm; the buffer follows the algorithm's `buffer`
kind (the replay buffer or the on-policy one)."""

from __future__ import annotations

from actors.algorithms.table import ALGORITHMS, algorithm_of
from actors.roles.base import Actor
from actors.roles.buffer import Buffer
from actors.roles.evaluator import Evaluator
from actors.roles.onpolicy import OnPolicyBuffer
from actors.roles.rollout import RolloutWorker
from actors.roles.trainer import Trainer
from schemas.messages import RunSpec

SHARED_ROLES: dict[str, type[Actor]] = {
    "trainer": Trainer,
    "rollout": RolloutWorker,
    "evaluator": Evaluator,
}
ROLES: dict[str, dict[str, type[Actor]]] = {
    "replay": {**SHARED_ROLES, "buffer": Buffer},
    "on_policy": {**SHARED_ROLES, "buffer": OnPolicyBuffer},
}
ACTORS: dict[str, dict[str, type[Actor]]] = {
    name: ROLES[algorithm.buffer] for name, algorithm in ALGORITHMS.items()
}


def make_actor(role: str, spec: RunSpec, bus, topology, **kwargs) -> Actor:
    """The actor of `role` for the spec's run, on `bus`."""
    return ACTORS[algorithm_of(spec).name][role](spec, bus, topology, **kwargs)
