"""The aiohttp application factory: `init_app(config)`.

`cleanup_ctx` owns the database (engine + thread pool) and the broker connection, so
they open with the app and close with it, in tests as in production.
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
from schemas.logs import bind_run
from web.auth import SESSION_COOKIE, LoginThrottle, SessionCache, token_digest
from web.db import store
from web.db.engine import Database
from web.events.eventlog import EventLog
from web.events.live import LiveFeed
from web.events.readcache import ReadCache
from web.events.supervise import Supervisor
from web.http import ApiError, Handler, errors_middleware, on_prepare
from web.inference import PolicyCache
from web.routes import setup_routes
from web.typedefs import (
    BROKER,
    CONFIG,
    DB,
    EVENTLOG,
    LIVE,
    POLICIES,
    PUBLIC_PATHS,
    READS,
    REPLAYS,
    SESSIONS,
    THROTTLE,
    TOPOLOGY,
    USER,
    WORKER,
    CurrentUser,
)

log = logging.getLogger("runt.web")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-Requested-With"


def _request_token(request: web.Request) -> tuple[str | None, bool]:
    """(token, whether it came from the session cookie)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    return request.cookies.get(SESSION_COOKIE) or None, True


def _check_csrf(request: web.Request) -> None:
    """A browser attaches the session cookie to any request to this site, a forged form
    post from another site included; it sends a custom header only from this site's own
    scripts (another origin would need a CORS preflight, which is never granted). So a
    state-changing request authenticated by the cookie must carry `X-Requested-With`.
    Bearer tokens are never sent by the browser on its own and need no such header."""
    if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise ApiError(
            403,
            f"a {request.method} with the session cookie must carry the header "
            f"{CSRF_HEADER} (e.g. `{CSRF_HEADER}: runt`), or authenticate with "
            "`Authorization: Bearer <token>`",
            field=CSRF_HEADER,
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every matched route but the public ones needs a valid session."""
    route = request.match_info.route
    if request.match_info.http_exception is not None or (
        route.resource is not None and route.resource.canonical in request.app[PUBLIC_PATHS]
    ):
        return await handler(request)
    token, from_cookie = _request_token(request)
    if token:
        digest = token_digest(request.app[CONFIG].secret_key, token)
        sessions = request.app[SESSIONS]
        found = sessions.get(digest)
        if found is None:
            found = await request.app[DB].read(store.session_user, digest)
            if found:
                sessions.put(digest, found)
        if found:
            if from_cookie:
                _check_csrf(request)
            request[USER] = CurrentUser(id=found[0], username=found[1], token_hash=digest)
            with bind_run(request.match_info.get("model_id")):
                return await handler(request)
    raise ApiError(401, "authentication required: log in at /login/")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    app[DB] = Database(cfg.database)
    app[BROKER] = make_async_bus(cfg.broker.url, app[TOPOLOGY])
    app[BROKER].start()
    app[EVENTLOG] = EventLog(app[DB], app[BROKER], app[TOPOLOGY])
    app[LIVE] = LiveFeed(app[BROKER], app[TOPOLOGY])
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
    app[POLICIES] = PolicyCache()
    app[REPLAYS] = {}
    app[SESSIONS] = SessionCache()
    app[READS] = ReadCache(config.api.read_cache_seconds)
    app[THROTTLE] = LoginThrottle(config.auth.login_max_failures, config.auth.login_window_seconds)
    app[PUBLIC_PATHS] = setup_routes(app)
    app.cleanup_ctx.append(_resources)
    return app
