"""GET /metrics: counters of the web service's consumers, for operators.

What the event log stored (by kind, duplicates included), what the web service's
consumers rejected (`dead_lettered`, by kind: malformed, oversized, failing; `retried`),
and how many messages wait in the dead-letter queue, whichever consumer put them there
(the agents' and actors' included).
"""

from __future__ import annotations

from aiohttp import web

from schemas import api
from web.http import dump, envelope
from web.typedefs import BROKER, EVENTLOG, TOPOLOGY


async def metrics(request: web.Request) -> web.Response:
    broker = request.app[BROKER]
    data = {
        "event_log": dict(request.app[EVENTLOG].counts),
        "consumers": dict(broker.counts),
        "dead_letter_queue": await broker.queue_depth(request.app[TOPOLOGY].dead_letters()),
    }
    return envelope(dump(api.MetricsOut, data))
