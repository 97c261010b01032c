"""/healthz against the real broker and database, and the promise that a slow database
call never stalls the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from sqlalchemy import text

from schemas.config import DatabaseConfig
from schemas.logs import JsonFormatter, bind_run, setup_logging
from tests.conftest import make_config
from web.app import init_app
from web.db.engine import Database


async def wait_for_health(client, want: int, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get("/healthz")
        body = await resp.json()
        if resp.status == want or time.monotonic() > deadline:
            assert resp.status == want, body
            return body
        await asyncio.sleep(0.2)


@pytest.mark.rabbitmq
async def test_healthz_is_green_with_the_real_broker_and_database(db_url, amqp_url, aiohttp_client):
    client = await aiohttp_client(init_app(make_config(db_url, broker={"url": amqp_url})))
    body = await wait_for_health(client, 200)
    assert body["data"] == {"database": True, "broker": True}


async def test_healthz_reports_an_unreachable_broker(db_url, aiohttp_client):
    cfg = make_config(db_url, broker={"url": "amqp://guest:guest@127.0.0.1:1/"})
    client = await aiohttp_client(init_app(cfg))
    body = await wait_for_health(client, 503)
    assert body["data"] == {"database": True, "broker": False}
    assert "broker" in body["message"]


async def test_healthz_reports_an_unreachable_database(aiohttp_client, tmp_path):
    cfg = make_config("mysql+pymysql://root@127.0.0.1:1/none", database={"pool_timeout": 1})
    client = await aiohttp_client(init_app(cfg))
    body = await wait_for_health(client, 503)
    assert body["data"]["database"] is False


@pytest.mark.mysql
@pytest.mark.parametrize("call", ["run", "read", "read on threads"])
async def test_a_slow_query_does_not_block_the_event_loop(mysql_server, call):
    db = Database(DatabaseConfig(url=mysql_server, async_reads=call != "read on threads"))
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        if call == "run":
            await db.run(lambda session: session.execute(text("SELECT SLEEP(0.5)")))
        else:
            slept = await db.read(lambda conn: conn.scalar(text("SELECT SLEEP(0.5) + 7")))
            assert slept == 7
    finally:
        task.cancel()
        await db.aclose()
    assert ticks >= 25  # the loop kept ticking (about 50 times) while MySQL slept


def test_log_records_are_json_and_carry_the_run_id(capsys):
    setup_logging("INFO", "json")
    log = logging.getLogger("runt.test")
    with bind_run(42):
        log.info("episode %d done", 7, extra={"reward": 12.5})
    log.info("no run here")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["run_id"] == 42 and lines[0]["msg"] == "episode 7 done"
    assert lines[0]["reward"] == 12.5 and lines[0]["level"] == "INFO"
    assert "run_id" not in lines[1]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
