"""Typed keys of the aiohttp application and request state."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from broker.aio import AsyncBroker
from broker.topology import Topology
from schemas.config import Config
from web.auth import LoginThrottle, SessionCache
from web.db.engine import Database
from web.events.eventlog import EventLog
from web.events.live import LiveFeed
from web.events.readcache import ReadCache
from web.inference import PolicyCache


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    token_hash: str


CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
BROKER = web.AppKey("broker", AsyncBroker)
TOPOLOGY = web.AppKey("topology", Topology)
EVENTLOG = web.AppKey("eventlog", EventLog)
LIVE = web.AppKey("live", LiveFeed)
WORKER = web.AppKey("worker", int)  # web worker process; 0 runs the event log
POLICIES = web.AppKey("policies", PolicyCache)
REPLAYS = web.AppKey("replays", dict)  # (model, version, episodes) -> GIF bytes
THROTTLE = web.AppKey("login_throttle", LoginThrottle)
SESSIONS = web.AppKey("sessions", SessionCache)  # recently confirmed sessions
READS = web.AppKey("reads", ReadCache)  # answers of the busiest reads (web/events/readcache.py)
PUBLIC_PATHS = web.AppKey("public_paths", frozenset)

USER = web.RequestKey("user", CurrentUser)  # the session owner of an authenticated request
