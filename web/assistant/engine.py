"""The built-in analysis: from a run's facts to findings in three sections.

`advise(facts)` is a generator, so a caller can send each part as soon as it exists:
the overview (what the curve and the metrics show), then hyperparameter adjustments,
training-strategy optimisation and model-architecture improvements. No network, no
database: the same facts always give the same advice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from web.assistant import hyper
from web.assistant.architecture import architecture
from web.assistant.diagnosis import Diagnosis, diagnose
from web.assistant.records import Part, RunFacts
from web.assistant.strategy import strategy


def overview(facts: RunFacts, d: Diagnosis) -> dict[str, Any]:
    out: dict[str, Any] = {
        "algorithm": facts.algorithm,
        "env_id": facts.env_id,
        "model_id": facts.model_id,
        "threshold": facts.reward_threshold,
        "metric_reports": d.system.reports,
        "env_steps": d.env_steps,
        "diverging": d.diverging,
        "exploding": d.exploding,
        "defaults": sorted(facts.defaults),
    }
    if d.curve is not None:
        c = d.curve
        out |= {name: getattr(c, name) for name in ("episodes", "window", "start", "end", "best")}
        out |= {name: getattr(c, name) for name in ("best_episode", "recent_mean", "recent_std")}
        out |= {"trend": c.trend, "slope_per_100": c.slope_per_100, "eval_best": c.eval_best}
        verdicts = ("too_short", "solved", "near", "plateau", "collapse", "high_variance")
        out["verdicts"] = [v for v in verdicts if getattr(c, v)]
    s = d.system
    for name in ("loss_name", "loss_min", "loss_last", "q_abs", "policy_lag", "replay_ratio"):
        out[name] = getattr(s, name)
    out |= {"env_steps_per_s": s.env_steps_per_s, "epsilon": s.epsilon}
    return out


def advise(facts: RunFacts) -> Iterator[Part]:
    """The advice in the order it is streamed; each part is computed when asked for."""
    d = diagnose(facts)
    yield Part("overview", overview=overview(facts, d))
    found = hyper.check(facts, d.curve, d.unstable(), d.system.epsilon, d.env_steps)
    yield Part("hyperparameters", tuple(found))
    yield Part("strategy", tuple(strategy(facts, d, found)))
    yield Part("architecture", tuple(architecture(facts, d, found)))
