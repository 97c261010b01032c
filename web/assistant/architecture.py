"""Section 3, model-architecture improvements: the widths and depth of the network,
judged against the curve (underfitting plateau) and throughput."""

from __future__ import annotations

from typing import Any

from web.assistant.diagnosis import Diagnosis
from web.assistant.ranges import NET_SOURCE, WIDE_HIDDEN
from web.assistant.records import Finding, RunFacts
from web.assistant.strategy import SLOW_ENV_STEPS


def hidden_widths(facts: RunFacts) -> list[int] | None:
    for name in ("hidden", "net_arch"):
        value = facts.hyperparameters.get(name)
        if isinstance(value, list) and value and all(type(w) is int for w in value):
            return value
    return None


def architecture(facts: RunFacts, d: Diagnosis, hyper_found: list[Finding]) -> list[Finding]:
    hidden = hidden_widths(facts)
    if hidden is None:
        return [
            Finding(
                "architecture",
                "arch.unknown",
                {},
                parameter="hidden",
                value=WIDE_HIDDEN,
                source=NET_SOURCE,
            )
        ]
    evidence: dict[str, Any] = {"hidden": hidden}
    exploring = any(f.code == "explore.exhausted" for f in hyper_found)
    if len(hidden) == 1:
        width = max(hidden[0], 64)
        return [
            Finding(
                "architecture",
                "arch.deepen",
                evidence,
                parameter="hidden",
                current=hidden,
                value=[width, width],
                source=NET_SOURCE,
            )
        ]
    if d.curve is not None and d.curve.plateau and max(hidden) < 128 and not exploring:
        evidence |= {"flat_episodes": d.curve.flat_episodes, "level": round(d.curve.end, 1)}
        return [
            Finding(
                "architecture",
                "arch.widen",
                evidence,
                parameter="hidden",
                current=hidden,
                value=WIDE_HIDDEN,
                source=NET_SOURCE,
            )
        ]
    slow = d.system.env_steps_per_s
    if slow is not None and slow < SLOW_ENV_STEPS and max(hidden) >= 512:
        evidence["env_steps_per_s"] = round(slow, 1)
        return [
            Finding(
                "architecture",
                "arch.shrink",
                evidence,
                parameter="hidden",
                current=hidden,
                value=WIDE_HIDDEN,
                source=NET_SOURCE,
            )
        ]
    return [
        Finding(
            "architecture",
            "arch.keep",
            evidence,
            parameter="hidden",
            current=hidden,
            value=hidden,
            source=NET_SOURCE,
        )
    ]
