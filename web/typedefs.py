"""Typed keys of the aiohttp application and request state.

The keys' types are imported for type checkers only, so importing the keys imports
nothing else: web/auth.py uses them and stays light enough for `runt user add`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from broker.aio import AsyncBroker
    from broker.topology import Topology
    from schemas.config import Config
    from web.db.engine import Database
    from web.domain.policies import Policies
    from web.domain.runs import Runs
    from web.events.eventlog import EventLog
    from web.events.live import LiveFeed
    from web.events.readcache import ReadCache
    from web.sessions import LoginThrottle, SessionCache


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    token_hash: str


CONFIG: web.AppKey[Config] = web.AppKey("config")
DB: web.AppKey[Database] = web.AppKey("db")
BROKER: web.AppKey[AsyncBroker] = web.AppKey("broker")
TOPOLOGY: web.AppKey[Topology] = web.AppKey("topology")
EVENTLOG: web.AppKey[EventLog] = web.AppKey("eventlog")
LIVE: web.AppKey[LiveFeed] = web.AppKey("live")
WORKER = web.AppKey("worker", int)  # web worker process; 0 runs the event log
RUNS: web.AppKey[Runs] = web.AppKey("runs")  # submit, stop, resume (web/domain/runs.py)
POLICIES: web.AppKey[Policies] = web.AppKey("policies")  # web/domain/policies.py
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
SESSIONS: web.AppKey[SessionCache] = web.AppKey("sessions")  # recently confirmed sessions
READS: web.AppKey[ReadCache] = web.AppKey("reads")  # answers of the busiest reads
PUBLIC_PATHS = web.AppKey("public_paths", frozenset)
OPENAPI = web.AppKey("openapi", dict)  # this API's OpenAPI document (web/openapi.py)

USER = web.RequestKey("user", CurrentUser)  # the session owner of an authenticated request
