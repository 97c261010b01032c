"""What a run's numbers show before any advice: the reward curve's report, the training
system's report, and whether training is unstable (diverging loss, exploding Q-values,
collapse or decline of the curve)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from web.assistant.curve import CurveReport, analyse_curve
from web.assistant.hyper import number, round_sig
from web.assistant.records import RunFacts
from web.assistant.system import SystemReport, analyse_metrics

DIVERGENCE_GROWTH = 10.0  # the loss ended 10x above its minimum and is still rising
Q_MARGIN = 2.0  # |Q| beyond twice the largest discounted return the rewards allow


@dataclass(frozen=True)
class Diagnosis:
    curve: CurveReport | None
    system: SystemReport
    env_steps: float | None
    diverging: bool  # the loss grows without the returns growing
    exploding: bool  # Q-values beyond what the rewards allow

    def unstable(self) -> dict[str, float]:
        """Evidence that training is unstable, for the findings it triggers."""
        evidence: dict[str, float] = {}
        if self.diverging and self.system.loss_growth is not None:
            evidence["loss_growth"] = round(self.system.loss_growth, 1)
        if self.exploding and self.system.q_abs is not None:
            evidence["q_abs"] = round_sig(self.system.q_abs, 3)
        if self.curve is not None and self.curve.collapse:
            evidence["drop_from_peak"] = round(self.curve.drop_from_peak, 2)
        elif self.curve is not None and not self.curve.too_short and self.curve.trend == "falling":
            evidence["slope_per_100"] = round_sig(self.curve.slope_per_100, 3)
        return evidence


def _diverging(curve: CurveReport | None, system: SystemReport) -> bool:
    growth = system.loss_growth
    if growth is None or growth < DIVERGENCE_GROWTH or not system.loss_rising:
        return False
    # A TD loss grows with the returns it predicts; that alone is not divergence.
    return math.isinf(growth) or curve is None or curve.trend != "rising" or curve.collapse


def q_bound(facts: RunFacts) -> float | None:
    """The largest |discounted return|: max |reward per step| / (1 - gamma)."""
    if not facts.rewards:
        return None
    if facts.lengths:
        pairs = zip(facts.rewards, facts.lengths, strict=True)
        per_step = max(abs(r) / max(n, 1) for r, n in pairs)
    else:
        per_step = max(abs(r) for r in facts.rewards)  # an episode's total bounds each step
    g = number(facts.hyperparameters, "gamma") or 0.99
    return max(per_step, 1e-6) / max(1 - g, 1e-4)


def diagnose(facts: RunFacts) -> Diagnosis:
    curve = analyse_curve(facts.rewards, facts.reward_threshold, facts.evaluations)
    system = analyse_metrics(facts.metrics)
    bound = q_bound(facts)
    exploding = system.q_abs is not None and (
        math.isinf(system.q_abs) or (bound is not None and system.q_abs > Q_MARGIN * bound)
    )
    env_steps = system.env_steps or (float(sum(facts.lengths)) if facts.lengths else None)
    return Diagnosis(curve, system, env_steps, _diverging(curve, system), bool(exploding))
