"""Hyperparameter checks per algorithm, against the documented ranges in `ranges.py`
and against the run itself (episode length, steps taken, stability)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from web.assistant.curve import CurveReport
from web.assistant.ranges import BUFFER_SOURCE, MIN_BUFFER, RANGES, TARGET_PERIOD, Range
from web.assistant.records import Finding, RunFacts

# Settings the checks read as numbers; anything else there is a 400 naming it.
NUMERIC = {name for table in RANGES.values() for name in table} | {
    "buffer_size",
    "target_update_interval",
    "tau",
    "learning_starts",
    "exploration_budget_steps",
    "num_workers",
    "envs_per_worker",
    "n_envs",
    "weights_publish_interval",
    "target_entropy",
}
AUTO_ALLOWED = {"ent_coef", "target_entropy"}  # SB3 takes "auto" (or "auto_0.1") here


def number(hp: Mapping[str, Any], name: str) -> float | None:
    value = hp.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def round_sig(x: float, digits: int = 2) -> float:
    """`x` to `digits` significant figures: 0.016666 -> 0.017."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def bad_hyperparameter(hp: Mapping[str, Any]) -> str | None:
    """The first checked setting that is not a usable value, as `name: problem`."""
    for name in sorted(NUMERIC & set(hp)):
        value = hp[name]
        if name in AUTO_ALLOWED and isinstance(value, str) and value.startswith("auto"):
            continue
        if number(hp, name) is None and value is not None:
            return f"{name}: must be a finite number"
    hidden = hp.get("hidden", [])
    if not (isinstance(hidden, list) and all(type(w) is int and w > 0 for w in hidden)):
        return "hidden: must be a list of positive integers (layer widths)"
    return None


def range_finding(facts: RunFacts, name: str, rng: Range, **extra: Any) -> Finding | None:
    value = number(facts.hyperparameters, name)
    if value is None or rng.low <= value <= rng.high:
        return None
    return Finding(
        "hyperparameters",
        "range.high" if value > rng.high else "range.low",
        {name: value, "low": rng.low, "high": rng.high, **extra},
        parameter=name,
        current=value,
        value=rng.typical,
        source=rng.source,
    )


def learning_rate(facts: RunFacts, unstable: dict[str, float]) -> Finding | None:
    """Out of range, or unstable training (diverging loss, collapse): a third of it."""
    rng = RANGES.get(facts.algorithm or "", {}).get("learning_rate")
    lr = number(facts.hyperparameters, "learning_rate")
    if lr is None:
        return None
    if rng is not None and lr > rng.high:
        return range_finding(facts, "learning_rate", rng, **unstable)
    if unstable:
        # Lower step sizes are the first remedy for value divergence (Mnih et al. 2015
        # tuned theirs down to 2.5e-4; van Hasselt et al. 2018, "the deadly triad").
        evidence = {"learning_rate": lr, **unstable}
        return Finding(
            "hyperparameters",
            "learning_rate.unstable",
            evidence,
            parameter="learning_rate",
            current=lr,
            value=round_sig(lr / 3),
        )
    return range_finding(facts, "learning_rate", rng) if rng is not None else None


def episode_length(facts: RunFacts) -> float | None:
    if facts.lengths:
        return sum(facts.lengths) / len(facts.lengths)
    return float(facts.max_episode_steps) if facts.max_episode_steps else None


def gamma(facts: RunFacts) -> Finding | None:
    """The effective horizon 1/(1-gamma) should not be far shorter than an episode
    (Sutton & Barto 2018, section 3.3: the discounted sum weighs ~1/(1-gamma) steps)."""
    g, length = number(facts.hyperparameters, "gamma"), episode_length(facts)
    if g is None or length is None or g >= 0.99:
        return None
    horizon = 1 / (1 - g)
    if horizon >= length / 10:
        return None
    evidence = {"gamma": g, "horizon_steps": round(horizon, 1), "episode_length": round(length)}
    return Finding(
        "hyperparameters",
        "gamma.short_horizon",
        evidence,
        parameter="gamma",
        current=g,
        value=0.99 if length <= 1000 else 0.999,
        source="Sutton & Barto 2018, 3.3; SB3 default 0.99",
    )


def target_update(facts: RunFacts, unstable: dict[str, float]) -> Finding | None:
    """DQN's target network: updates between hard copies, or interval / tau when soft."""
    hp = facts.hyperparameters
    interval, tau = number(hp, "target_update_interval"), number(hp, "tau") or 1.0
    if interval is None or facts.algorithm != "dqn":
        return None
    period = interval / tau
    evidence = {"target_update_interval": interval, "tau": tau, "period_updates": period}
    if period < TARGET_PERIOD.low:
        code, new_period = "target.too_fast", TARGET_PERIOD.typical
    elif period > TARGET_PERIOD.high:
        code, new_period = "target.too_slow", TARGET_PERIOD.typical
    elif unstable and period < 5 * TARGET_PERIOD.typical:
        code, new_period, evidence = "target.unstable", 2 * period, evidence | unstable
    else:
        return None
    if tau < 1:
        return Finding(
            "hyperparameters",
            code,
            evidence,
            parameter="tau",
            current=tau,
            value=round_sig(min(interval / new_period, 1.0)),
            source=TARGET_PERIOD.source,
        )
    return Finding(
        "hyperparameters",
        code,
        evidence,
        parameter="target_update_interval",
        current=interval,
        value=int(new_period),
        source=TARGET_PERIOD.source,
    )


def planned_steps(facts: RunFacts, env_steps: float | None) -> float | None:
    candidates = [env_steps, number(facts.hyperparameters, "exploration_budget_steps")]
    candidates.append(float(sum(facts.lengths)) if facts.lengths else None)
    known = [c for c in candidates if c]
    return max(known) if known else None


def buffer(facts: RunFacts, env_steps: float | None) -> Finding | None:
    size, steps = number(facts.hyperparameters, "buffer_size"), planned_steps(facts, env_steps)
    if facts.algorithm not in ("dqn", "sac") or size is None or steps is None:
        return None
    if size >= MIN_BUFFER or steps <= size:
        return None
    evidence = {"buffer_size": size, "run_steps": steps, "minimum": MIN_BUFFER}
    return Finding(
        "hyperparameters",
        "buffer.small",
        evidence,
        parameter="buffer_size",
        current=size,
        value=int(min(steps, 100_000)),
        source=BUFFER_SOURCE,
    )


def exploration_exhausted(
    facts: RunFacts, curve: CurveReport | None, epsilon: float | None, env_steps: float | None
) -> Finding | None:
    """A plateau after linear epsilon reached its floor: the policy stopped trying things."""
    hp = facts.hyperparameters
    if facts.algorithm != "dqn" or hp.get("exploration", "linear") != "linear":
        return None
    final, fraction = number(hp, "exploration_final_eps"), number(hp, "exploration_fraction")
    budget = number(hp, "exploration_budget_steps")
    if curve is None or not curve.plateau or final is None or final >= 0.1:
        return None
    anneal = fraction * budget if fraction is not None and budget is not None else None
    at_floor = epsilon is not None and epsilon <= final + 1e-6
    annealed = env_steps is not None and anneal is not None and env_steps >= anneal
    if not (at_floor or annealed):
        return None
    evidence = {
        "epsilon": final if epsilon is None else epsilon,
        "env_steps": env_steps,
        "anneal_steps": anneal,
        "flat_episodes": curve.flat_episodes,
    }
    return Finding(
        "hyperparameters",
        "explore.exhausted",
        evidence,
        parameter="exploration_final_eps",
        current=final,
        value=round_sig(min(max(2 * final, 0.1), 0.2)),
        source=RANGES["dqn"]["exploration_final_eps"].source,
    )


def variance(facts: RunFacts, curve: CurveReport | None) -> Finding | None:
    """Noisy returns: larger batches average the gradient over more transitions."""
    batch = number(facts.hyperparameters, "batch_size")
    if curve is None or not curve.high_variance or batch is None or batch >= 256:
        return None
    evidence = {
        "cv": round(curve.cv, 2),
        "recent_std": round(curve.recent_std, 1),
        "recent_mean": round(curve.recent_mean, 1),
    }
    return Finding(
        "hyperparameters",
        "variance.batch",
        evidence,
        parameter="batch_size",
        current=batch,
        value=int(min(2 * batch, 256)),
    )


def ppo_rollout(facts: RunFacts) -> Finding | None:
    """SB3 splits each rollout (n_steps x n_envs) into minibatches of batch_size."""
    hp = facts.hyperparameters
    n_steps, batch = number(hp, "n_steps"), number(hp, "batch_size")
    envs = number(hp, "n_envs") or (number(hp, "num_workers") or 1) * (
        number(hp, "envs_per_worker") or 1
    )
    if facts.algorithm != "ppo" or n_steps is None or batch is None or batch <= n_steps * envs:
        return None
    evidence = {"n_steps": n_steps, "n_envs": envs, "batch_size": batch}
    return Finding(
        "hyperparameters",
        "ppo.batch_over_rollout",
        evidence,
        parameter="batch_size",
        current=batch,
        value=int(n_steps * envs),
        source="SB3 PPO: batch_size divides n_steps * n_envs",
    )


def sac_entropy(facts: RunFacts) -> list[Finding]:
    """SAC's temperature: learned ("auto", target entropy -dim(A)) is the recommended
    setting (Haarnoja et al. 2018b); a positive target entropy asks for near-uniform
    actions."""
    hp, found = facts.hyperparameters, []
    if facts.algorithm != "sac":
        return found
    source = "Haarnoja et al. 2018b; SB3 default ent_coef='auto'"
    alpha = number(hp, "ent_coef")
    if alpha is not None:
        found.append(
            Finding(
                "hyperparameters",
                "sac.ent_coef_fixed",
                {"ent_coef": alpha},
                parameter="ent_coef",
                current=alpha,
                value="auto",
                source=source,
            )
        )
    target = number(hp, "target_entropy")
    if target is not None and target > 0:
        found.append(
            Finding(
                "hyperparameters",
                "sac.target_entropy_high",
                {"target_entropy": target},
                parameter="target_entropy",
                current=target,
                value="auto",
                source=source,
            )
        )
    return found


def check(
    facts: RunFacts,
    curve: CurveReport | None,
    unstable: dict[str, float],
    epsilon: float | None = None,
    env_steps: float | None = None,
) -> list[Finding]:
    """Every hyperparameter finding, at most one per parameter (the most specific)."""
    specific = [
        learning_rate(facts, unstable),
        gamma(facts),
        target_update(facts, unstable),
        buffer(facts, env_steps),
        exploration_exhausted(facts, curve, epsilon, env_steps),
        variance(facts, curve),
        ppo_rollout(facts),
        *sac_entropy(facts),
    ]
    table = RANGES.get(facts.algorithm or "", {})
    general = [range_finding(facts, name, rng) for name, rng in table.items()]
    found: dict[str, Finding] = {}
    for finding in [*specific, *general]:
        if finding is not None and finding.parameter not in found:
            found[finding.parameter or finding.code] = finding
    return list(found.values())
