"""Latency of a deep page of `GET /models/<id>/train-data/` on MariaDB.

What it measures
----------------
A run with 100,000 episodes shows its training data 100 rows at a time; page 900 is
rows 89,901..90,000. `web.db.store.train_data_page` serves it with an index range seek
(``episode BETWEEN offset+1 AND offset+100``), relying on the event-log consumer's rule
that a run's episodes are exactly 1..current_episode, so a deep page should cost as
much as the first one. This script checks that, end to
end through the real web app, and prints p50/p90/p99/max in milliseconds for:

* ``http deep``     GET ...?page=900&page_size=100, sequential, after a warm-up;
* ``http shallow``  GET ...?page=1&page_size=100, the same number of requests (baseline);
* ``store deep``    `store.train_data_page` called directly (no HTTP, no event loop);
* ``sql count``     ``SELECT COUNT(*) ... WHERE model_id = ?``, which the page does not need;
* ``sql deferred``  a deferred join (OFFSET over the index, then rows by id), the
  best an OFFSET query does;
* ``sql naive``     ``SELECT <all columns> ... ORDER BY episode LIMIT 100 OFFSET 89900``;
* ``sql keyset``    ``... WHERE model_id = ? AND episode > 89900 ORDER BY episode LIMIT 100``,
  the shape of the served query: an index seek instead of an index walk,

then the ratio deep/shallow at p99 and PASS/MISS against the target "deep page p99
under 20 ms". The exit status is 0 whatever the verdict (it is a benchmark); it is 1
only when an answer is wrong (not 200, or not the expected rows) or setup fails.

How to run
----------
With MariaDB on 127.0.0.1:3306 (root, no password), from the repository root::

    .venv/bin/python bench/train_data_latency.py [--requests 1000] [--json] [--explain]

The direct SQL cases run ``--sql-requests`` times (default 200: the naive query
takes tens of ms each). A run takes about a minute.

``--database-url`` (or $RUNT_BENCH_DATABASE_URL) names the server; the script makes
its own database ``runt_bench_<pid>`` there, migrates it with `web.db.migrate.upgrade`,
fills two models with 100,000 episodes each (bulk inserts of 10,000 rows), serves the
app on a free 127.0.0.1 port with aiohttp's AppRunner, logs in through POST /login/
and drops the database at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web
from benchlib import drop_database
from sqlalchemy import Engine, make_url, text

from schemas.api import TrainRequest
from schemas.config import DatabaseConfig, load_config
from web.app import init_app
from web.auth import hash_password
from web.db import store
from web.db.engine import Database
from web.db.migrate import upgrade

DEFAULT_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
USERNAME, PASSWORD = "bench", "bench-password"
TARGET_P99_MS = 20.0
CHUNK = 10_000
COLUMNS = (
    "model_id, episode, reward, smoothed_reward, length, worker, worker_incarnation, "
    "worker_seq, create_time"
)
INSERT_SQL = f"INSERT INTO training_data ({COLUMNS}) VALUES ({', '.join(['%s'] * 9)})"
COUNT_SQL = "SELECT COUNT(*) FROM training_data WHERE model_id = :m"
NAIVE_SQL = (
    "SELECT id, model_id, episode, reward, smoothed_reward, length, worker, worker_seq, "
    "create_time FROM training_data WHERE model_id = :m ORDER BY episode "
    "LIMIT :size OFFSET :offset"
)
KEYSET_SQL = (
    "SELECT episode, reward, smoothed_reward, length, create_time FROM training_data "
    "WHERE model_id = :m AND episode > :offset ORDER BY episode LIMIT :size"
)
DEFERRED_SQL = (
    "SELECT t.episode, t.reward, t.smoothed_reward, t.length, t.create_time "
    "FROM training_data t JOIN (SELECT id FROM training_data WHERE model_id = :m "
    "ORDER BY episode LIMIT :size OFFSET :offset) p ON p.id = t.id ORDER BY t.episode"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RUNT_BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="MariaDB/MySQL server URL; the database name in it is replaced "
        "(default: $RUNT_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests first")
    parser.add_argument(
        "--sql-requests", type=int, default=200, help="timed calls per direct SQL/store case"
    )
    parser.add_argument("--rows", type=int, default=100_000, help="episodes per model")
    parser.add_argument("--page", type=int, default=900, help="the deep page")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN of the queries")
    args = parser.parse_args(argv)
    if args.page * args.page_size > args.rows:
        parser.error("--page * --page-size must not exceed --rows")
    return args


# ---- setup ---------------------------------------------------------------------------------


def bench_url(server_url: str) -> str:
    url = make_url(server_url).set(database=f"runt_bench_{os.getpid()}")
    return url.render_as_string(hide_password=False)


def episode_rows(model_id: int, rows: int, seed: int) -> list[tuple[Any, ...]]:
    """A plausible learning curve: reward rises from about -200 towards +200 with noise;
    smoothed_reward is its EMA (0.95); four workers take turns."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1) + timedelta(days=model_id)
    out, ema = [], None
    for episode in range(1, rows + 1):
        reward = -200 + 400 * (1 - math.exp(-episode / (rows / 4))) + rng.gauss(0, 30)
        ema = reward if ema is None else 0.95 * ema + 0.05 * reward
        length = max(1, int(rng.gauss(200 + reward / 2, 25)))
        worker = episode % 4
        out.append(
            (
                model_id,
                episode,
                reward,
                ema,
                length,
                worker,
                0,  # the worker's first incarnation
                episode // 4,
                start + timedelta(seconds=episode * 2),
            )
        )
    return out


def fill(db: Database, rows: int) -> tuple[int, int, float]:
    """One user, two models of `rows` episodes each; (model id, other id, seconds)."""
    started = time.perf_counter()
    user_id = db.call(store.add_user, USERNAME, hash_password(PASSWORD))

    def new_model(session: Any, name: str, algorithm: str) -> int:
        req = TrainRequest(name=name, algorithm=algorithm, target_episode=rows)
        return store.create_model(session, user_id, req, seed=1).id

    model_ids = [db.call(new_model, "bench-deep", "dqn"), db.call(new_model, "bench-other", "ppo")]
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for model_id in model_ids:
            data = episode_rows(model_id, rows, seed=model_id)
            for i in range(0, len(data), CHUNK):
                cursor.executemany(INSERT_SQL, data[i : i + CHUNK])
                raw.commit()
            # The event-log consumer keeps current_episode equal to the episode count.
            cursor.execute("UPDATE models SET current_episode = %s WHERE id = %s", (rows, model_id))
            raw.commit()
        cursor.execute("ANALYZE TABLE training_data")
        cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
    return model_ids[0], model_ids[1], time.perf_counter() - started


# ---- measuring -----------------------------------------------------------------------------


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def summary(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    return {
        "n": len(s),
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "max": s[-1],
        "mean": sum(s) / len(s),
    }


class WrongAnswer(Exception):
    pass


def check_page(status: int, raw: bytes, first_episode: int, size: int) -> None:
    if status != 200:
        raise WrongAnswer(f"HTTP {status}: {raw[:300].decode(errors='replace')}")
    rows = json.loads(raw)["data"]["train_data"]
    episodes = [r["episode"] for r in rows]
    expected = list(range(first_episode, first_episode + size))
    if episodes != expected:
        got = f"{episodes[:1]}..{episodes[-1:]}" if episodes else "none"
        raise WrongAnswer(f"expected {size} rows from episode {first_episode}, got {got}")


async def time_http(
    client: aiohttp.ClientSession, path: str, first: int, size: int, warmup: int, n: int
) -> list[float]:
    samples = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        async with client.get(path) as resp:
            raw = await resp.read()
            status = resp.status
        elapsed = (time.perf_counter() - t0) * 1000
        check_page(status, raw, first, size)
        if i >= warmup:
            samples.append(elapsed)
    return samples


async def run_http(args: argparse.Namespace, url: str, model_id: int) -> dict[str, list[float]]:
    cfg = load_config(
        overrides={
            "database": {"url": url},
            "broker": {"url": "memory://"},
            "secret_key": "x" * 32,
            "log_level": "WARNING",
            # The database's page, not a kept answer: the same page is asked 1,000 times.
            "api": {"max_page_size": max(500, args.page_size), "read_cache_seconds": 0},
        }
    )
    runner = web.AppRunner(init_app(cfg), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        login = {"username": USERNAME, "password": PASSWORD}
        async with aiohttp.ClientSession(base) as anon, anon.post("/login/", json=login) as r:
            body = await r.json()
            if r.status != 200:
                raise WrongAnswer(f"login: HTTP {r.status}: {body}")
            token = body["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        size, path = args.page_size, f"/models/{model_id}/train-data/"
        deep_first = (args.page - 1) * size + 1
        async with aiohttp.ClientSession(base, headers=headers) as client:
            deep = await time_http(
                client,
                f"{path}?page={args.page}&page_size={size}",
                deep_first,
                size,
                args.warmup,
                args.requests,
            )
            shallow = await time_http(
                client, f"{path}?page=1&page_size={size}", 1, size, args.warmup, args.requests
            )
    finally:
        await runner.cleanup()
    return {"http deep": deep, "http shallow": shallow}


def time_calls(fn: Callable[[], Any], warmup: int, n: int) -> list[float]:
    samples = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        fn()
        elapsed = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            samples.append(elapsed)
    return samples


def run_direct(
    args: argparse.Namespace, db: Database, user_id: int, model_id: int
) -> dict[str, list[float]]:
    size, offset = args.page_size, (args.page - 1) * args.page_size
    params = {"m": model_id, "size": size, "offset": offset}
    warm, n = args.warmup, args.sql_requests
    out: dict[str, list[float]] = {}

    def store_page() -> None:
        _, _, rows = db.call(store.train_data_page, user_id, model_id, args.page, size)
        if not rows or rows[0]["episode"] != offset + 1 or len(rows) != size:
            raise WrongAnswer("store.train_data_page returned the wrong rows")

    out["store deep"] = time_calls(store_page, warm, n)
    with db.engine.connect() as conn:
        for name, sql in (
            ("sql count", COUNT_SQL),
            ("sql deferred", DEFERRED_SQL),
            ("sql naive", NAIVE_SQL),
            ("sql keyset", KEYSET_SQL),
        ):
            stmt = text(sql)
            out[name] = time_calls(lambda s=stmt: conn.execute(s, params).all(), warm, n)
        for name, sql in (("naive", NAIVE_SQL), ("deferred", DEFERRED_SQL), ("keyset", KEYSET_SQL)):
            rows = conn.execute(text(sql), params).all()
            if [r.episode for r in rows] != list(range(offset + 1, offset + size + 1)):
                raise WrongAnswer(f"{name} SQL returned the wrong rows")
    return out


def explain(engine: Engine, model_id: int, args: argparse.Namespace) -> None:
    params = {"m": model_id, "size": args.page_size, "offset": (args.page - 1) * args.page_size}
    with engine.connect() as conn:
        queries = (
            ("count", COUNT_SQL),
            ("deferred", DEFERRED_SQL),
            ("naive", NAIVE_SQL),
            ("keyset", KEYSET_SQL),
        )
        for name, sql in queries:
            print(f"EXPLAIN {name}:")
            result = conn.execute(text(f"EXPLAIN {sql}"), params)
            cols = list(result.keys())
            for row in result:
                print("   ", ", ".join(f"{c}={v}" for c, v in zip(cols, row, strict=True)))


# ---- report --------------------------------------------------------------------------------


def report(results: dict[str, dict[str, float]], meta: dict[str, Any]) -> dict[str, Any]:
    print(
        f"\ntrain-data latency: {meta['rows']:,} episodes/model x 2 models, page {meta['page']} "
        f"(episodes {meta['first_episode']}..), page_size {meta['page_size']}, "
        f"{meta['requests']} sequential requests after {meta['warmup']} warm-up "
        f"(direct cases: {meta['sql_requests']})"
    )
    print(f"{'case':<14}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'mean':>9}   (ms)")
    for name, s in results.items():
        cells = "".join(f"{s[k]:9.2f}" for k in ("p50", "p90", "p99", "max", "mean"))
        print(f"{name:<14}{cells}")
    deep, shallow = results["http deep"], results["http shallow"]
    ratio = deep["p99"] / shallow["p99"]
    verdict = "PASS" if deep["p99"] < TARGET_P99_MS else "MISS"
    saved = results["sql naive"]["p50"] - results["sql deferred"]["p50"]
    print(f"\ndeep/shallow p99 ratio: {ratio:.2f}")
    print(f"deferred join saves {saved:.2f} ms at p50 over the naive OFFSET query")
    print(f"target: http deep p99 < {TARGET_P99_MS:.0f} ms -> {verdict} ({deep['p99']:.2f} ms)")
    return {
        **meta,
        "results_ms": results,
        "deep_shallow_p99_ratio": ratio,
        "target_p99_ms": TARGET_P99_MS,
        "verdict": verdict,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = bench_url(args.database_url)
    db: Database | None = None
    try:
        upgrade(DatabaseConfig(url=url))
        db = Database(DatabaseConfig(url=url))
        model_id, _, fill_s = fill(db, args.rows)
        user_id = db.call(store.find_user, USERNAME)[0]  # type: ignore[index]
        print(f"database {make_url(url).database}: filled {2 * args.rows:,} rows in {fill_s:.1f} s")
        if args.explain:
            explain(db.engine, model_id, args)
        samples = asyncio.run(run_http(args, url, model_id))
        samples.update(run_direct(args, db, user_id, model_id))
        meta = {
            "rows": args.rows,
            "page": args.page,
            "page_size": args.page_size,
            "first_episode": (args.page - 1) * args.page_size + 1,
            "requests": args.requests,
            "warmup": args.warmup,
            "sql_requests": args.sql_requests,
            "fill_seconds": fill_s,
        }
        out = report({k: summary(v) for k, v in samples.items()}, meta)
        if args.json:
            print(json.dumps(out, indent=2))
        return 0
    except WrongAnswer as exc:
        print(f"wrong answer: {exc}", file=sys.stderr)
        return 1
    finally:
        if db is not None:
            db.close()
        try:
            drop_database(url)
        except Exception as exc:  # keep the original error, if any, in view
            print(f"could not drop {make_url(url).database}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
