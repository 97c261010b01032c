"""Event ingestion: episode records per second from RabbitMQ into MariaDB.

What it measures
----------------
Rollout workers report finished episodes in batches (`EpisodesFinished`, one confirmed
event per worker every 0.25 s). This script publishes `--records` episode records as
such batches (`--per-event` records each, from `--workers` workers of `--runs` runs) to
the event exchange under a fresh broker prefix, then starts the web service's
event-log consumer (`web.events.eventlog.EventLog` on `web.db.engine.Database`, exactly as
`runt web` runs it) and times it from its start until every record is committed
(`models.current_episode` of the runs adds up to `--records`). It prints records/s, the
ratio against the target (>= 20,000 records/s), and the ratio against a baseline
measured in the same run: the same rows written with plain multi-row INSERTs of the same
transaction size straight through the driver, without the broker, the decoding, the
locking of the run or the duplicate checks.

How to run
----------
With MariaDB on 127.0.0.1:3306 (root) and RabbitMQ on 127.0.0.1:5672 (guest), from the
repository root::

    .venv/bin/python bench/ingest_throughput.py [--records 200000] [--per-event 50]

It makes its own database ``runt_bench_ingest_<pid>`` (dropped at the end, also on
failure) and deletes its broker prefix afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import DEFAULT_BROKER, delete_prefix, drop_database, fresh_prefix, print_table
from sqlalchemy import func, make_url, select

from broker.aio import AsyncBroker
from broker.sync import make_bus
from broker.topology import Topology
from schemas.api import TrainRequest
from schemas.config import DatabaseConfig
from schemas.messages import EpisodesFinished
from web.db import store
from web.db.engine import Database
from web.db.migrate import upgrade
from web.db.tables import Model, utcnow
from web.events.eventlog import EventLog

TARGET = 20_000  # records/s
DEFAULT_DB = "mysql+pymysql://root@127.0.0.1:3306/"


def make_runs(db: Database, runs: int, records: int, owner: str = "bench") -> list[int]:
    def create(session) -> list[int]:
        user = store.add_user(session, owner, "not-a-real-hash")
        request = TrainRequest(algorithm="dqn", env_id="CartPole-v1", target_episode=records)
        return [store.create_model(session, user, request, seed=1).id for _ in range(runs)]

    return db.call(create)


def events(run_ids: list[int], workers: int, records: int, per_event: int):
    """EpisodesFinished batches, round-robin over runs and workers, in seq order."""
    seqs = {(run, worker): 0 for run in run_ids for worker in range(workers)}
    sent = 0
    while sent < records:
        for (run, worker), seq in seqs.items():
            count = min(per_event, records - sent)
            if count <= 0:
                return
            seqs[(run, worker)] = seq + count
            sent += count
            yield (
                run,
                EpisodesFinished(
                    run_id=run,
                    worker=worker,
                    first_seq=seq,
                    rewards=[float((seq + i) % 500) for i in range(count)],
                    lengths=[20 + i % 30 for i in range(count)],
                    env_steps=[0] * count,
                    policy_versions=[0] * count,
                ),
            )


def publish(url: str, topology: Topology, stream) -> int:
    bus = make_bus(url, topology, "bench-publisher").connect()
    bus.declare(topology.event_log())
    published = 0
    try:
        for run, event in stream:
            bus.publish_message(topology.events, topology.event_key(run, "episodes"), event)
            published += 1
    finally:
        bus.close()
    return published


def committed(db: Database, run_ids: list[int]) -> int:
    return (
        db.call(
            lambda s: s.scalar(select(func.sum(Model.current_episode)).where(Model.id.in_(run_ids)))
        )
        or 0
    )


async def consume(url: str, topology: Topology, db: Database, run_ids, records, timeout):
    broker = AsyncBroker(url, topology)
    log = EventLog(db, broker, topology)
    start = time.perf_counter()
    await log.start()
    try:
        while (done := await db.run(lambda s: _sum(s, run_ids))) < records:
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"timed out: {done} of {records} records committed")
            await asyncio.sleep(0.05)
        return time.perf_counter() - start, dict(log.counts), dict(broker.counts)
    finally:
        await broker.close()


def _sum(session, run_ids) -> int:
    return session.scalar(select(func.sum(Model.current_episode)).where(Model.id.in_(run_ids))) or 0


def baseline(db: Database, run_id: int, records: int, batch_rows: int) -> float:
    """The same rows written with plain multi-row INSERTs straight through the driver,
    `batch_rows` per transaction: what this server and driver take at most."""
    from web.events.ingest import _insert_episodes

    now = utcnow().isoformat(" ", "microseconds")  # as the event log sends it
    rows = [
        (run_id, i + 1, float(i % 500), 0.0, 20 + i % 30, 99, 0, i, now) for i in range(records)
    ]
    start = time.perf_counter()
    for first in range(0, records, batch_rows):
        chunk = rows[first : first + batch_rows]
        db.call(lambda s, chunk=chunk: _insert_episodes(s, chunk))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--per-event", type=int, default=50, help="episodes per EpisodesFinished")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="rollout workers per run")
    parser.add_argument("--broker", default=os.environ.get("RUNT_BENCH_AMQP_URL", DEFAULT_BROKER))
    parser.add_argument(
        "--database-url", default=os.environ.get("RUNT_BENCH_DATABASE_URL", DEFAULT_DB)
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    name = f"runt_bench_ingest_{os.getpid()}"
    server = make_url(args.database_url)
    url = str(server.set(database=name, query={"charset": "utf8mb4"}))
    prefix = fresh_prefix("ingest")
    topology = Topology(prefix)
    upgrade(DatabaseConfig(url=url))
    db = Database(DatabaseConfig(url=url, pool_size=4))
    try:
        run_ids = make_runs(db, args.runs, args.records)
        t0 = time.perf_counter()
        published = publish(
            args.broker, topology, events(run_ids, args.workers, args.records, args.per_event)
        )
        publish_s = time.perf_counter() - t0
        print(f"published {args.records:,} records in {published:,} events in {publish_s:.1f} s")
        seconds, stored, rejected = asyncio.run(
            consume(args.broker, topology, db, run_ids, args.records, args.timeout)
        )
        assert committed(db, run_ids) == args.records
        # The baseline writes rows of the size of the consumer's transactions.
        per_txn = args.per_event * 500
        print(f"event log: {args.records / seconds:,.0f} records/s; now the baseline")
        spare = make_runs(db, 1, args.records, "baseline")[0]
        base_s = baseline(db, spare, min(args.records, 200_000), per_txn)
        base_rate = min(args.records, 200_000) / base_s
    finally:
        db.close()
        delete_prefix(args.broker, prefix)
        drop_database(url)

    rate = args.records / seconds
    print_table(
        ["case", "records", "seconds", "records/s"],
        [
            ["event log (broker -> MariaDB)", f"{args.records:,}", f"{seconds:.2f}",
             f"{rate:,.0f}"],
            ["plain INSERTs (baseline)", f"{min(args.records, 200_000):,}", f"{base_s:.2f}",
             f"{base_rate:,.0f}"],
        ],
    )  # fmt: skip
    verdict = "met" if rate >= TARGET else "MISSED"
    print(f"\nrate/target = {rate / TARGET:.2f} (target {TARGET:,} records/s: {verdict})")
    print(f"rate/baseline = {rate / base_rate:.2f}")
    print(f"consumer counts: {stored}; rejected: {rejected or 'none'}")
    if args.json:
        print(json.dumps({"records": args.records, "seconds": seconds, "rate": rate,
                          "baseline_rate": base_rate, "target": TARGET}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
