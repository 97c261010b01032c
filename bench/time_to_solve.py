"""Wall-clock time and env steps until the greedy policy first scores >= 475 on
CartPole-v1: runt's DQN and PPO over RabbitMQ against stable-baselines3's tuned DQN and
PPO.

What it measures
----------------
"Solved" is the same for every contender: the mean return of 10 greedy episodes (no
exploration) reaches 475, Gymnasium's reward_threshold for CartPole-v1. Each contender
is evaluated every N env steps, where N is what runt's trainer of the same algorithm
does between two evaluations: for DQN ``eval_interval_updates x batch_size /
samples_per_insert`` of the preset (500 env steps with 250 / 64 / 32), because the
buffer's rate limiter fixes updates per env step; for PPO ``eval_interval_updates x
num_workers x envs_per_worker x n_steps`` (512 with 2 / 1 / 8 / 32). The baselines
evaluate inline, in their training loop, with runt's own `actors.algorithms.evaluate.evaluate` (10
sub-environments, one episode each, seeds fresh per evaluation), so an evaluation costs
each of them what it costs runt for a policy of the same quality; their clock runs
through it. runt evaluates as it is deployed: its trainer sends the policy to the run's
evaluator actor and learns on while that plays on another core (actors/roles/evaluator.py).
Each baseline trial reports the seconds it spent evaluating ("eval s"), and the report
prints a third ratio with those seconds taken out, which charges neither side for
evaluating (a diagnostic; the target is the wall-clock ratio). torch runs 1 thread in every
process (runt's actor processes set it in `actors.agent.runner`, the baselines set it before
training), and every contender trains at the same CPU priority: the agent is started
with ``agent.actor_nice`` 0 (``--actor-nice``), since a deployment's default of 10 hands
runt's actors' CPU to whatever else runs on a shared machine while the baselines keep
theirs, which measures that load rather than runt.

Contenders (``--only`` picks some, comma-separated):

* ``runt``: the deployment path. Per trial: a fresh broker prefix, an agent started
  as ``python -m cli.main agent`` with RUNT_BROKER_URL / RUNT_BROKER_PREFIX (the timing
  starts only once it consumes the work queue, as a deployed agent would), the web app
  (`web.app.init_app`, served on a free 127.0.0.1 port, on a MariaDB database of this
  benchmark's own) and the preset (configs/dqn_cartpole.yaml, read when this runs) with
  ``stop_reward: 475``, the trial's seed and ``num_workers`` from the preset or
  ``--num-workers`` POSTed to ``/train/``. The clock runs from that POST to the arrival
  of the first ``run.<id>.evaluation`` event with mean >= 475, read from a tap queue
  on the broker; its env steps are the event's. So it includes starting the trainer,
  buffer and rollout processes ("startup": until the trainer and every worker report
  ``running``), and the web service ingesting every event into MariaDB on the same two
  cores. ``--submit broker`` instead publishes the run's `StartRun` command directly
  (no web service, no database), to see what ingestion costs.
* ``runt-ppo``: the same with the PPO preset (configs/ppo_cartpole.yaml, ``--ppo-preset``):
  its like-for-like match is ``sb3-ppo``.
* ``sb3-dqn``: stable-baselines3 DQN with the rl-baselines3-zoo CartPole-v1
  hyperparameters (ZOO_DQN in bench/solve/baselines.py), 1 env.
* ``sb3-ppo``: stable-baselines3 PPO with the zoo CartPole-v1 hyperparameters
  (ZOO_PPO there), 8 envs in a DummyVecEnv.
* ``runt-serial`` (a diagnostic, run only when named in ``--only``): the same preset
  and DQN components in one process (`actors.algorithms.serial.SerialRun`): no broker, no actor
  processes, so its gap to ``runt`` is what distribution costs.

Each of the last three (sb3-dqn, sb3-ppo, runt-serial) runs in a fresh process of this
script per trial; its clock runs from that process's launch (interpreter and import
start-up is reported as "startup") to the solved evaluation (timed in the child from the
end of its start-up). The stable-baselines3 trials train for at most the zoo's
``n_timesteps`` (their exploration and linear schedules are defined over that budget,
and PPO's learning rate and clip range reach 0 there), so such a trial can end "budget"
unsolved. Every trial also ends at ``--time-cap`` seconds.

Report: one row per trial, then per contender the solved fraction and the medians of
wall-clock time, of time after startup and of env steps (an unsolved trial counts as
infinitely long, so a median is "unsolved" when half or more did not solve), then the
ratios runt/baseline and runt-ppo/baseline of the median wall-clock times (target <=
1.0), and the same ratios for time after startup and without the baselines' evaluation
time. Trials are interleaved (seed 0 of every contender, then seed 1, ...), so a change
in machine load hits every contender alike. Exit status 0 whatever the verdict; 1 if setup fails.

How to run
----------
From the repository root, with RabbitMQ on 127.0.0.1:5672 (guest/guest) and MariaDB on
127.0.0.1:3306 (root, no password), and ``pip install -e '.[bench]'``::

    .venv/bin/python bench/time_to_solve.py [--seeds 3] [--time-cap 300]
        [--only runt,sb3-dqn,sb3-ppo[,runt-serial]] [--quick] [--num-workers N] [--actor-nice 0]
        [--first-seed 0] [--submit web|broker] [--preset configs/dqn_cartpole.yaml]
        [--ppo-preset configs/ppo_cartpole.yaml] [--broker URL] [--database-url URL] [--json]

``--quick`` is a smoke check: 1 seed and a 120 s cap unless given. A run with the defaults
takes minutes; the figures move a lot with other load on the machine (the load average is
printed at the start and the end).
Broker prefixes (``benchtts<random>``) are deleted after each trial and the database
(``runt_bench_tts_<pid>``) at the end, also on failure or SIGINT/SIGTERM; agents and
their actor processes are stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    DEFAULT_BROKER,
    DEFAULT_PRESET,
    drop_database,
    interrupt_on_sigterm,
    load_preset,
)
from solve.baselines import run_child_trial, sb3_child, serial_child
from solve.common import (
    ALGORITHM,
    CONTENDERS,
    DEFAULT_DATABASE_SERVER,
    DIAGNOSTIC,
    PPO_PRESET,
    RUNT,
    Trial,
    runt_eval_interval,
)
from solve.report import print_trial, report
from solve.runt import create_database, run_runt_trial


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, help="trials per contender (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first..first+n-1")
    parser.add_argument("--time-cap", type=float, help="seconds per trial (default 300)")
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated subset of %(default)s"
    )
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 seed, 120 s cap")
    parser.add_argument("--num-workers", type=int, help="runt rollout workers (default: preset)")
    parser.add_argument(
        "--actor-nice",
        type=int,
        default=0,
        help="the agent's agent.actor_nice (default %(default)s: the baselines' priority)",
    )
    parser.add_argument(
        "--submit",
        choices=("web", "broker"),
        default="web",
        help="runt: POST /train/ to the web app (default) or StartRun straight to the broker",
    )
    parser.add_argument("--preset", default=str(DEFAULT_PRESET), help="runt's DQN preset")
    parser.add_argument("--ppo-preset", default=str(PPO_PRESET), help="runt-ppo's preset")
    parser.add_argument(
        "--broker",
        default=os.environ.get("RUNT_BENCH_AMQP_URL", DEFAULT_BROKER),
        help="amqp:// URL (default: $RUNT_BENCH_AMQP_URL or %(default)s)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RUNT_BENCH_DATABASE_URL", DEFAULT_DATABASE_SERVER),
        help="MariaDB/MySQL server for --submit web (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    # internal: one stable-baselines3 trial in a child process
    children = [c for c in CONTENDERS if c not in RUNT] + list(DIAGNOSTIC)
    parser.add_argument("--child", choices=children, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--eval-every", type=int, default=500, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.contenders = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(args.contenders) - set(CONTENDERS + DIAGNOSTIC)
    if unknown or not args.contenders:
        parser.error(f"--only: choose from {', '.join(CONTENDERS + DIAGNOSTIC)}")
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.time_cap is None:
        args.time_cap = 120.0 if args.quick else 300.0
    return args


async def run_all(
    args: argparse.Namespace, presets: dict[str, dict[str, Any]], every: dict[str, int]
) -> list[Trial]:
    database_url = None
    trials: list[Trial] = []
    try:
        if set(RUNT) & set(args.contenders) and args.submit == "web":
            database_url = await asyncio.to_thread(create_database, args.database_url)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for contender in args.contenders:
                algorithm = ALGORITHM[contender]
                if contender in RUNT:
                    preset = presets[algorithm]
                    trial = await run_runt_trial(args, contender, preset, seed, database_url)
                else:
                    interval = every[algorithm]
                    trial = await asyncio.to_thread(
                        run_child_trial, args, contender, seed, interval
                    )
                print_trial(trial)
                trials.append(trial)
    finally:
        if database_url is not None:
            drop_database(database_url)
    return trials


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    if args.child == "runt-serial":
        return serial_child(args)
    if args.child:
        return sb3_child(args)
    presets = {"dqn": load_preset(args.preset), "ppo": load_preset(args.ppo_preset)}
    every = {algorithm: runt_eval_interval(preset) for algorithm, preset in presets.items()}
    print(
        f"contenders {', '.join(args.contenders)}; seeds {args.first_seed}.."
        f"{args.first_seed + args.seeds - 1}; evaluation every {every['dqn']} (DQN) / "
        f"{every['ppo']} (PPO) env steps; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        trials = asyncio.run(run_all(args, presets, every))
    except (RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (broker prefixes, database and processes cleaned up)", file=sys.stderr)
        return 130
    out = report(trials, args, every, presets)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
