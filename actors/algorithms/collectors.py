"""Collectors shared by the algorithms: `TransitionCollector` (the replay path's frames of
transitions) and `SampledActions` (inference over a stochastic policy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from actors.algorithms.interfaces import Collected, Policy
from actors.algorithms.nstep import NStepTransitions
from actors.algorithms.replay import Transition
from actors.envs.build import VectorCollector

# Experience frames (replay path) are sized in bytes: a publish costs a worker much the
# same whatever the frame's size (py-amqp's framing and a socket write, code that runs cold
# between steps), so a frame holds as many transitions as fit in FRAME_BYTES (1,337 of
# CartPole's 49-byte rows; fewer of a bigger observation, which also keeps a frame well
# inside RabbitMQ's message size limit), at most EXPERIENCE_BATCH. A frame also goes out
# once its first transition is FRAME_MAX_AGE_S old: the size bounds what frames cost, the
# age how long the learner waits for what is in them.
FRAME_BYTES = 64 * 1024
EXPERIENCE_BATCH = 4096
FRAME_MAX_AGE_S = 0.02


class TransitionCollector:
    """The replay path's collector: one step of every sub-environment per call with the
    actions `choose(obs, run_steps)` picks; a frame of `Transition` arrays once at least
    `batch` transitions are pending (default: what fits in `FRAME_BYTES`, see above) or
    the frame's first step is `max_age_s` old (by `clock`). With `nstep`
    (actors/algorithms/nstep.py) the transitions are its n-step ones, which a step completes a
    varying number of.

    Each step's transitions are written straight into the rows of the frame being filled,
    so a frame costs one allocation per field instead of a `Transition` per step and a
    concatenate.
    """

    def __init__(
        self,
        vector: VectorCollector,
        choose: Callable[[np.ndarray, int], np.ndarray],
        batch: int | None = None,
        nstep: NStepTransitions | None = None,
        max_age_s: float = FRAME_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.vector = vector
        self.choose = choose
        self.batch = batch  # None: sized by the first transition's bytes
        self.nstep = nstep
        self.max_age_s = max_age_s
        self.clock = clock
        self.opened_at = 0.0  # when the frame being filled got its first step
        # a step completes at most one transition per sub-environment and window step
        self.per_step = vector.num_envs * (nstep.n if nstep else 1)
        self.frame: dict[str, np.ndarray] | None = None
        self.columns: list[np.ndarray] = []  # the frame's arrays in Transition's field order
        # The vector collector's shared horizon array (all ones), not copied row by row
        self.ones = getattr(vector, "horizon", None)
        self.filled = 0  # rows written into `frame`

    def collect(self, run_steps: int) -> Collected:
        actions = self.choose(self.vector.obs, run_steps)
        transition, episodes = self.vector.step(actions)
        if self.nstep is not None:
            transition = self.nstep.add(transition, [e.env_index for e in episodes])
        if self.frame is None:  # shapes and dtypes as the environment returns them
            if self.batch is None:
                self.batch = frame_rows(transition)
            capacity = self.batch + self.per_step
            self.columns = [
                np.empty((capacity, *value.shape[1:]), value.dtype) for value in transition
            ]
            self.frame = dict(zip(Transition._fields, self.columns, strict=True))
            self.columns[-1].fill(1)  # horizons: one-step transitions leave them at 1
        if not self.filled:
            self.opened_at = self.clock()
        obs, action, reward, next_obs, terminated, horizon = transition
        start = self.filled
        self.filled = stop = start + len(reward)
        rows = slice(start, stop)
        columns = self.columns  # unrolled: this runs every step, where a loop would show
        columns[0][rows] = obs
        columns[1][rows] = action
        columns[2][rows] = reward
        columns[3][rows] = next_obs
        columns[4][rows] = terminated
        if horizon is not self.ones:  # else the horizons the column was filled with
            columns[5][rows] = horizon
        arrays = None
        if stop >= self.batch or self.clock() - self.opened_at >= self.max_age_s:
            arrays = self.flush()  # a fresh frame next: this one is shipped
        return Collected(arrays, episodes, self.vector.num_envs)

    def flush(self) -> dict[str, np.ndarray] | None:
        """The transitions of the frame being filled (None if there are none): a full
        frame, or a shorter one that a worker about to wait for the learner ships first."""
        if not self.filled:
            return None
        arrays = {name: column[: self.filled] for name, column in self.frame.items()}
        self.frame, self.filled = None, 0
        return arrays


def frame_rows(transition: Transition) -> int:
    """Transitions per experience frame: as many rows like `transition`'s as fit in
    `FRAME_BYTES`, between one and `EXPERIENCE_BATCH`."""
    row_bytes = sum(value[:1].nbytes for value in transition)
    return max(1, min(EXPERIENCE_BATCH, FRAME_BYTES // max(row_bytes, 1)))


class SampledActions:
    """An `ActingPolicy` over a stochastic policy (PPO, SAC): `act` samples from the
    policy with `sample(obs, rng)`, whatever epsilon inference asks for."""

    def __init__(self, policy: Policy, sample: Callable[[np.ndarray, np.random.Generator], Any]):
        self.policy = policy
        self.sample = sample

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.greedy(obs)

    def act(self, obs: np.ndarray, epsilons, rng: np.random.Generator) -> np.ndarray:
        return self.sample(obs, rng)
