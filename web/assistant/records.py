"""Records shared by the assistant's modules: what is known about a run, what the
engine found, and the parts of an answer in the order they are streamed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Section = Literal["hyperparameters", "strategy", "architecture"]
SECTIONS: tuple[Section, ...] = ("hyperparameters", "strategy", "architecture")


@dataclass(frozen=True)
class RunFacts:
    """Everything the engine may look at. Rewards, lengths and metrics are oldest first."""

    algorithm: str | None
    env_id: str | None
    hyperparameters: Mapping[str, Any]  # the run's own fields and its `hyperparameters`
    defaults: frozenset[str] = frozenset()  # names taken from runt's defaults, not given
    rewards: tuple[float, ...] = ()
    lengths: tuple[int, ...] = ()  # episode lengths, when known
    metrics: tuple[Mapping[str, float], ...] = ()  # metrics reports, with `env_steps`
    evaluations: tuple[float, ...] = ()  # greedy evaluation means
    reward_threshold: float | None = None  # Gymnasium's EnvSpec.reward_threshold
    max_episode_steps: int | None = None
    model_id: int | None = None
    target_episode: int | None = None
    stop_reward: float | None = None
    trainable: bool = True  # whether runt has actors for `algorithm`


@dataclass(frozen=True)
class Finding:
    """One suggestion: what to change (`parameter` from `current` to `value`), why
    (`evidence`, numbers from the curve, metrics or config), and where a documented
    range comes from (`source`). `code` picks the sentence in `text.py`."""

    section: Section
    code: str
    evidence: dict[str, Any]
    parameter: str | None = None
    current: Any = None
    value: Any = None
    source: str | None = None


@dataclass(frozen=True)
class Part:
    """One streamed piece of advice: the overview first, then each section."""

    name: Literal["overview", "hyperparameters", "strategy", "architecture"]
    findings: tuple[Finding, ...] = ()
    overview: Mapping[str, Any] = field(default_factory=dict)
