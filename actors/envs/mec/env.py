"""runt/MecOffload-v0: task offloading from user devices to a mobile-edge server.

`n_UE` devices receive computing tasks; each step decides, for the task that has just
arrived, to compute it on its device or to upload it and run it on a share of the edge
server, and is rewarded with minus the weighted latency and energy, minus a penalty per
missed deadline. `MecOffloadEnv` specifies the system, the actions and the observation;
the model's sources are in `constants.py` and `channel.py`, and docs/environments.md
compares learned policies with fixed ones.

`render_mode="rgb_array"` draws the queues as a small image (`render.py`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from actors.envs.mec import channel
from actors.envs.mec.channel import db_to_linear
from actors.envs.mec.constants import (
    CELL_RADIUS_M,
    GAIN_DB_REFERENCE,
    GAIN_DB_SCALE,
    MIN_DISTANCE_M,
    OBS_CLIP,
    RAYLEIGH_MEAN_POWER_GAIN,
    TASK_SPREAD,
)
from actors.envs.mec.params import MecParams
from actors.envs.mec.render import draw_state

LOCAL = 0  # the action that computes the task on its own device
TASK_FEATURES = 7  # observation entries before the per-unit edge backlogs
MIN_GAIN = 1e-30  # floor of the channel gain (linear), for a fade to exactly 0


class Task(NamedTuple):
    device: int
    size_bits: float
    cycles: float
    deadline_s: float
    gain: float  # channel power gain (linear) for this task's upload


class Outcome(NamedTuple):
    """What a decision does to its task; all times in s, energy in J."""

    offloaded: bool
    share: float  # fraction of the edge server; 0 when local
    power_w: float  # transmit power; 0 when local
    wait_s: float  # queueing: for the device CPU, or for the radio and the edge units
    upload_s: float
    compute_s: float
    latency_s: float
    energy_j: float
    missed: bool
    finish_s: float  # absolute time the result is ready
    units: tuple[int, ...] = ()  # edge units booked


class MecOffloadEnv(gym.Env):
    """Task offloading from `n_UE` devices to a mobile-edge server, one decision a step.

    The system. `n_UE` devices each receive computing tasks as a Poisson process of rate
    `task_arrival_rate`. A task has an input of S bits, needs C CPU cycles and has a deadline
    D seconds after its arrival; S, C and D are drawn uniformly from [0.5, 1.5] x their
    averages (`task_size_average`, `task_comsumption_average`, `task_time_average`). A task
    either runs on its device's CPU (`UE_computation_capacity` cycles/s, first come first
    served) or is uploaded over the device's radio (one upload at a time, Shannon rate, see
    `channel.py`) and runs on the edge server (`MEC_computation_capacity` cycles/s).

    The edge server is split into U = 2^(n_share_levels - 1) equal units; an offloaded task
    books 1, 2, 4 ... U of them (its share: 1/U ... all of the server) and, once uploaded,
    runs on them at share x `MEC_computation_capacity` as soon as all its units are free.
    Units are booked when the decision is made, in decision order, and not pre-empted.

    Decisions, one per step. Each step decides the one task that has just arrived (tasks of
    all devices, in arrival order), then the clock jumps to the next arrival. This sequential
    form keeps the action space at Discrete(1 + share levels x power levels) whatever n_UE,
    and the observation at a fixed size, so DQN and PPO act on it unchanged for any number
    of devices; a joint action for all devices would be Discrete((1 + K)^n_UE). Devices
    without a new task need no decision, so no step is wasted on them. Action 0 computes the
    task locally; action 1 + i * n_power_levels + j offloads it with share level i and power
    level j (`decode_action`). The outcome of a decision is known when it is made, so every
    step's reward belongs to that step's decision:

        reward = -(latency_weight * latency + energy_weight * energy) - deadline_penalty * missed

    with latency = queueing + upload + computation time (s), energy the device's joules
    (computing locally, or transmitting), missed = latency > deadline. The environment
    never terminates; episodes are cut by the time limit (`max_episode_steps` decisions).
    `evaluate(action)` previews a decision's `Outcome` without taking it.

    Observation (float32, all within [-10, 10]): the task's size, cycles and deadline over
    their averages; its deadline slack if computed locally and its channel gain in dB (both
    normalised); the backlog of its device's CPU and radio; the backlog of each edge unit,
    smallest first. Backlogs are seconds of queued work over `task_time_average`.
    `set_state(observation)` puts the system into the state an observation shows.

    Keyword arguments: `render_mode` (None or "rgb_array") and any field of
    `MecParams` (RUNT's seven fields and runt's own), all optional.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **params: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.params = p = MecParams.from_kwargs(params)
        self.action_space = spaces.Discrete(1 + p.n_share_levels * p.n_power_levels)
        obs_size = TASK_FEATURES + p.n_edge_units
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, (obs_size,), np.float32)
        self.noise_psd = channel.noise_psd_watts_per_hz()
        self.arrival_rate = p.n_UE * p.task_arrival_rate  # merged Poisson process, tasks/s
        self._clear()

    def _clear(self) -> None:
        p = self.params
        self.now = 0.0  # s, arrival time of the task being decided
        self.distance_m = np.full(p.n_UE, MIN_DISTANCE_M)
        self.cpu_free_at = np.zeros(p.n_UE)  # s, when each device's CPU queue empties
        self.radio_free_at = np.zeros(p.n_UE)  # s, when each device's uploads are done
        self.edge_free_at = np.zeros(p.n_edge_units)  # s, when each edge unit is free
        mean_task = (p.task_size_average, p.task_comsumption_average, p.task_time_average)
        self.task = Task(0, *mean_task, gain=1.0)  # replaced by reset's first arrival
        self.last: Outcome | None = None

    # ---- gymnasium API ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._clear()
        self.distance_m = self.np_random.uniform(MIN_DISTANCE_M, CELL_RADIUS_M, self.params.n_UE)
        self._next_task()
        return self._observation(), {"device": self.task.device, "time_s": self.now}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: {action!r} is not in {self.action_space}")
        outcome = self.evaluate(int(action))
        self._commit(outcome)
        reward = self.reward(outcome)
        task = self.task
        info = {"device": task.device, "time_s": self.now, "deadline_s": task.deadline_s}
        info |= {name: value for name, value in outcome._asdict().items() if name != "units"}
        self._next_task()
        return self._observation(), reward, False, False, info

    def render(self):
        if self.render_mode == "rgb_array":
            return draw_state(self)
        return None

    def set_state(self, observation: Any) -> None:
        """Put the system in the state an observation shows: the hook POST /testmodel/
        uses to start from a given observation. The current device gets the observed
        task and CPU and radio backlogs, the edge units the observed backlogs; the other
        devices keep theirs. Values are clipped to the observation space, and sizes,
        cycles and backlogs to zero from below."""
        obs = np.asarray(observation, dtype=np.float64).reshape(-1)
        if obs.shape != self.observation_space.shape:
            size = self.observation_space.shape[0]
            raise ValueError(f"observation: expected {size} numbers, got {obs.size}")
        obs = np.clip(np.nan_to_num(obs), -OBS_CLIP, OBS_CLIP)
        size, cycles, deadline, _slack, gain, cpu, radio = obs[:TASK_FEATURES].tolist()
        p, device, scale = self.params, self.task.device, self.params.task_time_average
        self.task = Task(
            device=device,
            size_bits=max(size, 0.0) * p.task_size_average,
            cycles=max(cycles, 0.0) * p.task_comsumption_average,
            deadline_s=deadline * scale,
            gain=float(db_to_linear(gain * GAIN_DB_SCALE + GAIN_DB_REFERENCE)),
        )
        self.cpu_free_at[device] = self.now + max(cpu, 0.0) * scale
        self.radio_free_at[device] = self.now + max(radio, 0.0) * scale
        self.edge_free_at[:] = self.now + np.maximum(obs[TASK_FEATURES:], 0.0) * scale

    # ---- the physics -----------------------------------------------------------------------

    def decode_action(self, action: int) -> tuple[int, int] | None:
        """None for LOCAL, else (share level, power level) of an offload."""
        if action == LOCAL:
            return None
        return divmod(action - 1, self.params.n_power_levels)

    def evaluate(self, action: int) -> Outcome:
        """The outcome of `action` for the current task, without changing any state."""
        levels = self.decode_action(action)
        if levels is None:
            return self._compute_locally()
        return self._offload(*levels)

    def reward(self, outcome: Outcome) -> float:
        p = self.params
        cost = p.latency_weight * outcome.latency_s + p.energy_weight * outcome.energy_j
        return float(-cost - p.deadline_penalty * outcome.missed)

    def _compute_locally(self) -> Outcome:
        task, cpu_hz = self.task, self.params.UE_computation_capacity
        wait = max(0.0, float(self.cpu_free_at[task.device]) - self.now)
        compute = channel.compute_time(task.cycles, cpu_hz)
        latency = wait + compute
        energy = channel.local_energy(task.cycles, cpu_hz)
        return Outcome(
            offloaded=False,
            share=0.0,
            power_w=0.0,
            wait_s=wait,
            upload_s=0.0,
            compute_s=compute,
            latency_s=latency,
            energy_j=energy,
            missed=bool(latency > task.deadline_s),
            finish_s=self.now + latency,
        )

    def _offload(self, share_level: int, power_level: int) -> Outcome:
        p, task = self.params, self.task
        power = p.power_levels[power_level]
        n_units = p.share_units[share_level]
        share = n_units / p.n_edge_units
        upload_start = max(self.now, float(self.radio_free_at[task.device]))
        gain = max(task.gain, MIN_GAIN)  # a rate > 0, however deep the fade
        rate = channel.shannon_rate(p.bandwidth, power, gain, self.noise_psd)
        upload = task.size_bits / rate
        units = tuple(int(u) for u in np.argsort(self.edge_free_at, kind="stable")[:n_units])
        start = max(upload_start + upload, float(self.edge_free_at[list(units)].max()))
        compute = channel.compute_time(task.cycles, share * p.MEC_computation_capacity)
        finish = start + compute
        latency = finish - self.now
        return Outcome(
            offloaded=True,
            share=share,
            power_w=power,
            wait_s=latency - upload - compute,
            upload_s=upload,
            compute_s=compute,
            latency_s=latency,
            energy_j=channel.transmit_energy(power, upload),
            missed=bool(latency > task.deadline_s),
            finish_s=finish,
            units=units,
        )

    def _commit(self, outcome: Outcome) -> None:
        device = self.task.device
        if outcome.offloaded:
            upload_start = max(self.now, float(self.radio_free_at[device]))
            self.radio_free_at[device] = upload_start + outcome.upload_s
            self.edge_free_at[list(outcome.units)] = outcome.finish_s
        else:
            self.cpu_free_at[device] = outcome.finish_s
        self.last = outcome

    def _next_task(self) -> None:
        """Advance the clock to the next arrival of the merged Poisson process and draw it."""
        rng, p = self.np_random, self.params
        self.now += float(rng.exponential(1.0 / self.arrival_rate))
        device = int(rng.integers(p.n_UE))
        size, cycles, deadline = rng.uniform(1 - TASK_SPREAD, 1 + TASK_SPREAD, 3).tolist()
        fading = float(rng.exponential(RAYLEIGH_MEAN_POWER_GAIN))
        self.task = Task(
            device=device,
            size_bits=size * p.task_size_average,
            cycles=cycles * p.task_comsumption_average,
            deadline_s=deadline * p.task_time_average,
            gain=channel.channel_gain(self.distance_m[device], fading),
        )

    def _observation(self) -> np.ndarray:
        p, task = self.params, self.task
        scale = p.task_time_average
        cpu_backlog = max(0.0, self.cpu_free_at[task.device] - self.now)
        local_time = channel.compute_time(task.cycles, p.UE_computation_capacity)
        gain_db = 10.0 * np.log10(max(task.gain, MIN_GAIN))
        features = [
            task.size_bits / p.task_size_average,
            task.cycles / p.task_comsumption_average,
            task.deadline_s / scale,
            (task.deadline_s - cpu_backlog - local_time) / scale,
            (gain_db - GAIN_DB_REFERENCE) / GAIN_DB_SCALE,
            cpu_backlog / scale,
            max(0.0, self.radio_free_at[task.device] - self.now) / scale,
        ]
        edge_backlog = np.sort(np.maximum(self.edge_free_at - self.now, 0.0)) / scale
        obs = np.concatenate([features, edge_backlog])
        return np.clip(np.nan_to_num(obs), -OBS_CLIP, OBS_CLIP).astype(np.float32)
