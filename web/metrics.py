"""GET /metrics: counters of the web service's consumers, for operators.

What the event log stored (by kind, duplicates included), what the web service's
consumers rejected (`dead_lettered`, by kind: malformed, oversized, failing; `retried`),
how many messages wait in the dead-letter queue, whichever consumer put them there
(the agents' and actors' included), and what the live streams' feed received.

Counters are those of the web worker process that answers (`worker`): with
`web.workers` > 1 the event log runs in worker 0 only, so its counters are there.
"""

from __future__ import annotations

from aiohttp import web

from schemas import api
from web.http import dump, envelope
from web.typedefs import BROKER, EVENTLOG, LIVE, READS, TOPOLOGY, WORKER


async def metrics(request: web.Request) -> web.Response:
    broker = request.app[BROKER]
    data = {
        "worker": request.app[WORKER],
        "event_log": dict(request.app[EVENTLOG].counts),
        "live": dict(request.app[LIVE].counts),
        "reads": request.app[READS].stats(),
        "consumers": dict(broker.counts),
        "dead_letter_queue": await broker.queue_depth(request.app[TOPOLOGY].dead_letters()),
    }
    return envelope(dump(api.MetricsOut, data))
