"""Returns against rl-baselines3-zoo: does runt reach the zoo's published return within the
zoo's env-step budget?

Contenders (each with runt's preset in configs/, which carries the zoo's hyperparameters
and says where it differs): PPO and SAC on Pendulum-v1, DQN and PPO on Acrobot-v1. They
train in runt's serial loop (actors/algorithms/serial.py: the learners, collectors,
buffers and evaluation of the distributed path in one process, without the broker), so
the figures are about the algorithms, not about distribution. Every `--eval-every` env
steps (the presets' cadence) the greedy policy plays 10 episodes; reported per seed are
the env steps of the first evaluation whose mean reaches the zoo's mean return, and the
last evaluation's mean at the end of the zoo's budget (or when reached, with
`--until-reached`). A uniformly random policy is measured in the same run on the same
evaluation seeds, as the floor.

    python bench/zoo_returns.py [--seeds 3] [--first-seed 0] [--only ppo-pendulum,...]
                                [--until-reached] [--time-cap 900]

Target per contender: reached within the budget, i.e. steps/budget <= 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from actors.algorithms.evaluate import evaluate  # noqa: E402
from actors.algorithms.serial import SerialRun  # noqa: E402
from bench.benchlib import fmt, load_preset, median, print_table  # noqa: E402
from schemas.messages import RunSpec  # noqa: E402

EVAL_EPISODES = 10


@dataclass(frozen=True)
class Zoo:
    """One row of rl-baselines3-zoo's benchmark.md: the mean (std) return of its trained
    agent, deterministic policy, and the env steps it was trained for (n_timesteps).
    Source: https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/benchmark.md
    (table "Performance of trained agents"); hyperparameters: its hyperparams/*.yml,
    as cited in each preset."""

    mean: float
    std: float
    budget: int


@dataclass(frozen=True)
class Contender:
    name: str
    preset: str
    zoo: Zoo
    eval_every_updates: int  # runt updates between evaluations (see eval_steps)
    eval_steps: int  # env steps those updates take (for the report)


CONTENDERS = [
    # benchmark.md: ppo Pendulum-v1 -172.225 +- 104.159, 100k steps
    Contender("ppo-pendulum", "ppo_pendulum.yaml", Zoo(-172.225, 104.159, 100_000), 1, 4096),
    # benchmark.md: sac Pendulum-v1 -156.995 +- 88.714, 20k steps
    Contender("sac-pendulum", "sac_pendulum.yaml", Zoo(-156.995, 88.714, 20_000), 1000, 1000),
    # benchmark.md: dqn Acrobot-v1 -76.639 +- 11.752, 100k steps
    Contender("dqn-acrobot", "dqn_acrobot.yaml", Zoo(-76.639, 11.752, 100_000), 2500, 2500),
    # benchmark.md: ppo Acrobot-v1 -73.506 +- 18.201, 1M steps (zoo also uses VecNormalize)
    Contender("ppo-acrobot", "ppo_acrobot.yaml", Zoo(-73.506, 18.201, 1_000_000), 5, 20_480),
]


@dataclass
class Trial:
    seed: int
    reached_at: int | None  # env steps of the first evaluation >= the zoo's mean
    final: float  # the last evaluation's mean
    env_steps: int
    wall_s: float


def spec_for(contender: Contender, seed: int, until_reached: bool) -> RunSpec:
    preset = load_preset(REPO / "configs" / contender.preset)
    hyper = dict(preset.get("hyperparameters", {}))
    hyper["eval_interval_updates"] = contender.eval_every_updates
    hyper["eval_episodes"] = EVAL_EPISODES
    fields = {k: v for k, v in preset.items() if k not in ("hyperparameters", "stop_reward")}
    fields["target_episode"] = 10**9  # the env-step budget ends the run
    stop = contender.zoo.mean if until_reached else None
    return RunSpec(run_id=1, seed=seed, stop_reward=stop, hyperparameters=hyper, **fields)


def train(contender: Contender, seed: int, until_reached: bool, time_cap: float) -> Trial:
    spec = spec_for(contender, seed, until_reached)
    run = SerialRun(spec)
    result = run.run(max_env_steps=contender.zoo.budget, time_limit_s=time_cap)
    reached = next((e for e in result.evaluations if e.mean >= contender.zoo.mean), None)
    if result.solved_at is not None:
        final = result.solved_at.mean
    else:  # the policy the budget ended with
        run.evaluate_greedy()
        final = run.result.evaluations[-1].mean
    return Trial(
        seed,
        reached.env_steps if reached else None,
        final,
        result.env_steps,
        result.wall_time_s,
    )


def random_return(env_id: str, seed: int) -> float:
    class Uniform:
        def __init__(self) -> None:
            self.space = gym.make(env_id).action_space
            self.space.seed(seed)

        def greedy(self, obs: np.ndarray) -> np.ndarray:
            return np.array([self.space.sample() for _ in range(len(obs))])

    return evaluate(Uniform(), env_id, {}, EVAL_EPISODES, seed=seed + 10_000).mean


def report(contender: Contender, trials: list[Trial], random_mean: float) -> list[Any]:
    zoo = contender.zoo
    reached = [t.reached_at for t in trials if t.reached_at is not None]
    steps = median(reached) if len(reached) * 2 > len(trials) else None  # most seeds
    return [
        contender.name,
        f"{zoo.mean:.1f} ± {zoo.std:.1f}",
        f"{zoo.budget:,}",
        f"{random_mean:.1f}",
        fmt(median([t.final for t in trials])),
        " ".join(f"{t.final:.0f}" for t in trials),
        f"{len(reached)}/{len(trials)}",
        "-" if steps is None else f"{steps:,.0f}",
        "-" if steps is None else f"{steps / zoo.budget:.2f}",
        fmt(median([t.wall_s for t in trials]), ".0f"),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated contender names")
    parser.add_argument(
        "--until-reached", action="store_true", help="stop a seed once it reaches the zoo"
    )
    parser.add_argument("--time-cap", type=float, default=1800, help="seconds per seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = set(filter(None, args.only.split(",")))
    chosen = [c for c in CONTENDERS if not wanted or c.name in wanted]
    if wanted - {c.name for c in chosen}:
        raise SystemExit(f"unknown contenders: {', '.join(wanted - {c.name for c in chosen})}")
    torch.set_num_threads(1)  # small networks; as the actors run
    rows = []
    for contender in chosen:
        env_id = load_preset(REPO / "configs" / contender.preset)["env_id"]
        trials = []
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        for seed in seeds:
            started = time.perf_counter()
            trial = train(contender, seed, args.until_reached, args.time_cap)
            trials.append(trial)
            print(
                f"{contender.name} seed {seed}: final {trial.final:.1f}, reached at "
                f"{trial.reached_at} env steps, {trial.env_steps} steps in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        random_mean = statistics.mean(random_return(env_id, s) for s in seeds)
        rows.append(report(contender, trials, random_mean))
    print()
    print_table(
        [
            "contender",
            "zoo return",
            "zoo budget",
            "random",
            "runt final (median)",
            "per seed",
            "reached",
            "steps to zoo (median)",
            "steps/budget",
            "s/seed",
        ],
        rows,
    )
    print("\ntarget: reached within the zoo's budget (steps/budget <= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
