"""The benchmark's tables: one row per trial, medians per contender, ratios."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from typing import Any

from benchlib import median, print_table

from solve.common import DIAGNOSTIC, EVAL_EPISODES, RUNT, SOLVED_MEAN, TORCH_THREADS, Trial


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return "unsolved" if math.isinf(value) else f"{value:.1f}"


def steps(value: float | None) -> str:
    if value is None:
        return "-"
    return "unsolved" if math.isinf(value) else f"{value:,.0f}"


def after_startup(trial: Trial) -> float:
    return trial.wall_s - (trial.startup_s or 0.0)


def without_eval(trial: Trial) -> float:
    return trial.wall_s - (trial.eval_s or 0.0)


def report(
    trials: list[Trial], args: argparse.Namespace, every: dict[str, int], presets: dict
) -> dict:
    workers = {
        algorithm: args.num_workers or preset.get("num_workers", 1)
        for algorithm, preset in presets.items()
    }
    print(
        f"\ntime to solve {presets['dqn']['env_id']} (greedy mean of {EVAL_EPISODES} episodes "
        f">= {SOLVED_MEAN:g}), evaluated every {every['dqn']} env steps (DQN contenders) or "
        f"{every['ppo']} (PPO), inline eval time counted; torch threads {TORCH_THREADS}; cap "
        f"{args.time_cap:g} s; runt: {workers['dqn']} (DQN) / {workers['ppo']} (PPO) rollout "
        f"worker(s), submitted via {args.submit}"
    )
    print_table(
        (
            "contender",
            "seed",
            "solved",
            "wall s",
            "startup s",
            "after s",
            "eval s",
            "env steps",
            "evals",
            "best",
            "note",
        ),
        [
            (
                t.contender,
                t.seed,
                "yes" if t.solved else "no",
                seconds(t.wall_s),
                seconds(t.startup_s),
                seconds(after_startup(t)),
                seconds(t.eval_s),
                steps(t.env_steps),
                t.evaluations,
                "-" if t.best_mean is None else f"{t.best_mean:.0f}",
                t.note or "",
            )
            for t in trials
        ],
    )
    summary: dict[str, dict[str, Any]] = {}
    for name in args.contenders:
        mine = [t for t in trials if t.contender == name]
        summary[name] = {
            "solved": sum(t.solved for t in mine),
            "trials": len(mine),
            "median_wall_s": median([t.wall_s for t in mine]),
            "median_after_startup_s": median([after_startup(t) for t in mine]),
            "median_without_eval_s": median([without_eval(t) for t in mine]),
            "median_env_steps": median([t.env_steps for t in mine]),
            "median_startup_s": median([t.startup_s for t in mine if t.startup_s is not None]),
        }
    print()
    print_table(
        (
            "contender",
            "solved",
            "median wall s",
            "median after startup s",
            "median env steps",
            "median startup s",
        ),
        [
            (
                name,
                f"{s['solved']}/{s['trials']}",
                seconds(s["median_wall_s"]),
                seconds(s["median_after_startup_s"]),
                steps(s["median_env_steps"]),
                seconds(s["median_startup_s"]),
            )
            for name, s in summary.items()
        ],
    )
    ratios = {}
    for mine in (c for c in RUNT if c in summary):
        print()
        for base in (c for c in summary if c not in RUNT):
            wall = _ratio(summary[mine]["median_wall_s"], summary[base]["median_wall_s"])
            after = _ratio(
                summary[mine]["median_after_startup_s"], summary[base]["median_after_startup_s"]
            )
            # The baselines evaluate inline; runt's evaluator plays beside its trainer.
            # This ratio charges neither side for evaluating: a diagnostic, not the target.
            no_eval = _ratio(
                summary[mine]["median_without_eval_s"], summary[base]["median_without_eval_s"]
            )
            if base in DIAGNOSTIC:  # what distribution costs, not a target
                verdict, target = "-", ""
            else:
                verdict = "-" if wall is None else ("PASS" if wall <= 1.0 else "MISS")
                target = f" (target <= 1.0) -> {verdict}"
            # "runt/<base>" for the DQN preset; "runt-ppo/<base>" for PPO's
            ratios[base if mine == "runt" else f"{mine}/{base}"] = {
                "wall": wall,
                "after_startup": after,
                "without_eval": no_eval,
                "verdict": verdict,
            }
            print(
                f"ratio {mine}/{base} of median wall-clock time: {_show(wall)}{target};  "
                f"after startup: {_show(after)};  without {base}'s evaluation time: "
                f"{_show(no_eval)}"
            )
    return {
        "eval_every_env_steps": every,
        "time_cap_s": args.time_cap,
        "submit": args.submit,
        "trials": [asdict(t) for t in trials],
        "summary": summary,
        "ratios": ratios,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isinf(a) or math.isinf(b):
        return None
    return a / b


def _show(value: float | None) -> str:
    return "n/a (unsolved)" if value is None else f"{value:.2f}"


def print_trial(t: Trial) -> None:
    result = f"solved in {t.wall_s:.1f} s, {t.env_steps:,.0f} env steps" if t.solved else "unsolved"
    print(
        f"{t.contender} seed {t.seed}: {result} ({t.evaluations} evaluations) {t.note}", flush=True
    )
