"""Wall-clock time and env steps until the greedy policy first scores >= 475 on
CartPole-v1: runt's DQN over RabbitMQ against stable-baselines3's tuned DQN and PPO.

What it measures
----------------
"Solved" is the same for every contender: the mean return of 10 greedy episodes
(no exploration) reaches 475, Gymnasium's reward_threshold for CartPole-v1. Each
contender is evaluated every N env steps, where N is what runt's trainer does between
two evaluations: ``eval_interval_updates x batch_size / samples_per_insert`` of the
preset (500 env steps with 250 / 64 / 32), because the buffer's rate limiter fixes
updates per env step. Evaluation time counts for every contender (runt's trainer
evaluates inline and cannot be paused from outside), and both baselines evaluate with
runt's own `actors.evaluate.evaluate` (10 sub-environments, one episode each, seeds
fresh per evaluation), so an evaluation costs each of them the same for a policy of
the same quality. torch runs 1 thread in every process (runt's actor processes set it
in `actors.runner`, the baselines set it before training).

Contenders (``--only`` picks some, comma-separated):

* ``runt``: the deployment path. Per trial: a fresh broker prefix, an agent started
  as ``python -m web.cli agent`` with RUNT_BROKER_URL / RUNT_BROKER_PREFIX (the timing
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
* ``sb3-dqn``: stable-baselines3 DQN with the rl-baselines3-zoo CartPole-v1
  hyperparameters (see ZOO_DQN below), 1 env.
* ``sb3-ppo``: stable-baselines3 PPO with the zoo CartPole-v1 hyperparameters
  (ZOO_PPO below), 8 envs in a DummyVecEnv.
* ``runt-serial`` (a diagnostic, run only when named in ``--only``): the same preset
  and DQN components in one process (`actors.serial.SerialRun`): no broker, no actor
  processes, so its gap to ``runt`` is what distribution costs.

Each of the last three runs in a fresh process of this script per trial; its clock runs
from that process's launch (interpreter and import start-up is reported as "startup")
to the solved evaluation (timed in the child from the end of its start-up). The
stable-baselines3 trials train for at most the zoo's ``n_timesteps`` (their exploration
and linear schedules are defined over that budget, and PPO's learning rate and clip
range reach 0 there), so such a trial can end "budget" unsolved.
Every trial also ends at ``--time-cap`` seconds.

Report: one row per trial, then per contender the solved fraction and the medians of
wall-clock time, of time after startup and of env steps (an unsolved trial counts as
infinitely long, so a median is "unsolved" when half or more did not solve), then the
ratio runt/baseline of the median wall-clock times (target <= 1.0), and the same
ratio for time after startup. Trials are interleaved (seed 0 of every contender, then
seed 1, ...), so a change in machine load hits every contender alike. Exit status 0
whatever the verdict; 1 if setup fails.

How to run
----------
From the repository root, with RabbitMQ on 127.0.0.1:5672 (guest/guest) and MariaDB on
127.0.0.1:3306 (root, no password), and ``pip install -e '.[bench]'``::

    .venv/bin/python bench/time_to_solve.py [--seeds 3] [--time-cap 300]
        [--only runt,sb3-dqn,sb3-ppo[,runt-serial]] [--quick] [--num-workers N]
        [--first-seed 0] [--submit web|broker] [--preset configs/dqn_cartpole.yaml]
        [--broker URL] [--database-url URL] [--json]

``--quick`` is a smoke check: 1 seed and a 120 s cap unless given. With the defaults a
run took 4-5 minutes on the 2-core development machine; the figures move a lot with
other load on the machine (the load average is printed at the start and the end).
Broker prefixes (``benchtts<random>``) are deleted after each trial and the database
(``runt_bench_tts_<pid>``) at the end, also on failure or SIGINT/SIGTERM; agents and
their actor processes are stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    DEFAULT_BROKER,
    DEFAULT_PRESET,
    REPO,
    child_pids,
    delete_prefix,
    end_process,
    fresh_prefix,
    interrupt_on_sigterm,
    load_preset,
    median,
    print_table,
    run_queue_names,
)

CONTENDERS = ("runt", "sb3-dqn", "sb3-ppo")
DIAGNOSTIC = ("runt-serial",)  # only when named in --only
SOLVED_MEAN = 475.0  # Gymnasium's reward_threshold for CartPole-v1
EVAL_EPISODES = 10
TORCH_THREADS = 1
DEFAULT_DATABASE_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
USERNAME, PASSWORD = "bench", "bench-password"

# rl-baselines3-zoo, hyperparams/dqn.yml, entry CartPole-v1 ("Almost Tuned"):
# https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/hyperparams/dqn.yml
ZOO_DQN: dict[str, Any] = {
    "n_timesteps": 50_000,  # n_timesteps: !!float 5e4
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "net_arch": [256, 256],  # policy_kwargs: "dict(net_arch=[256, 256])"
}
# rl-baselines3-zoo, hyperparams/ppo.yml, entry CartPole-v1 ("Tuned"):
# https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/hyperparams/ppo.yml
ZOO_PPO: dict[str, Any] = {
    "n_envs": 8,
    "n_timesteps": 100_000,  # n_timesteps: !!float 1e5
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 0.001,  # lin_0.001: linear from 0.001 to 0 over n_timesteps
    "clip_range": 0.2,  # lin_0.2
}


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
        "--submit",
        choices=("web", "broker"),
        default="web",
        help="runt: POST /train/ to the web app (default) or StartRun straight to the broker",
    )
    parser.add_argument("--preset", default=str(DEFAULT_PRESET), help="runt training preset")
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
    parser.add_argument("--child", choices=CONTENDERS[1:] + DIAGNOSTIC, help=argparse.SUPPRESS)
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


def runt_eval_interval(preset: dict[str, Any]) -> int:
    """Env steps between two of runt's evaluations: updates per evaluation divided by
    updates per env step, which the replay ratio fixes (samples_per_insert / batch)."""
    from actors.dqn import DQNConfig

    config = DQNConfig.from_spec(runt_spec(preset, run_id=1, seed=0, num_workers=None))
    return round(config.eval_interval_updates * config.batch_size / config.samples_per_insert)


def train_body(preset: dict[str, Any], seed: int, num_workers: int | None) -> dict[str, Any]:
    """The POST /train/ body: the preset, this trial's seed, stop at 475."""
    body = {**preset, "seed": seed, "stop_reward": SOLVED_MEAN, "name": f"bench-seed{seed}"}
    if num_workers is not None:
        body["num_workers"] = num_workers
    return body


def runt_spec(preset: dict[str, Any], run_id: int, seed: int, num_workers: int | None):
    """The RunSpec the web service would send for `train_body(...)`."""
    from schemas.api import TrainRequest
    from schemas.messages import RunSpec

    req = TrainRequest(**train_body(preset, seed, num_workers))
    fields = {name: getattr(req, name) for name in RunSpec.model_fields if hasattr(req, name)}
    return RunSpec(**{**fields, "run_id": run_id, "seed": seed})


@dataclass
class Trial:
    contender: str
    seed: int
    solved: bool = False
    wall_s: float = math.inf  # launch/submission -> solved evaluation received
    startup_s: float | None = None
    env_steps: float = math.inf  # at the solved evaluation
    evaluations: int = 0
    best_mean: float | None = None
    note: str = ""

    def record_eval(self, mean: float) -> None:
        self.evaluations += 1
        self.best_mean = mean if self.best_mean is None else max(self.best_mean, mean)


# ---- stable-baselines3 (a child process per trial) --------------------------------------------


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def sb3_child(args: argparse.Namespace) -> int:
    """One stable-baselines3 trial; reports JSON lines on stdout."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from actors.evaluate import evaluate

    env_id = load_preset(args.preset)["env_id"]
    emit(event="ready")
    started = time.perf_counter()

    class GreedySB3:
        def __init__(self, model):
            self.model = model

        def greedy(self, obs):
            return self.model.predict(obs, deterministic=True)[0]

    class SolvedCheck(BaseCallback):
        """Evaluate every `eval_every` env steps; stop when solved or at the time cap."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval = args.eval_every
            self.reason = "budget"

        @staticmethod
        def elapsed() -> float:
            return time.perf_counter() - started

        def _on_step(self) -> bool:
            if time.perf_counter() - started > args.time_cap:
                self.reason = "time_cap"
                return False
            if self.num_timesteps < self.next_eval:
                return True
            while self.next_eval <= self.num_timesteps:
                self.next_eval += args.eval_every
            seed = args.seed + 7 + self.num_timesteps
            result = evaluate(GreedySB3(self.model), env_id, None, EVAL_EPISODES, seed=seed)
            emit(event="eval", steps=self.num_timesteps, mean=result.mean, t=self.elapsed())
            if result.mean >= SOLVED_MEAN:
                self.reason = "solved"
                return False
            return True

    if args.child == "sb3-dqn":
        zoo = ZOO_DQN
        model = DQN(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=1, seed=args.seed),
            learning_rate=zoo["learning_rate"],
            batch_size=zoo["batch_size"],
            buffer_size=zoo["buffer_size"],
            learning_starts=zoo["learning_starts"],
            gamma=zoo["gamma"],
            target_update_interval=zoo["target_update_interval"],
            train_freq=zoo["train_freq"],
            gradient_steps=zoo["gradient_steps"],
            exploration_fraction=zoo["exploration_fraction"],
            exploration_final_eps=zoo["exploration_final_eps"],
            policy_kwargs={"net_arch": zoo["net_arch"]},
            seed=args.seed,
            device="cpu",
        )
    else:
        zoo = ZOO_PPO
        lr, clip = zoo["learning_rate"], zoo["clip_range"]
        model = PPO(
            "MlpPolicy",
            make_vec_env(env_id, n_envs=zoo["n_envs"], seed=args.seed),
            n_steps=zoo["n_steps"],
            batch_size=zoo["batch_size"],
            gae_lambda=zoo["gae_lambda"],
            gamma=zoo["gamma"],
            n_epochs=zoo["n_epochs"],
            ent_coef=zoo["ent_coef"],
            learning_rate=lambda progress_remaining: progress_remaining * lr,  # zoo "lin_"
            clip_range=lambda progress_remaining: progress_remaining * clip,
            seed=args.seed,
            device="cpu",
        )
    check = SolvedCheck()
    model.learn(total_timesteps=zoo["n_timesteps"], callback=check)
    emit(event="end", reason=check.reason, steps=model.num_timesteps)
    return 0


def serial_child(args: argparse.Namespace) -> int:
    """runt's DQN with the same preset in one process (actors/serial.py): no broker, no
    actor processes. Its evaluations carry their time since the run was built."""
    import torch

    torch.set_num_threads(TORCH_THREADS)
    from actors.serial import SerialRun

    emit(event="ready")
    spec = runt_spec(load_preset(args.preset), 1, args.seed, args.num_workers)
    result = SerialRun(spec).run(time_limit_s=args.time_cap)
    for record in result.evaluations:
        emit(event="eval", steps=record.env_steps, mean=record.mean, t=record.wall_time_s)
    emit(event="end", reason=result.stop_reason, steps=result.env_steps)
    return 0


def run_child_trial(args: argparse.Namespace, contender: str, seed: int, every: int) -> Trial:
    trial = Trial(contender, seed)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", contender]
    command += ["--seed", str(seed), "--eval-every", str(every), "--time-cap", str(args.time_cap)]
    command += ["--preset", args.preset]
    if args.num_workers is not None:
        command += ["--num-workers", str(args.num_workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launched = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    watchdog = threading.Timer(args.time_cap + 120, proc.kill)  # a hung child, not a slow one
    watchdog.start()
    try:
        for line in proc.stdout:
            now = time.monotonic() - launched
            msg = json.loads(line)
            if msg["event"] == "ready":
                trial.startup_s = now
            elif msg["event"] == "eval":
                trial.record_eval(msg["mean"])
                if msg["mean"] >= SOLVED_MEAN and not trial.solved:
                    trial.solved, trial.env_steps = True, msg["steps"]
                    trial.wall_s = (trial.startup_s or 0.0) + msg["t"]
            elif msg["event"] == "end" and not trial.solved:
                trial.note = f"{msg['reason']} at {msg['steps']} steps"
        proc.wait()
        if proc.returncode and not trial.solved:
            trial.note = f"exit code {proc.returncode}"
    finally:
        watchdog.cancel()
        end_process(proc, grace=5.0)
    return trial


# ---- runt over RabbitMQ -----------------------------------------------------------------------


class EventTap(threading.Thread):
    """Receives every `evaluation` and `status` event of a prefix on tap queues, with the
    time it arrived. The thread owns its Bus (a Bus belongs to one thread)."""

    def __init__(self, url: str, topology):
        super().__init__(name="event-tap", daemon=True)
        self.url, self.topology = url, topology
        self.events: queue.Queue = queue.Queue()
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from broker.sync import make_bus

        bus = make_bus(self.url, self.topology, "bench-tap")
        try:
            bus.connect()
            for kind in ("evaluation", "status"):
                tap = self.topology.event_tap(
                    f"bench-{kind}-{uuid.uuid4().hex[:6]}", f"run.*.{kind}"
                )
                bus.declare(tap)
                bus.consume(tap, self.on_event, prefetch=100)
            self.ready.set()
            while not self.stopping.is_set():
                bus.poll(0.02)
        except BaseException as exc:
            self.error = exc
            self.ready.set()
        finally:
            bus.close()

    def on_event(self, delivery) -> None:
        from schemas.messages import decode_message

        self.events.put((time.monotonic(), decode_message(delivery.body)))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def queue_consumers(url: str, name: str) -> int:
    """Consumers of a queue (0 if it does not exist yet)."""
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            return channel.queue_declare(queue=name, passive=True).consumer_count
        except Exception:  # NOT_FOUND until the agent declares it
            return 0


def start_agent(url: str, prefix: str, log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
    env.update(
        RUNT_BROKER_URL=url,
        RUNT_BROKER_PREFIX=prefix,
        RUNT_LOG_FORMAT="text",
        RUNT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    command = [sys.executable, "-m", "web.cli", "agent", "--name", f"bench-{prefix}"]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


class WebSubmitter:
    """POST /train/ and /stop-train/ to the real app, served on a free local port."""

    def __init__(self, url: str, prefix: str, database_url: str):
        from schemas.config import load_config

        self.cfg = load_config(
            environ={},
            overrides={
                "secret_key": "bench-secret-key-0123456789abcdef",
                "database": {"url": database_url},
                "broker": {"url": url, "prefix": prefix},
                "log_level": "WARNING",
                "log_format": "text",
            },
        )
        self.runner = self.session = None

    async def start(self) -> None:
        import aiohttp
        from aiohttp import web

        from web.app import init_app

        self.runner = web.AppRunner(init_app(self.cfg), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.session = aiohttp.ClientSession(f"http://127.0.0.1:{port}")
        login = {"username": USERNAME, "password": PASSWORD}
        async with self.session.post("/login/", json=login) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"login: HTTP {resp.status}: {body}")
        self.session.headers["Authorization"] = f"Bearer {body['data']['token']}"

    async def submit(self, body: dict[str, Any]) -> int:
        async with self.session.post("/train/", json=body) as resp:
            answer = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"POST /train/: HTTP {resp.status}: {answer}")
            return int(answer["id"])

    async def stop(self, run_id: int) -> None:
        async with self.session.post("/stop-train/", json={"model_id": run_id}) as resp:
            await resp.read()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()


class BrokerSubmitter:
    """Publish StartRun / StopRun directly, as the web service would (no database)."""

    RUN_ID = 1

    def __init__(self, url: str, prefix: str, preset: dict[str, Any], num_workers: int | None):
        from broker.topology import Topology

        self.url, self.topology = url, Topology(prefix)
        self.preset, self.num_workers = preset, num_workers

    def _publish(self, key: str, message) -> None:
        from broker.sync import make_bus

        with make_bus(self.url, self.topology, "bench-submit") as bus:
            bus.declare(self.topology.agent_work())
            bus.publish_message(self.topology.commands, key, message)

    async def start(self) -> None:
        pass

    async def submit(self, body: dict[str, Any]) -> int:
        from schemas.messages import StartRun

        spec = runt_spec(self.preset, self.RUN_ID, body["seed"], self.num_workers)
        await asyncio.to_thread(self._publish, "run.start", StartRun(spec=spec))
        return self.RUN_ID

    async def stop(self, run_id: int) -> None:
        from schemas.messages import StopRun

        stop = StopRun(run_id=run_id, status="stopped", reason="benchmark time cap")
        await asyncio.to_thread(self._publish, self.topology.stop_key(run_id), stop)

    async def close(self) -> None:
        pass


async def follow_run(trial: Trial, tap: EventTap, submitted: float, cap: float, workers: int):
    """Read the run's events until it is solved, ends or reaches the time cap; returns
    True if the run is still going (so the caller stops it)."""
    from schemas.messages import EvaluationFinished, StatusChanged

    trainer_up, rollouts_up = None, set()
    while True:
        try:
            at, event = tap.events.get_nowait()
        except queue.Empty:
            if time.monotonic() - submitted > cap:
                trial.note = f"time cap {cap:g} s"
                return True
            await asyncio.sleep(0.02)
            continue
        if isinstance(event, EvaluationFinished):
            trial.record_eval(event.mean_return)
            if event.mean_return >= SOLVED_MEAN:
                trial.solved, trial.wall_s = True, at - submitted
                trial.env_steps = event.env_steps
                return False  # the trainer ends the run itself at stop_reward
        elif isinstance(event, StatusChanged):
            actor = event.actor or ""
            if event.status == "running" and actor.startswith("trainer-"):
                trainer_up = at
            elif event.status == "running" and actor.startswith("rollout-"):
                rollouts_up.add(actor.split("@")[0].rsplit(".", 1)[0])
            elif event.status in ("failed", "completed", "stopped"):
                trial.note = f"{event.status}: {event.reason}"[:120]
                return False
            if trial.startup_s is None and trainer_up and len(rollouts_up) >= workers:
                trial.startup_s = at - submitted  # the last of them just reported


async def run_runt_trial(
    args: argparse.Namespace, preset: dict[str, Any], seed: int, database_url: str | None
) -> Trial:
    from broker.topology import Topology

    trial = Trial("runt", seed)
    prefix = fresh_prefix("tts")
    topology = Topology(prefix)
    workers = args.num_workers or int(preset.get("num_workers", 1))
    tap = EventTap(args.broker, topology)
    agent: subprocess.Popen | None = None
    submitter: WebSubmitter | BrokerSubmitter | None = None
    run_id: int | None = None
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    try:
        tap.start()
        tap.ready.wait(30)
        if tap.error is not None:
            raise RuntimeError(f"event tap: {tap.error}")
        agent = start_agent(args.broker, prefix, log)
        deadline = time.monotonic() + 60
        work_queue = topology.agent_work().name
        while await asyncio.to_thread(queue_consumers, args.broker, work_queue) < 1:
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the agent did not start")
            await asyncio.sleep(0.1)
        if args.submit == "web":
            submitter = WebSubmitter(args.broker, prefix, database_url)
        else:
            submitter = BrokerSubmitter(args.broker, prefix, preset, args.num_workers)
        await submitter.start()
        submitted = time.monotonic()
        run_id = await submitter.submit(train_body(preset, seed, args.num_workers))
        still_running = await follow_run(trial, tap, submitted, args.time_cap, workers)
        if still_running:
            await submitter.stop(run_id)
            await asyncio.sleep(2)  # let the actors finish by themselves
    except Exception as exc:
        trial.note = f"error: {exc}"[:120]
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
        print(f"runt trial seed {seed} failed: {exc}\nagent log:\n" + "\n".join(tail))
    finally:
        if agent is not None:
            end_process(agent, grace=15.0, extra_pids=child_pids(agent.pid))
        if submitter is not None:
            await submitter.close()
        tap.stop()
        log.close()
        queues = run_queue_names(topology, run_id, workers) if run_id is not None else []
        delete_prefix(args.broker, prefix, queues)
    return trial


# ---- the database of --submit web --------------------------------------------------------------


def create_database(server_url: str) -> str:
    from sqlalchemy import make_url

    from schemas.config import DatabaseConfig
    from web import store
    from web.auth import hash_password
    from web.db import Database
    from web.migrate import upgrade

    url = make_url(server_url).set(
        database=f"runt_bench_tts_{os.getpid()}", query={"charset": "utf8mb4"}
    )
    url_text = url.render_as_string(hide_password=False)
    upgrade(DatabaseConfig(url=url_text))
    db = Database(DatabaseConfig(url=url_text))
    try:
        db.call(store.add_user, USERNAME, hash_password(PASSWORD))
    finally:
        db.close()
    return url_text


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    parsed = make_url(url)
    server = create_engine(parsed.set(database=""))
    try:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    finally:
        server.dispose()


# ---- report ------------------------------------------------------------------------------------


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


def report(trials: list[Trial], args: argparse.Namespace, every: int, preset: dict) -> dict:
    workers = args.num_workers or preset.get("num_workers", 1)
    print(
        f"\ntime to solve {preset['env_id']} (greedy mean of {EVAL_EPISODES} episodes >= "
        f"{SOLVED_MEAN:g}), every contender evaluated every {every} env steps, eval time "
        f"counted; torch threads {TORCH_THREADS}; cap {args.time_cap:g} s; runt: "
        f"{workers} rollout worker(s), submitted via {args.submit}"
    )
    print_table(
        (
            "contender",
            "seed",
            "solved",
            "wall s",
            "startup s",
            "after s",
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
    if "runt" in summary:
        print()
        for base in (c for c in summary if c != "runt"):
            wall = _ratio(summary["runt"]["median_wall_s"], summary[base]["median_wall_s"])
            after = _ratio(
                summary["runt"]["median_after_startup_s"], summary[base]["median_after_startup_s"]
            )
            if base in DIAGNOSTIC:  # what distribution costs, not a target
                verdict, target = "-", ""
            else:
                verdict = "-" if wall is None else ("PASS" if wall <= 1.0 else "MISS")
                target = f" (target <= 1.0) -> {verdict}"
            ratios[base] = {"wall": wall, "after_startup": after, "verdict": verdict}
            print(
                f"ratio runt/{base} of median wall-clock time: {_show(wall)}{target};  "
                f"after startup: {_show(after)}"
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


async def run_all(args: argparse.Namespace, preset: dict[str, Any], every: int) -> list[Trial]:
    database_url = None
    trials: list[Trial] = []
    try:
        if "runt" in args.contenders and args.submit == "web":
            database_url = await asyncio.to_thread(create_database, args.database_url)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for contender in args.contenders:
                if contender == "runt":
                    trial = await run_runt_trial(args, preset, seed, database_url)
                else:
                    trial = await asyncio.to_thread(run_child_trial, args, contender, seed, every)
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
    preset = load_preset(args.preset)
    every = runt_eval_interval(preset)
    print(
        f"contenders {', '.join(args.contenders)}; seeds {args.first_seed}.."
        f"{args.first_seed + args.seeds - 1}; evaluation every {every} env steps; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        trials = asyncio.run(run_all(args, preset, every))
    except (RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (broker prefixes, database and processes cleaned up)", file=sys.stderr)
        return 130
    out = report(trials, args, every, preset)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
