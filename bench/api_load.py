"""API latency under load while runs train: 50 concurrent clients on `GET /models/` and
`GET /models/<id>/train-data/`, with 4 runs training through `runt web` + `runt agent`.

What it measures
----------------
The deployment path as in production: a `runt web` process and a `runt agent` process
(whose actors are processes too) on RabbitMQ and MariaDB, under a fresh broker prefix
and a database of their own. It submits `--runs` CartPole DQN runs (configs/
dqn_cartpole.yaml with a target far away, so they train throughout), waits until they
report episodes, then `--clients` clients, each with its own connection, send requests
back to back for `--duration` seconds: half `GET /models/?page=1&page_size=20`, half
`GET /models/<id>/train-data/?page=P&page_size=100` for a random run and its newest
page. It prints p50/p90/p99/max latency per endpoint, requests/s and errors (anything
but a 200, or no answer), first while the runs train, then again after they are stopped
(the baseline: the same requests against the same data with nothing training), and the
ratio of p99 against the target (p99 under 100 ms, zero errors). The clients are a lean
HTTP/1.1 keep-alive client (`Connection`, in the manner of wrk) on uvloop, since they
share the cores with the service; it also prints the CPU per request of both sides and
the share of answers the web workers' read caches gave (web/events/readcache.py).

Two kinds of load:

* closed loop (the default): each client sends its next request as soon as the last is
  answered. 50 clients always have 50 requests in flight, so this finds the service's
  saturation throughput, and the latency is mostly queueing (Little's law).
* open loop (`--rate R`): each client sends R requests/s on a schedule (`--arrivals
  poisson`: exponential gaps, or `fixed`), whatever the answers do. A client still sends
  one request at a time; one whose answer comes late sends the next at once, and every
  latency is counted from the time the request was *scheduled*, so a slow service's
  queue shows in the figures instead of slowing the clients down (no coordinated
  omission). It measures the latency at a given offered load.

How to run
----------
With MariaDB on 127.0.0.1:3306 (root) and RabbitMQ on 127.0.0.1:5672 (guest), from the
repository root::

    .venv/bin/python bench/api_load.py [--clients 50] [--duration 20] [--runs 4]
        [--rate R [--arrivals poisson|fixed]] [--actor-nice N] [--set RUNT_KEY=VALUE ...]

`--actor-nice` sets the agent's `agent.actor_nice` (the niceness of the actor
processes); `--set` passes any other config variable to both services.

Processes are ended by their pid (and their actor children), the database is dropped
and the broker prefix deleted at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import uvloop
from benchlib import (
    DEFAULT_BROKER,
    REPO,
    child_pids,
    delete_prefix,
    drop_database,
    end_process,
    fresh_prefix,
    interrupt_on_sigterm,
    load_preset,
    print_table,
    process_cpu_seconds,
    run_queue_names,
)
from solve.common import PASSWORD, USERNAME
from solve.runt import create_database

from broker.topology import Topology

TARGET_P99_MS = 100.0
SECRET = secrets.token_hex(32)  # this run's own session key
DEFAULT_DB = "mysql+pymysql://root@127.0.0.1:3306/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def service_env(database_url: str, broker: str, prefix: str, nice: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNT_")}
    env.update(
        RUNT_DATABASE_URL=database_url,
        RUNT_BROKER_URL=broker,
        RUNT_BROKER_PREFIX=prefix,
        RUNT_SECRET_KEY=SECRET,
        RUNT_LOG_FORMAT="text",
        RUNT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    if nice is not None:
        env["RUNT_AGENT_ACTOR_NICE"] = str(nice)
    return env


async def wait_healthy(session: aiohttp.ClientSession, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get("/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("runt web did not become healthy")


async def login(session: aiohttp.ClientSession) -> dict[str, str]:
    async with session.post("/login/", json={"username": USERNAME, "password": PASSWORD}) as r:
        body = await r.json()
        if r.status != 200:
            raise SystemExit(f"login: {r.status} {body}")
    return {"Authorization": f"Bearer {body['data']['token']}"}


async def submit_runs(session, headers, runs: int) -> list[int]:
    preset = load_preset()
    body = {**preset, "target_episode": 1_000_000, "num_workers": 1, "stop_reward": None}
    ids = []
    for _ in range(runs):
        async with session.post("/train/", json=body, headers=headers) as resp:
            answer = await resp.json()
            if resp.status != 201:
                raise SystemExit(f"POST /train/: {resp.status} {answer}")
            ids.append(answer["id"])
    return ids


async def episodes_of(session, headers, run_id: int) -> int:
    async with session.get(f"/models/{run_id}/", headers=headers) as resp:
        return (await resp.json())["data"]["current_episode"]


async def wait_training(session, headers, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [await episodes_of(session, headers, i) for i in ids]
        if all(c >= 20 for c in counts):
            return
        await asyncio.sleep(1)
    raise SystemExit(f"the runs did not start training within {timeout:.0f} s")


def gaps(rate: float, arrivals: str, rng: random.Random):
    """Seconds between one client's scheduled requests; none for the closed loop."""
    while True:
        if rate <= 0:
            yield 0.0
        elif arrivals == "fixed":
            yield 1.0 / rate
        else:
            yield rng.expovariate(rate)


class Connection:
    """One client's kept-alive HTTP/1.1 connection, as lean as a load generator should be
    (wrk-like: a request is one write, an answer is read by its Content-Length): the
    clients share the cores with the service, and aiohttp's client spends more CPU per
    request than the service does on an answer from its cache."""

    def __init__(self, base: str, headers: dict[str, str]):
        url = urlsplit(base)
        self.host, self.port = url.hostname, url.port
        lines = [f"Host: {url.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
        self.head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body); any failure closes the connection, the next call opens one."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
            status = int((await self.reader.readline()).split(b" ", 2)[1])
            length, keep = 0, True
            while (line := await self.reader.readline()) != b"\r\n":
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    keep = value.strip().lower() != b"close"
                elif not line:
                    raise ConnectionResetError("closed in the headers")
            body = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(base: str, headers, ids: list[int], args):
    """Latencies (ms) per endpoint and the errors, of `args.clients` clients: back to back
    (closed loop) or each at `args.rate` requests/s (open loop, from the scheduled time)."""
    latencies: dict[str, list[float]] = {"/models/": [], "train-data": []}
    errors: list[str] = []
    pages = {i: 1 for i in ids}
    started = time.perf_counter()
    end = started + args.duration

    async def client(n: int) -> None:
        rng = random.Random(n)
        # Open loop: clients start at random points of their first gap, not in step.
        scheduled = started + (rng.uniform(0, 1 / args.rate) if args.rate > 0 else 0.0)
        schedule = gaps(args.rate, args.arrivals, rng)
        connection = Connection(base, headers)
        turn = n
        while True:
            now = time.perf_counter()
            scheduled = max(scheduled, now) if args.rate <= 0 else scheduled
            if scheduled >= end:
                break
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
            turn += 1
            if turn % 2:
                kind, path = "/models/", "/models/?page=1&page_size=20"
            else:
                run = rng.choice(ids)
                kind = "train-data"
                path = f"/models/{run}/train-data/?page={pages[run]}&page_size=100"
            start, scheduled = scheduled, scheduled + next(schedule)
            try:
                async with asyncio.timeout(30):
                    status, body = await connection.get(path)
            except (OSError, EOFError, ValueError, IndexError, TimeoutError) as exc:
                errors.append(f"{path}: {type(exc).__name__}")
                continue
            if status != 200:
                errors.append(f"{path}: {status}")
                continue
            latencies[kind].append((time.perf_counter() - start) * 1000)
            if kind == "train-data":
                pages[run] = max(pages[run], json.loads(body)["data"]["total_pages"])
        connection.close()

    await asyncio.gather(*(client(n) for n in range(args.clients)))
    return latencies, errors, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def report(title: str, latencies, errors, seconds: float) -> float:
    everything = [v for values in latencies.values() for v in values]
    rows = [
        [kind, len(v), *(f"{percentile(v, q):.1f}" for q in (50, 90, 99)), f"{max(v):.1f}"]
        for kind, v in [*latencies.items(), ("all", everything)]
        if v
    ]
    print(f"\n{title}: {len(everything) / seconds:.0f} requests/s, {len(errors)} errors")
    print_table(["endpoint", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows)
    for error in sorted(set(errors))[:5]:
        print(f"  error: {error}")
    return percentile(everything, 99)


def web_cpu_seconds(web_pid: int) -> float:
    """CPU seconds of the web service: its process and its worker processes."""
    pids = [web_pid, *child_pids(web_pid)]
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


async def read_cache_counts(base: str, headers, workers: int) -> tuple[int, int]:
    """(answers from memory or a shared read, database reads) of the web workers' read
    caches (web/events/readcache.py), summed: each worker reports its own on /metrics, so
    connections are opened until all answered."""
    seen: dict[int, tuple[int, int]] = {}
    for _ in range(20 * workers):
        connector = aiohttp.TCPConnector(limit=1, force_close=True)
        async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:
            async with session.get("/metrics") as resp:
                data = (await resp.json())["data"]
        reads = data["reads"]
        seen[data["worker"]] = (reads["hits"] + reads["joined"], reads["misses"])
        if len(seen) == workers:
            break
    return sum(h for h, _ in seen.values()), sum(m for _, m in seen.values())


async def measured_load(base: str, headers, ids: list[int], args, web_pid: int):
    """`load`, the web service's CPU milliseconds per answered request (what a request
    costs the service, which moves less with other load than the latency) and the share
    of answers its read caches gave."""
    workers = max(len(child_pids(web_pid)) - 1, 1)  # less multiprocessing's tracker
    hits, misses = await read_cache_counts(base, headers, workers)
    cpu, own = web_cpu_seconds(web_pid), time.process_time()
    latencies, errors, seconds = await load(base, headers, ids, args)
    answered = max(sum(len(v) for v in latencies.values()), 1)
    cpu_ms = (web_cpu_seconds(web_pid) - cpu) * 1000 / answered
    client_ms = (time.process_time() - own) * 1000 / answered
    hits_after, misses_after = await read_cache_counts(base, headers, workers)
    hit_share = (hits_after - hits) / max(hits_after - hits + misses_after - misses, 1)
    return latencies, errors, seconds, (cpu_ms, client_ms, hit_share)


def print_cpu(cpu_ms: tuple[float, float, float]) -> None:
    web_ms, client_ms, hit_share = cpu_ms
    print(f"  CPU per request: web service {web_ms:.2f} ms, these clients {client_ms:.2f} ms")
    print(f"  answered from the read cache: {hit_share:.0%}")


async def bench(args, base: str, ids_out: list[int], web_pid: int) -> None:
    async with aiohttp.ClientSession(base) as session:
        await wait_healthy(session)
        headers = await login(session)
        ids_out.extend(await submit_runs(session, headers, args.runs))
        print(f"runs {ids_out} submitted; waiting for their episodes")
        await wait_training(session, headers, ids_out, args.start_timeout)
        if args.rate > 0:
            offered = args.clients * args.rate
            print(f"open loop: {args.clients} clients x {args.rate:g} requests/s "
                  f"({args.arrivals}) = {offered:g} requests/s offered")  # fmt: skip
        else:
            print(f"closed loop: {args.clients} clients, back to back")
        latencies, errors, seconds, cpu_ms = await measured_load(
            base, headers, ids_out, args, web_pid
        )
        counts = [await episodes_of(session, headers, i) for i in ids_out]
        p99 = report(f"while {args.runs} runs train", latencies, errors, seconds)
        print_cpu(cpu_ms)
        print(f"  episodes stored so far: {counts}")
        for run in ids_out:
            async with session.post("/stop-train/", json={"model_id": run}, headers=headers):
                pass
        await asyncio.sleep(args.settle)
        base_lat, base_err, base_s, base_cpu = await measured_load(
            base, headers, ids_out, args, web_pid
        )
        base_p99 = report("baseline: the same after the runs stopped", base_lat, base_err, base_s)
        print_cpu(base_cpu)
    verdict = "met" if p99 < TARGET_P99_MS and not errors else "MISSED"
    print(f"\np99/target = {p99 / TARGET_P99_MS:.2f} (target p99 < {TARGET_P99_MS:.0f} ms and "
          f"zero errors: {verdict}); p99 training/idle = {p99 / base_p99:.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop: requests/s of each client (latency from the scheduled time); "
        "0: closed loop, each client back to back",
    )
    parser.add_argument("--arrivals", choices=["poisson", "fixed"], default="poisson")
    parser.add_argument(
        "--actor-nice", type=int, default=None, help="agent.actor_nice (default: the config's)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="RUNT_KEY=VALUE",
        help="a config variable for both services, e.g. RUNT_DATABASE_POOL_SIZE=20",
    )
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds after stopping")
    parser.add_argument("--broker", default=os.environ.get("RUNT_BENCH_AMQP_URL", DEFAULT_BROKER))
    parser.add_argument(
        "--database-url", default=os.environ.get("RUNT_BENCH_DATABASE_URL", DEFAULT_DB)
    )
    args = parser.parse_args()
    interrupt_on_sigterm()

    prefix = fresh_prefix("load")
    database_url = create_database(args.database_url)
    env = service_env(database_url, args.broker, prefix, args.actor_nice)
    for setting in args.set:
        name, _, value = setting.partition("=")
        if not name.startswith("RUNT_") or not value:
            parser.error(f"--set {setting}: expected RUNT_KEY=VALUE")
        env[name] = value
    port = free_port()
    log = tempfile.NamedTemporaryFile("w", prefix="runt-bench-load-", suffix=".log", delete=False)  # noqa: SIM115
    print(f"service logs: {log.name}")
    web = agent = None
    ids: list[int] = []
    try:
        web = start([sys.executable, "-m", "cli.main", "web", "--port", str(port)], env, log)
        agent = start([sys.executable, "-m", "cli.main", "agent", "--name", prefix], env, log)
        # The clients share the cores with the service: libuv's loop costs them less.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(bench(args, f"http://127.0.0.1:{port}", ids, web.pid))
    finally:
        for proc in (agent, web):
            if proc is not None:
                end_process(proc, extra_pids=child_pids(proc.pid))
        log.close()
        topology = Topology(prefix)
        delete_prefix(
            args.broker, prefix, [q for r in ids for q in run_queue_names(topology, r, 1)]
        )
        drop_database(database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
