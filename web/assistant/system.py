"""Training-system measurements from a run's metrics reports (see actors/roles/trainer.py):
loss growth, Q-value size, policy lag, replay ratio, throughput, exploration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# The first of these a run reports is its loss (DQN, generic, PPO's value, SAC's critic).
LOSS_NAMES = ("losses/td_loss", "losses/loss", "losses/value_loss", "losses/critic_loss")
RECENT = 5  # reports averaged for "now"


@dataclass(frozen=True)
class SystemReport:
    reports: int
    env_steps: float | None
    loss_name: str | None = None
    loss_min: float | None = None
    loss_last: float | None = None
    loss_rising: bool = False  # the loss still grows over the last third of the reports
    q_abs: float | None = None  # largest |losses/q_mean| of the recent reports (inf if NaN)
    policy_lag: float | None = None  # versions between the learner and the newest experience
    replay_ratio: float | None = None  # measured samples per inserted transition
    dropped: float | None = None  # experience the buffer dropped
    env_steps_per_s: float | None = None  # median of the recent reports
    updates_per_s: float | None = None
    epsilon: float | None = None

    @property
    def loss_growth(self) -> float | None:
        if self.loss_last is None or self.loss_min is None:
            return None
        if not math.isfinite(self.loss_last):
            return math.inf
        return self.loss_last / max(self.loss_min, 1e-12)


def series(metrics: Sequence[Mapping[str, float]], name: str) -> np.ndarray:
    """The values of one metric in report order; a non-finite value reads as inf."""
    values = []
    for report in metrics:
        value = report.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.append(float(value) if math.isfinite(value) else math.inf)
    return np.asarray(values, dtype=np.float64)


def _recent_mean(values: np.ndarray) -> float | None:
    return float(values[-RECENT:].mean()) if len(values) else None


def _loss(metrics: Sequence[Mapping[str, float]]) -> dict:
    name = next((n for n in LOSS_NAMES if len(series(metrics, n))), None)
    if name is None:
        return {}
    loss = series(metrics, name)
    tail = loss[-max(len(loss) // 3, 2) :]
    finite_tail = tail[np.isfinite(tail)]
    rising = not np.isfinite(tail).all() or (
        len(finite_tail) >= 2 and np.polyfit(np.arange(len(finite_tail)), finite_tail, 1)[0] > 0
    )
    return {
        "loss_name": name,
        "loss_min": float(loss.min()),
        "loss_last": _recent_mean(loss[-2:]),
        "loss_rising": bool(rising),
    }


def analyse_metrics(metrics: Sequence[Mapping[str, float]]) -> SystemReport:
    steps = series(metrics, "env_steps")  # the stored report's own field, else the chart
    steps = steps if len(steps) else series(metrics, "charts/env_steps")
    q = np.abs(series(metrics, "losses/q_mean"))
    steps_per_s = series(metrics, "charts/env_steps_per_s")[-2 * RECENT :]
    epsilon = series(metrics, "charts/epsilon")
    return SystemReport(
        reports=len(metrics),
        env_steps=float(steps[-1]) if len(steps) else None,
        q_abs=float(q[-RECENT:].max()) if len(q) else None,
        policy_lag=_recent_mean(series(metrics, "charts/policy_lag")),
        replay_ratio=_recent_mean(series(metrics, "charts/replay_ratio")),
        dropped=_recent_mean(series(metrics, "buffer/dropped")),
        env_steps_per_s=float(np.median(steps_per_s)) if len(steps_per_s) else None,
        updates_per_s=_recent_mean(series(metrics, "charts/updates_per_s")),
        epsilon=float(epsilon[-1]) if len(epsilon) else None,
        **_loss(metrics),
    )
