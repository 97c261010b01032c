"""n-step returns: one-step transitions of a vector env turned into n-step transitions.

A transition that starts at step t of an episode becomes

    (s_t, a_t, R = r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1}, s_{t+m}, horizon m)

with m = n, or fewer where the episode ended within n steps. The learner bootstraps with
`gamma ** horizon * Q(s_{t+m})` unless s_{t+m} is terminal: a time limit inside the window
ends it early but still bootstraps (Pardo et al. 2018), a real terminal state never does.
With n = 1 every transition passes through unchanged (horizon 1).

The n-step return is Sutton 1988 (Sutton & Barto 2018, section 7.1). As in Rainbow (Hessel
et al. 2018) and Acme's `NStepTransitionAdder`, the actor builds the transitions, so the
replay buffer stores them like any other, with the rewards the acting policy collected,
uncorrected. See docs/algorithms.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from actors.algorithms.replay import Transition


class NStepTransitions:
    """Per sub-environment windows of the last `n` steps, kept as arrays over all of them.

    `add(step, ended)` takes one step of every sub-environment (a one-step `Transition`
    with one row per sub-environment, `next_obs` already the final observation where an
    episode ended) and the indices of the sub-environments whose episode ended on it
    (terminated or truncated), and returns the n-step transitions completed by that step:
    one per sub-environment once its episode is n steps old, and every pending one of a
    sub-environment whose episode ended. Transitions still pending when collection stops
    are never returned.
    """

    def __init__(self, n: int, gamma: float):
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.n = n
        self.gamma = gamma
        self.slots: dict[str, np.ndarray] | None = None  # (n, num_envs, ...) per field
        self.steps = 0  # steps added; the window that starts at step t lives in slot t % n

    def add(self, step: Transition, ended: Iterable[int] = ()) -> Transition:
        if self.n == 1:
            return step
        num_envs = step.batch_size
        if self.slots is None:
            self.slots = {
                "obs": np.empty((self.n, *step.obs.shape), step.obs.dtype),
                "action": np.empty((self.n, *step.action.shape), step.action.dtype),
                "reward": np.zeros((self.n, num_envs), np.float32),  # discounted sum so far
                "horizon": np.zeros((self.n, num_envs), np.int32),  # rewards summed so far
                "open": np.zeros((self.n, num_envs), bool),  # a window not yet returned
            }
        slots = self.slots
        start = self.steps % self.n  # free: its window (n steps ago) completed last step
        slots["obs"][start] = step.obs
        slots["action"][start] = step.action
        slots["reward"][start] = 0.0
        slots["horizon"][start] = 0
        slots["open"][start] = True
        self.steps += 1

        # every open window takes this step's reward, discounted by its age
        is_open = slots["open"]
        discount = (self.gamma ** slots["horizon"]).astype(np.float32)
        slots["reward"] += np.where(is_open, discount * step.reward, 0.0).astype(np.float32)
        slots["horizon"] += is_open

        ended_now = np.zeros(num_envs, bool)
        ended_now[list(ended)] = True
        done = is_open & ((slots["horizon"] == self.n) | ended_now)
        which_slot, which_env = np.nonzero(done)
        is_open[done] = False
        return Transition(
            obs=slots["obs"][which_slot, which_env],
            action=slots["action"][which_slot, which_env],
            reward=slots["reward"][which_slot, which_env],
            next_obs=step.next_obs[which_env],
            terminated=step.terminated[which_env],
            horizon=slots["horizon"][which_slot, which_env],
        )
