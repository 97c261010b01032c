"""The aiohttp application factory: `init_app(config)`.

`cleanup_ctx` owns the database (engine + thread pool) and the broker connection, so
they open with the app and close with it, in tests as in production; the domain objects
the views call (web/domain/) are built on them there. The auth middleware is web/auth.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from broker.abc import BrokerUnavailable
from broker.aio import make_async_bus
from broker.tasks import cancel_and_wait
from broker.topology import Topology
from schemas.config import Config
from web.auth import auth_middleware
from web.db.engine import Database
from web.domain.policies import Policies
from web.domain.runs import Runs
from web.events.eventlog import EventLog
from web.events.live import LiveFeed
from web.events.readcache import ReadCache
from web.events.supervise import Supervisor
from web.http import errors_middleware, on_prepare
from web.openapi import document
from web.routes import setup_routes
from web.sessions import LoginThrottle, SessionCache
from web.typedefs import (
    BROKER,
    CONFIG,
    DB,
    EVENTLOG,
    LIVE,
    OPENAPI,
    POLICIES,
    PUBLIC_PATHS,
    READS,
    RUNS,
    SESSIONS,
    THROTTLE,
    TOPOLOGY,
    WORKER,
)

log = logging.getLogger("runt.web")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    app[DB] = Database(cfg.database)
    app[BROKER] = make_async_bus(cfg.broker.url, app[TOPOLOGY])
    app[BROKER].start()
    app[EVENTLOG] = EventLog(app[DB], app[BROKER], app[TOPOLOGY])
    app[LIVE] = LiveFeed(app[BROKER], app[TOPOLOGY])
    app[RUNS] = Runs(
        app[DB], app[BROKER], app[TOPOLOGY], app[READS], app[LIVE], cfg.training.allowed_modules
    )
    app[POLICIES] = Policies(app[DB], app[RUNS])
    tasks = []
    if app[WORKER] == 0:  # one process stores events and watches heartbeats; all stream
        app[EVENTLOG].on_stored = app[LIVE].stored
        tasks.append(asyncio.create_task(_start_event_log(app[EVENTLOG]), name="event-log"))
        supervisor = Supervisor(
            app[DB], app[BROKER], app[TOPOLOGY], app[EVENTLOG], cfg.supervision, app[LIVE].changed
        )
        tasks.append(asyncio.create_task(supervisor.run(), name="supervisor"))
    app[LIVE].listeners.append(app[READS].on_events)
    app[LIVE].start()
    yield
    await cancel_and_wait(tasks)
    await app[LIVE].close()
    await app[BROKER].close()
    await app[DB].aclose()


async def _start_event_log(eventlog: EventLog) -> None:
    """Begin consuming events once the broker answers; robust consumers then survive
    reconnects by themselves."""
    while True:
        try:
            await eventlog.start()
            return
        except BrokerUnavailable as exc:
            log.warning("event log waiting for the broker: %s", exc)
            await asyncio.sleep(2)


def init_app(config: Config, *, worker: int = 0) -> web.Application:
    """The web service's app, in web worker process `worker` (cli/workers.py). Worker 0
    is the primary: it runs the event log and the run supervisor (web/events/supervise.py)."""
    config.require_secret()
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=config.web.max_body_bytes,
    )
    app.on_response_prepare.append(on_prepare)
    app[CONFIG] = config
    app[TOPOLOGY] = Topology(config.broker.prefix)
    app[WORKER] = worker
    app[SESSIONS] = SessionCache()
    app[READS] = ReadCache(config.api.read_cache_seconds)
    app[THROTTLE] = LoginThrottle(config.auth.login_max_failures, config.auth.login_window_seconds)
    app[PUBLIC_PATHS] = setup_routes(app)
    app[OPENAPI] = document()
    app.cleanup_ctx.append(_resources)
    return app
