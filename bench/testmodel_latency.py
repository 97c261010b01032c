"""Latency and throughput of `POST /testmodel/` (100 CartPole steps per request).

What it measures
----------------
A DQN policy is trained in this process until its greedy evaluation reaches 300 (so
that episodes last the 100 steps asked for), stored as a checkpoint of a model in a
database of its own (MariaDB by default), and the real web app is served on a free
port. Then:

* ``http sequential``  one client, N requests one after another: p50/p90/p99/max;
* ``http concurrent``  C clients at once for the same N requests: requests/s, p50/p99;
* ``direct``           the baseline: `web.inference.run_episode` called in-process with
  the already loaded policy (no HTTP, no database, no cache lookup), N times.

It prints the ratio of the sequential p50 to the direct p50 (what the service adds) and
PASS/MISS against the target "p50 under 30 ms". The first request loads the policy into
the cache; it is part of the warm-up, not of the figures.

How to run
----------
    python bench/testmodel_latency.py [--requests 500] [--clients 8] [--database-url URL]

``--database-url`` (or $RUNT_BENCH_DATABASE_URL) names the MySQL server (default root on
127.0.0.1:3306) or a sqlite:/// URL; a MySQL database ``runt_bench_tm_<pid>`` is made and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml
from aiohttp import web
from benchlib import drop_database
from sqlalchemy import make_url

from actors.algorithms.serial import SerialRun
from broker.codec import state_to_bytes
from schemas.api import TrainRequest
from schemas.config import DatabaseConfig, load_config
from schemas.messages import RunSpec
from web import inference
from web.app import init_app
from web.auth import hash_password
from web.db import store
from web.db.engine import Database
from web.db.migrate import upgrade
from web.db.tables import Checkpoint

REPO = Path(__file__).resolve().parent.parent
OBSERVATION = [0.0, 0.0, 0.05, 0.0]
USER, PASSWORD = "bench", "bench-password"


def trained_learner(seed: int = 11, time_limit_s: float = 120.0):
    preset = yaml.safe_load((REPO / "configs" / "dqn_cartpole.yaml").read_text())
    spec = RunSpec(
        run_id=1, algorithm="dqn", env_id="CartPole-v1", hyperparameters=preset["hyperparameters"],
        learning_rate=preset["learning_rate"], batch_size=preset["batch_size"],
        buffer_size=preset["buffer_size"], gamma=preset["gamma"], seed=seed, num_workers=1,
        target_episode=100_000, stop_reward=300,
    )  # fmt: skip
    run = SerialRun(spec)
    result = run.run(None, time_limit_s)
    best = max((e.mean for e in result.evaluations), default=0.0)
    print(f"trained in {result.wall_time_s:.1f} s: {result.updates} updates, eval {best:.0f}")
    return run.learner


def prepare(url: str, learner) -> int:
    upgrade(DatabaseConfig(url=url))
    db = Database(DatabaseConfig(url=url))
    try:
        user = db.call(store.add_user, USER, hash_password(PASSWORD))
        req = TrainRequest(algorithm="dqn", env_id="CartPole-v1", target_episode=1)
        model_id = db.call(lambda s: store.create_model(s, user, req, seed=0).id)
        meta = {"algorithm": "dqn", "env_id": "CartPole-v1", "env_params": {}}
        meta["network"] = learner.network_meta()
        blob = state_to_bytes(learner.state())
        db.call(
            lambda s: s.add(
                Checkpoint(
                    model_id=model_id, version=1, env_steps=0, episode=0, weights=blob, meta=meta
                )
            )
        )
        return model_id
    finally:
        db.close()


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def pct(p: float) -> float:
        return s[max(0, math.ceil(p / 100 * len(s)) - 1)]

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": s[-1]}


async def measure_http(url: str, model_id: int, requests: int, clients: int) -> dict:
    cfg = load_config(
        overrides={
            "database": {"url": url},
            "broker": {"url": "memory://"},
            "secret_key": "b" * 32,
            "log_level": "WARNING",
        }
    )
    runner = web.AppRunner(init_app(cfg), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    body = {"model_id": model_id, "observation": OBSERVATION, "steps": 100}
    try:
        async with aiohttp.ClientSession(base) as http:
            async with http.post("/login/", json={"username": USER, "password": PASSWORD}) as r:
                token = (await r.json())["data"]["token"]
            headers = {"Authorization": f"Bearer {token}"}

            async def one() -> float:
                t0 = time.perf_counter()
                async with http.post("/testmodel/", json=body, headers=headers) as resp:
                    answer = await resp.json()
                elapsed = (time.perf_counter() - t0) * 1000
                if resp.status != 200 or answer["data"]["steps"] != 100:
                    raise RuntimeError(f"bad answer: {resp.status} {answer}")
                return elapsed

            for _ in range(20):
                await one()
            sequential = [await one() for _ in range(requests)]
            queue = list(range(requests))
            concurrent: list[float] = []

            async def client() -> None:
                while queue:
                    queue.pop()
                    concurrent.append(await one())

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            rate = requests / (time.perf_counter() - t0)
    finally:
        await runner.cleanup()
    return {"sequential": summary(sequential), "concurrent": summary(concurrent), "rate": rate}


def measure_direct(learner, requests: int) -> dict[str, float]:
    meta = {"algorithm": "dqn", "env_id": "CartPole-v1", "network": learner.network_meta()}
    loaded = inference.load(1, 1, meta, state_to_bytes(learner.state()))
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        inference.run_episode(loaded, OBSERVATION, 100, True, seed=0)
        samples.append((time.perf_counter() - t0) * 1000)
    return summary(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RUNT_BENCH_DATABASE_URL", "mysql+pymysql://root@127.0.0.1:3306/"),
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as `runt web` runs it
    server = make_url(args.database_url)
    name = f"runt_bench_tm_{os.getpid()}"
    url = (
        args.database_url
        if server.get_backend_name() == "sqlite"
        else str(server.set(database=name, query={"charset": "utf8mb4"}))
    )
    learner = trained_learner()
    try:
        model_id = prepare(url, learner)
        http = asyncio.run(measure_http(url, model_id, args.requests, args.clients))
        direct = measure_direct(learner, args.requests)
    finally:
        if server.get_backend_name() != "sqlite":
            drop_database(url)
    print(f"\n/testmodel/ with 100 CartPole steps, {args.requests} requests (ms)")
    print(f"{'case':<18}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    for label, row in (("http sequential", http["sequential"]),
                       (f"http {args.clients} clients", http["concurrent"]),
                       ("direct (baseline)", direct)):  # fmt: skip
        print(f"{label:<18}" + "".join(f"{row[k]:>8.2f}" for k in ("p50", "p90", "p99", "max")))
    ratio = http["sequential"]["p50"] / direct["p50"]
    print(f"\nthroughput with {args.clients} clients: {http['rate']:.0f} requests/s")
    print(f"http/direct p50 ratio: {ratio:.2f}")
    verdict = "PASS" if http["sequential"]["p50"] < 30 else "MISS"
    print(f"target: p50 < 30 ms -> {verdict} ({http['sequential']['p50']:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
