"""Section 2, training-strategy optimisation: how long to train and when to stop (from
the reward curve), how to explore, and how the actors and the learner keep pace (from
the metrics)."""

from __future__ import annotations

import math

from web.assistant.curve import MIN_EPISODES, CurveReport
from web.assistant.diagnosis import Diagnosis
from web.assistant.hyper import number, round_sig
from web.assistant.records import Finding, RunFacts
from web.assistant.system import SystemReport

POLICY_LAG_UPDATES = 1000  # experience from a policy this many updates old (a target period)
REPLAY_SHORTFALL = 0.5  # the learner reaches less than half the configured replay ratio
SLOW_ENV_STEPS = 200.0  # env steps per second: far below what one core steps classic control
HORGAN = "Horgan et al. 2018 (Ape-X): per-actor epsilons 0.4^(1+7i/(N-1))"
BATCHED = "Petrenko et al. 2020 (Sample Factory): batched acting amortises inference"


def _curve_strategy(facts: RunFacts, c: CurveReport) -> list[Finding]:
    found = []
    if c.too_short:
        found.append(
            Finding(
                "strategy",
                "curve.too_short",
                {"episodes": c.episodes, "minimum": MIN_EPISODES},
                parameter="target_episode",
                current=facts.target_episode,
                value=max(100, facts.target_episode or 0),
            )
        )
        return found
    if c.solved:
        found.append(_solved(facts, c))
    elif c.trend == "rising":
        found.append(_improving(facts, c))
    elif c.near:
        lr = number(facts.hyperparameters, "learning_rate")
        found.append(
            Finding(
                "strategy",
                "curve.near_flat",
                {"level": round(c.level, 1), "threshold": c.threshold},
                parameter="learning_rate",
                current=lr,
                value=None if lr is None else round_sig(lr / 2),
            )
        )
    if c.plateau:
        evidence = {
            "flat_episodes": c.flat_episodes,
            "level": round(c.end, 1),
            "slope_per_100": round_sig(c.slope_per_100, 2),
            "threshold": c.threshold,
        }
        found.append(
            Finding(
                "strategy",
                "curve.plateau",
                evidence,
                parameter="target_episode",
                current=facts.target_episode,
                value=c.episodes,
            )
        )
    if c.collapse:
        evidence = {
            "best": round(c.best, 1),
            "best_episode": c.best_episode,
            "end": round(c.end, 1),
            "drop_from_peak": round(c.drop_from_peak, 2),
        }
        stop = c.threshold if c.threshold is not None else round_sig(0.9 * c.best, 3)
        found.append(
            Finding(
                "strategy",
                "curve.collapse",
                evidence,
                parameter="stop_reward",
                current=facts.stop_reward,
                value=stop,
            )
        )
    if c.high_variance and "eval_episodes" in facts.hyperparameters:
        episodes = int(number(facts.hyperparameters, "eval_episodes") or 10)
        found.append(
            Finding(
                "strategy",
                "curve.high_variance",
                {"cv": round(c.cv, 2)},
                parameter="eval_episodes",
                current=episodes,
                value=max(20, 2 * episodes),
            )
        )
    return found


def _solved(facts: RunFacts, c: CurveReport) -> Finding:
    evidence = {
        "level": round(c.level, 1),
        "threshold": c.threshold,
        "solved_episode": c.solved_episode,
        "eval_best": c.eval_best,
    }
    if facts.stop_reward is not None and facts.stop_reward <= (c.threshold or 0):
        return Finding("strategy", "curve.solved_kept", evidence)
    return Finding(
        "strategy",
        "curve.solved",
        evidence,
        parameter="stop_reward",
        current=facts.stop_reward,
        value=c.threshold,
    )


def _improving(facts: RunFacts, c: CurveReport) -> Finding:
    """Still learning: extrapolate the recent slope to the threshold (20% margin)."""
    evidence = {
        "slope_per_100": round_sig(c.slope_per_100, 3),
        "level": round(c.level, 1),
        "threshold": c.threshold,
    }
    if c.gap is not None and c.slope_per_100 > 0:
        more = math.ceil(1.2 * c.gap / (c.slope_per_100 / 100) / 10) * 10
    else:
        more = math.ceil(c.episodes / 2 / 10) * 10
    return Finding(
        "strategy",
        "curve.improving",
        evidence | {"more_episodes": more},
        parameter="target_episode",
        current=facts.target_episode,
        value=max(c.episodes + more, facts.target_episode or 0),  # a longer target stays
    )


def _system_strategy(facts: RunFacts, s: SystemReport) -> list[Finding]:
    hp, found = facts.hyperparameters, []
    interval = number(hp, "weights_publish_interval") or 1
    spi = number(hp, "samples_per_insert")
    if s.policy_lag is not None and s.policy_lag * interval > POLICY_LAG_UPDATES and spi:
        evidence = {"policy_lag": round(s.policy_lag, 1), "lag_updates": s.policy_lag * interval}
        found.append(
            Finding(
                "strategy",
                "system.policy_lag",
                evidence,
                parameter="samples_per_insert",
                current=spi,
                value=round_sig(spi / 2),
                source=BATCHED,
            )
        )
    if s.replay_ratio is not None and spi and s.replay_ratio < REPLAY_SHORTFALL * spi:
        workers = int(number(hp, "num_workers") or 1)
        evidence = {
            "replay_ratio": round_sig(s.replay_ratio, 3),
            "samples_per_insert": spi,
            "dropped": s.dropped,
        }
        if workers > 1:
            fewer = max(1, math.floor(workers * s.replay_ratio / spi))
            found.append(
                Finding(
                    "strategy",
                    "system.replay_shortfall",
                    evidence,
                    parameter="num_workers",
                    current=workers,
                    value=fewer,
                )
            )
        else:
            found.append(
                Finding(
                    "strategy",
                    "system.replay_shortfall",
                    evidence,
                    parameter="samples_per_insert",
                    current=spi,
                    value=round_sig(s.replay_ratio),
                )
            )
    envs = int(number(hp, "envs_per_worker") or 1)
    if s.env_steps_per_s is not None and s.env_steps_per_s < SLOW_ENV_STEPS and envs < 16:
        found.append(
            Finding(
                "strategy",
                "system.slow_env",
                {"env_steps_per_s": round(s.env_steps_per_s, 1)},
                parameter="envs_per_worker",
                current=envs,
                value=min(4 * envs, 16),
                source=BATCHED,
            )
        )
    return found


def strategy(facts: RunFacts, d: Diagnosis, hyper_found: list[Finding]) -> list[Finding]:
    found = []
    if facts.algorithm and not facts.trainable:
        found.append(Finding("strategy", "algo.not_trainable", {"algorithm": facts.algorithm}))
    if d.curve is None:
        found.append(Finding("strategy", "curve.none", {"episodes": 0}))
    else:
        found += _curve_strategy(facts, d.curve)
    if any(f.code == "explore.exhausted" for f in hyper_found):
        actors = int(number(facts.hyperparameters, "num_workers") or 1) * int(
            number(facts.hyperparameters, "envs_per_worker") or 1
        )
        found.append(
            Finding(
                "strategy",
                "explore.apex",
                {"actors": actors},
                parameter="exploration",
                current="linear",
                value="apex",
                source=HORGAN,
            )
        )
    found += _system_strategy(facts, d.system)
    return found
