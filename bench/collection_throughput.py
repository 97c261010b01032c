"""Env steps per second of ONE runt rollout worker shipping its experience through the
broker, against a plain in-process loop of the same environments and policy.

What it measures
----------------
Both sides play CartPole-v1 (the preset's `env_id`) in `envs_per_worker` sub-environments
of one `actors.envs.build.make_vector_env` (SyncVectorEnv, SAME_STEP autoreset), choose actions
with the same `actors.algorithms.dqn.QPolicy` (the preset's `hidden` widths, built from
the run seed)
and the same epsilon schedule (`DQNConfig.exploration_schedule()`; the greedy forward
pass runs every step whatever epsilon is, so its cost does not depend on it). torch uses
one thread on both sides, as `actors.agent.runner` sets it.

* ``plain loop`` (the baseline): ``policy.act`` + ``envs.step`` in a loop in this
  process; no transitions kept, nothing published.
* ``runt worker``: the real `actors.roles.rollout.RolloutWorker`. With an amqp:// broker it is
  started as the agent starts it, ``python -m actors.agent.runner --role rollout`` with the
  spec on stdin and RUNT_BROKER_URL / RUNT_BROKER_PREFIX in its environment, so it has a
  process (and a core) of its own, at the baseline's priority: an agent's actors run
  at ``agent.actor_nice`` (10 by default), which on a busy machine hands the worker's
  CPU to everything else running and measures that load, not the worker; pass
  ``--actor-nice 10`` to measure it as deployed. With ``--broker memory://`` the
  in-process transport cannot cross processes, so the worker is a thread of this
  process, launched as `runt up` launches it (`actors.agent.launch.ThreadLauncher`).
  It builds `Transition` batches, encodes a frame every `FRAME_BYTES` of transitions (or
  `FRAME_MAX_AGE_S`),
  publishes it without a confirm (bulk data), reports finished episodes in one
  persistent `episodes` event every 0.25 s (confirmed in a publishing thread of its
  own), and polls its weights queue every 10 ms.
  This process drains the experience queue and the durable event-log queue (a quorum
  queue bound to every run event, as the web service declares it, so episode publishes
  wait for the same confirms as in a deployment) every 20 ms, so nothing backs up;
  steps/s are read at this consumer, from the cumulative
  ``env_steps`` in the headers of the experience frames received.

The worker's "waiting for the learner" throttle is switched off by giving the spec a
``learning_starts`` (and ``buffer_size``) of 10**12: at policy version 0 the worker only
pauses after ``4 x learning_starts`` steps, which it never reaches, and no weights are
ever published, so it stays at version 0. Feeding it weights instead would add a
trainer's publishing to the measurement and still pause the worker whenever it ran ahead
of them; the throttle paces collection to learning and is not what is measured here.
Nothing else in the worker reads ``learning_starts``.

Each side runs ``--repeats`` times, alternating, each for ``--warmup`` seconds unmeasured
(counted from its first step, i.e. after process start-up) and then ``--duration``
seconds measured. The table shows the median steps/s of each side, the CPU use of each
loop's process (the worker's with amqp:// only) and the ratio runt/baseline of the
medians; the target is >= 0.8. On a shared machine the worker, which competes with
RabbitMQ and this process's consumer, may get less of a core than the baseline did, so
the ratio of steps per CPU second is printed too, as a diagnostic of the loops' own costs.
The exit status is 0 whatever the ratio; it is 1 when the worker fails or sends nothing.

How to run
----------
From the repository root, with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    .venv/bin/python bench/collection_throughput.py [--broker URL | --broker memory://]
        [--duration 10] [--warmup 3] [--repeats 3] [--envs-per-worker N]
        [--preset configs/dqn_cartpole.yaml] [--seed 0] [--actor-nice 0] [--json]

``--envs-per-worker`` defaults to the preset's. A run takes about 1.5 minutes with the
defaults. The broker prefix (``benchcol<random>``) is fresh per repeat; its queues and
exchanges are deleted afterwards, also on failure, and the worker process is stopped
with the run's stop command, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from benchlib import (
    DEFAULT_BROKER,
    DEFAULT_PRESET,
    REPO,
    delete_prefix,
    end_process,
    fmt,
    fresh_prefix,
    interrupt_on_sigterm,
    load_preset,
    median,
    print_table,
    process_cpu_seconds,
    run_queue_names,
)

from actors.agent.launch import ActorId, ThreadChild, ThreadLauncher
from actors.algorithms.dqn import DQNConfig, QPolicy
from actors.algorithms.explore import actor_ids
from actors.envs.build import EnvSpaces, make_vector_env
from actors.roles.rollout import worker_seed
from broker.codec import decode_frame
from broker.sync import make_bus
from broker.topology import Topology
from schemas.api import TrainRequest
from schemas.messages import RunSpec, StatusChanged, StopRun, decode_message

TARGET_RATIO = 0.8
NEVER = 10**12  # learning_starts the worker never reaches: its throttle stays off
RUN_ID = 1
FIRST_FRAME_TIMEOUT_S = 60.0
DRAIN_EVERY_S = 0.02  # the consumer wakes this often and takes everything waiting


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--broker",
        default=os.environ.get("RUNT_BENCH_AMQP_URL", DEFAULT_BROKER),
        help="amqp:// URL (default: $RUNT_BENCH_AMQP_URL or %(default)s) or memory://",
    )
    parser.add_argument("--preset", default=str(DEFAULT_PRESET), help="training preset YAML")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per side")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--envs-per-worker", type=int, help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--actor-nice",
        type=int,
        default=0,
        help="niceness of the worker process (agent.actor_nice; default 0: the baseline's)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    return parser.parse_args(argv)


def collection_spec(preset: dict, envs_per_worker: int | None, seed: int) -> RunSpec:
    """The preset as the web service would hand it to a worker, with the throttle off."""
    req = TrainRequest(**{**preset, "seed": seed, "num_workers": 1})
    hyper = {**req.hyperparameters, "learning_starts": NEVER}
    if envs_per_worker is not None:
        hyper["envs_per_worker"] = envs_per_worker
    spec = RunSpec(
        run_id=RUN_ID,
        algorithm=req.algorithm,
        env_id=req.env_id,
        env_params=req.env_params,
        hyperparameters=hyper,
        learning_rate=req.learning_rate,
        batch_size=req.batch_size,
        buffer_size=NEVER,
        gamma=req.gamma,
        seed=seed,
        num_workers=1,
        target_episode=NEVER,
        stop_reward=None,
    )
    DQNConfig.from_spec(spec)  # fail here with the field at fault
    return spec


@dataclass
class Measurement:
    side: str
    steps_per_s: float
    env_steps: int  # measured
    seconds: float  # measured
    frames: int = 0  # experience frames received in the window (runt)
    episodes: int = 0  # episode events received in the window (runt)
    # CPU seconds / wall seconds of the loop's process (the worker's with amqp://, this
    # process's for the baseline; none for a memory:// worker, a thread of this process)
    worker_cpu: float | None = None

    @property
    def steps_per_cpu_s(self) -> float | None:
        return self.steps_per_s / self.worker_cpu if self.worker_cpu else None


class Window:
    """Marks (time, cumulative env steps) and keeps the first mark after the warm-up and
    the last one before its end."""

    def __init__(self, warmup: float, duration: float):
        self.warmup, self.duration = warmup, duration
        self.first_seen: float | None = None
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def mark(self, now: float, steps: int) -> bool:
        """Record a mark; True once the window is over."""
        if self.first_seen is None:
            self.first_seen = now
        elapsed = now - self.first_seen
        if elapsed < self.warmup:
            return False
        if self.start is None:
            self.start = (now, steps)
            return False
        if now - self.start[0] > self.duration:
            return True
        self.end = (now, steps)
        return False

    def rate(self) -> tuple[float, int, float]:
        if self.start is None or self.end is None:
            raise RuntimeError("no measurement: the window never filled")
        seconds = self.end[0] - self.start[0]
        steps = self.end[1] - self.start[1]
        return steps / seconds, steps, seconds


# ---- the baseline ----------------------------------------------------------------------------


def plain_loop(spec: RunSpec, warmup: float, duration: float) -> Measurement:
    """The same envs, policy and exploration as the worker, without shipping anything."""
    config = DQNConfig.from_spec(spec)
    seed = worker_seed(spec.seed, 0, 0)
    envs = make_vector_env(spec.env_id, spec.env_params, config.envs_per_worker, seed)
    try:
        obs, _ = envs.reset(seed=seed)
        policy = QPolicy.from_spaces(EnvSpaces.from_env(envs), config.hidden, seed=spec.seed)
        schedule = config.exploration_schedule()
        actors = actor_ids(0, config.envs_per_worker)
        rng = np.random.default_rng(seed)
        window, steps = Window(warmup, duration), 0
        cpu_mark: tuple[float, float] | None = None  # (wall, CPU) when the window opened
        while not window.mark(time.perf_counter(), steps):
            if cpu_mark is None and window.start is not None:
                cpu_mark = (time.perf_counter(), time.process_time())
            epsilons = schedule.epsilons(actors, steps)
            actions = policy.act(obs, epsilons, rng)
            obs, _rewards, _terminated, _truncated, _infos = envs.step(actions)
            steps += envs.num_envs
        cpu = (time.process_time() - cpu_mark[1]) / (time.perf_counter() - cpu_mark[0])
    finally:
        envs.close()
    rate, measured, seconds = window.rate()
    return Measurement("plain loop (baseline)", rate, measured, seconds, worker_cpu=cpu)


# ---- the runt worker -------------------------------------------------------------------------


class WorkerHandle:
    """The rollout worker under test: a process (amqp://) or a thread (memory://)."""

    def __init__(self, spec: RunSpec, url: str, prefix: str, nice: int = 0):
        self.proc: subprocess.Popen | None = None
        self.child: ThreadChild | None = None
        if url.startswith("memory://"):
            # Launched as `runt up` launches it, which also gives the thread its own torch
            # setting of one thread (the count is per thread: without it a tiny forward
            # pass waits on a pool of busy threads).
            topology = Topology(prefix)
            launcher = ThreadLauncher("bench", lambda name: make_bus(url, topology, name), topology)
            self.child = launcher.launch(ActorId("rollout", RUN_ID), spec)
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
        env.update(
            RUNT_BROKER_URL=url,
            RUNT_BROKER_PREFIX=prefix,
            RUNT_LOG_FORMAT="text",
            RUNT_LOG_LEVEL="WARNING",
            RUNT_AGENT_ACTOR_NICE=str(nice),
            PYTHONPATH=str(REPO),
        )
        command = [
            sys.executable,
            "-m",
            "actors.agent.runner",
            "--role",
            "rollout",
            "--agent",
            "bench",
        ]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, cwd=REPO)
        self.proc.stdin.write(spec.model_dump_json().encode())
        self.proc.stdin.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def failure(self) -> BaseException | None:
        return self.child.failure if self.child else None

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.child is not None and self.child.alive()

    def stop(self) -> None:
        if self.child is not None:
            self.child.terminate()
            self.child.thread.join(timeout=10)
        elif self.proc is not None:
            end_process(self.proc, grace=10.0)


class Drain:
    """This process's side: takes every experience frame and run event off the broker,
    marks the window from the frames' cumulative env steps and counts what arrived."""

    def __init__(self, window: Window):
        self.window = window
        self.done = threading.Event()
        self.failed = ""
        self.frames = self.episodes = 0  # inside the measured window

    def on_experience(self, delivery) -> None:
        header, _arrays = decode_frame(delivery.body)
        self.frames += self.window.start is not None
        if self.window.mark(time.perf_counter(), header.env_steps):
            self.done.set()

    def on_event(self, delivery) -> None:
        event = decode_message(delivery.body)
        if isinstance(event, StatusChanged) and event.status == "failed":
            self.failed = event.reason or "failed"
        elif event.type in ("episode", "episodes"):
            count = len(event.rewards) if event.type == "episodes" else 1
            self.episodes += count if self.window.start is not None else 0


def drain_until_done(bus, drain: Drain, worker: WorkerHandle) -> float | None:
    """Drain every DRAIN_EVERY_S until the window is over; the worker's CPU use in it."""
    started = time.monotonic()
    cpu_mark: tuple[float, float] | None = None
    while not drain.done.is_set():
        time.sleep(DRAIN_EVERY_S)  # drain in batches: less CPU taken from the worker
        bus.poll(0)
        if drain.failed or not worker.alive():
            raise RuntimeError(f"the rollout worker failed: {drain.failed or worker.failure}")
        if drain.window.first_seen is None and time.monotonic() - started > FIRST_FRAME_TIMEOUT_S:
            raise RuntimeError("the rollout worker sent no experience within 60 s")
        if cpu_mark is None and drain.window.start is not None and worker.pid:
            cpu_mark = (time.perf_counter(), process_cpu_seconds(worker.pid) or 0.0)
    if cpu_mark is None or not worker.pid:
        return None
    used = (process_cpu_seconds(worker.pid) or 0.0) - cpu_mark[1]
    return used / (time.perf_counter() - cpu_mark[0])


def runt_worker(
    spec: RunSpec, url: str, warmup: float, duration: float, nice: int = 0
) -> Measurement:
    prefix = fresh_prefix("col")
    topology = Topology(prefix)
    bus = make_bus(url, topology, "bench-drain")
    worker: WorkerHandle | None = None
    try:
        bus.connect()
        drain = Drain(Window(warmup, duration))
        experience = topology.experience(RUN_ID)
        events = topology.event_log()  # durable quorum queue, as the web service has it
        bus.declare(experience, events)
        bus.consume(experience, drain.on_experience, prefetch=256)
        bus.consume(events, drain.on_event, prefetch=1000)
        worker = WorkerHandle(spec, url, prefix, nice)
        cpu = drain_until_done(bus, drain, worker)
        rate, measured, seconds = drain.window.rate()
        side = f"runt worker ({'amqp' if url.startswith('amqp') else 'memory'})"
        return Measurement(side, rate, measured, seconds, drain.frames, drain.episodes, cpu)
    finally:
        if worker is not None:
            if worker.proc is not None and worker.alive():
                stop = StopRun(run_id=RUN_ID, status="stopped", reason="benchmark over")
                bus.publish_message(topology.commands, topology.stop_key(RUN_ID), stop)
            worker.stop()
        bus.close()
        delete_prefix(url, prefix, run_queue_names(topology, RUN_ID, workers=1))


# ---- report ----------------------------------------------------------------------------------


def report(results: list[Measurement], spec: RunSpec, args: argparse.Namespace) -> dict:
    config = DQNConfig.from_spec(spec)
    print(
        f"\ncollection throughput: {spec.env_id}, {config.envs_per_worker} envs per worker, "
        f"Q-network {list(config.hidden)}, {config.exploration} exploration, torch threads 1, "
        f"{args.repeats} x ({args.warmup:g} s warm-up + {args.duration:g} s measured) per side, "
        f"worker niceness {args.actor_nice}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = []
    for r in results:
        cpu = fmt(100 * r.worker_cpu, ".0f") + "%" if r.worker_cpu is not None else "-"
        frames = str(r.frames) if r.frames else "-"
        episodes = str(r.episodes) if r.episodes else "-"
        steps = f"{r.steps_per_s:,.0f}"
        rows.append((r.side, steps, r.env_steps, f"{r.seconds:.1f}", frames, episodes, cpu))
    print_table(("run", "steps/s", "env steps", "s", "frames", "episodes", "cpu"), rows)

    by_side: dict[str, list[float]] = {}
    for r in results:
        by_side.setdefault(r.side, []).append(r.steps_per_s)
    baseline_side = next(s for s in by_side if s.startswith("plain"))
    runt_side = next(s for s in by_side if s.startswith("runt"))
    base, runt = median(by_side[baseline_side]), median(by_side[runt_side])
    ratio = runt / base
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print()
    print_table(
        ("side", "median steps/s"),
        [(baseline_side, f"{base:,.0f}"), (runt_side, f"{runt:,.0f}")],
    )
    print(f"\nratio runt/baseline: {ratio:.2f}  (target >= {TARGET_RATIO}) -> {verdict}")
    per_cpu = cpu_ratio(results, baseline_side, runt_side)
    if per_cpu is not None:  # the loops' own costs, whatever else the cores were doing
        print(f"ratio of steps per CPU second (diagnostic): {per_cpu:.2f}")
    return {
        "env_id": spec.env_id,
        "envs_per_worker": config.envs_per_worker,
        "broker": "memory" if args.broker.startswith("memory") else "amqp",
        "actor_nice": args.actor_nice,
        "runs": [asdict(r) for r in results],
        "median_steps_per_s": {baseline_side: base, runt_side: runt},
        "ratio": ratio,
        "ratio_per_cpu_s": per_cpu,
        "target": TARGET_RATIO,
        "verdict": verdict,
    }


def cpu_ratio(results: list[Measurement], baseline_side: str, runt_side: str) -> float | None:
    """Median steps per CPU second, runt over baseline: what each loop costs per step,
    apart from how much of a core it got (the machine may be shared)."""
    per_side = {
        side: [r.steps_per_cpu_s for r in results if r.side == side and r.steps_per_cpu_s]
        for side in (baseline_side, runt_side)
    }
    if not all(per_side.values()):
        return None
    return median(per_side[runt_side]) / median(per_side[baseline_side])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    torch.set_num_threads(1)
    spec = collection_spec(load_preset(args.preset), args.envs_per_worker, args.seed)
    results: list[Measurement] = []
    try:
        for repeat in range(args.repeats):
            for side in ("baseline", "runt"):
                if side == "baseline":
                    result = plain_loop(spec, args.warmup, args.duration)
                else:
                    result = runt_worker(
                        spec, args.broker, args.warmup, args.duration, args.actor_nice
                    )
                print(
                    f"repeat {repeat + 1}/{args.repeats}: {result.side}: "
                    f"{result.steps_per_s:,.0f} steps/s",
                    flush=True,
                )
                results.append(result)
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (broker prefix and worker cleaned up)", file=sys.stderr)
        return 130
    out = report(results, spec, args)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
