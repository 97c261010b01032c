"""Experience replay: the `Transition` batch, a NumPy ring buffer, and a rate limiter that
holds the learner to an explicit samples-per-insert ratio.

Roles (Acme `adders` / Reverb tables): rollout workers produce `Transition` batches, the
buffer `add`s them and `sample`s minibatches, and the `RateLimiter` decides when either
side has to wait. The same three pieces run in one process (actors/algorithms/serial.py) and in the
distributed buffer actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # envs/build.py imports this module for Transition
    from actors.envs.build import EnvSpaces


class Transition(NamedTuple):
    """A batch of transitions; every field has the batch on its first axis.

    A transition spans `horizon` env steps: 1 as environments produce them, up to n once
    actors/algorithms/nstep.py has made n-step transitions of them (DQN's `n_step`). `reward` is
    then the discounted sum of those steps' rewards and `next_obs` the observation after
    the last of them, so a learner bootstraps with `gamma ** horizon`."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray  # float32
    next_obs: np.ndarray  # the final observation when the episode ended on this step
    terminated: np.ndarray  # bool; True only for a real terminal state, not a time limit
    horizon: np.ndarray  # int32; env steps from obs to next_obs (1 for one-step)

    @property
    def batch_size(self) -> int:
        return len(self.reward)

    @classmethod
    def concatenate(cls, batches: list[Transition]) -> Transition:
        return cls(*(np.concatenate(field) for field in zip(*batches, strict=True)))


class ReplayBuffer:
    """Fixed-capacity FIFO ring buffer with uniform sampling (Mnih et al. 2015)."""

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type = np.float32,
        action_shape: tuple[int, ...] = (),
        action_dtype: np.dtype | type = np.int64,
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.action = np.zeros((capacity, *action_shape), dtype=action_dtype)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.horizon = np.zeros(capacity, dtype=np.int32)
        self.position = 0  # where the next transition goes
        self.size = 0

    @classmethod
    def for_spaces(cls, capacity: int, spaces: EnvSpaces) -> ReplayBuffer:
        """A buffer for an environment's transitions: its observations as they come, and
        actions as the learners take them (int64 indices or float32 vectors)."""
        action_dtype = np.int64 if spaces.discrete else np.float32
        return cls(capacity, spaces.obs_shape, spaces.obs_dtype, spaces.action_shape, action_dtype)

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Transition) -> None:
        """Store a batch, overwriting the oldest transitions once full. A batch larger than
        the capacity leaves only its newest `capacity` transitions."""
        n_new = batch.batch_size
        if n_new > self.capacity:
            batch = Transition(*(field[-self.capacity :] for field in batch))
            n_new = self.capacity
        slots = (self.position + np.arange(n_new)) % self.capacity
        self.obs[slots] = batch.obs
        self.action[slots] = batch.action
        self.reward[slots] = batch.reward
        self.next_obs[slots] = batch.next_obs
        self.terminated[slots] = batch.terminated
        self.horizon[slots] = batch.horizon
        self.position = int(slots[-1] + 1) % self.capacity if n_new else self.position
        self.size = min(self.size + n_new, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Transition:
        """`batch_size` transitions drawn uniformly with replacement (copies)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return Transition(
            self.obs[idx],
            self.action[idx],
            self.reward[idx],
            self.next_obs[idx],
            self.terminated[idx],
            self.horizon[idx],
        )


class RateLimiter:
    """Holds sampling to `samples_per_insert` sampled transitions per inserted transition.

    The semantics follow Reverb's `SampleToInsertRatio` rate limiter (Cassirer et al. 2021,
    "Reverb: A Framework For Experience Replay"), counting transitions rather than items:

    * Until `min_size_to_sample` transitions have been inserted, inserts are always allowed
      and sampling never is (the warm-up, DQN's `learning_starts`).
    * After that, the limiter tracks how far sampling lags behind the ratio,
      `lag = inserted * samples_per_insert - sampled`, relative to where warm-up left it,
      `offset = min_size_to_sample * samples_per_insert`. Sampling `n` is allowed while
      `lag - n >= offset - error_buffer`; inserting `n` while
      `lag + n * samples_per_insert <= offset + error_buffer`.

    So the learner can run at most `error_buffer` samples ahead of the collected data and
    the collectors at most `error_buffer` samples ahead of the learner; within that slack
    neither side waits. `error_buffer` must cover one sample call and one insert call,
    `error_buffer >= (sample_chunk + insert_chunk * samples_per_insert) / 2`, or a
    process that alternates inserting and sampling (the serial loop) can deadlock.
    Callers check `can_*` first, then report what they did with `inserted` / `sampled`.
    """

    def __init__(self, samples_per_insert: float, min_size_to_sample: int, error_buffer: float):
        if samples_per_insert <= 0:
            raise ValueError(f"samples_per_insert must be positive, got {samples_per_insert}")
        if min_size_to_sample < 1:
            raise ValueError(f"min_size_to_sample must be at least 1, got {min_size_to_sample}")
        if error_buffer < max(1.0, samples_per_insert):
            # Reverb's own lower bound: a smaller window can block both sides for good.
            raise ValueError(
                f"error_buffer ({error_buffer}) must be at least max(1, samples_per_insert)"
            )
        self.samples_per_insert = samples_per_insert
        self.min_size_to_sample = min_size_to_sample
        self.error_buffer = error_buffer
        offset = samples_per_insert * min_size_to_sample
        self.min_lag = offset - error_buffer
        self.max_lag = offset + error_buffer
        self.inserts = 0
        self.samples = 0

    @property
    def lag(self) -> float:
        return self.inserts * self.samples_per_insert - self.samples

    def can_insert(self, n: int = 1) -> bool:
        if self.inserts < self.min_size_to_sample:
            # Warm-up: always, even a chunk that crosses the minimum (refusing it would
            # block both sides for good when chunk * samples_per_insert > error_buffer).
            return True
        return self.lag + n * self.samples_per_insert <= self.max_lag

    def can_sample(self, n: int = 1) -> bool:
        if self.inserts < self.min_size_to_sample:
            return False
        return self.lag - n >= self.min_lag

    def inserted(self, n: int) -> None:
        self.inserts += n

    def sampled(self, n: int) -> None:
        self.samples += n

    @property
    def replay_ratio(self) -> float:
        """Measured sampled / inserted transitions (0 before any insert). Converges to
        `samples_per_insert` as the warm-up inserts become a small share."""
        return self.samples / self.inserts if self.inserts else 0.0
