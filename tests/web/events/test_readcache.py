"""The per-process cache of runs lists and train-data pages (web/events/readcache.py): what it
keeps, when it lets go, and that through the API an answer never outlives a change made
by the same process nor crosses to another user. Across processes: tests/cli/test_web_workers.py."""

from __future__ import annotations

import asyncio

from schemas.messages import EpisodeFinished, MetricsReported, StatusChanged
from tests.conftest import Api
from tests.web.helpers import create
from web.events.readcache import ReadCache
from web.typedefs import LIVE, READS

PAGE = ("train", 1, 7, 1, 100)  # user 1, run 7, page 1 of 100
OTHER_PAGE = ("train", 1, 8, 1, 100)
LIST = ("models", 1, 1, 20, None, None)


def test_an_answer_is_kept_for_the_set_time_only():
    cache = ReadCache(seconds=1.0)
    cache.put(PAGE, b"page", cache.epoch, now=100.0)
    assert cache.get(PAGE, now=100.9) == b"page"
    assert cache.get(PAGE, now=101.0) is None
    assert cache.stats() == {"entries": 0, "hits": 1, "joined": 0, "misses": 0}


def test_a_stored_change_of_a_run_drops_its_pages_and_every_list():
    cache = ReadCache(seconds=60)
    for key in (PAGE, OTHER_PAGE, LIST, ("models", 2, 1, 20, "running", None)):
        cache.put(key, b"x", cache.epoch)
    cache.on_events([EpisodeFinished(run_id=7, worker=0, seq=0, reward=1.0, length=3)])
    assert cache.get(PAGE) is None
    assert cache.get(LIST) is None and cache.get(("models", 2, 1, 20, "running", None)) is None
    assert cache.get(OTHER_PAGE) == b"x"  # another run's page stays


def test_events_that_change_no_answer_drop_nothing():
    cache = ReadCache(seconds=60)
    cache.put(PAGE, b"x", cache.epoch)
    cache.on_events([MetricsReported(run_id=7, values={"losses/td_loss": 0.5})])
    assert cache.get(PAGE) == b"x"
    cache.on_events([StatusChanged(run_id=7, status="completed")])
    assert cache.get(PAGE) is None


def test_an_answer_read_while_something_changed_is_not_kept():
    cache = ReadCache(seconds=60)
    epoch = cache.epoch  # a request starts reading the database ...
    cache.runs_changed([7])  # ... a change of run 7 is stored meanwhile
    cache.put(PAGE, b"older", epoch)  # what the request read may predate the change
    assert cache.get(PAGE) is None


def test_zero_seconds_keeps_nothing_and_the_size_is_bounded():
    off = ReadCache(seconds=0)
    off.put(PAGE, b"x", off.epoch)
    assert off.get(PAGE) is None
    small = ReadCache(seconds=60, max_entries=2)
    for run in (1, 2, 3):
        small.put(("train", 1, run, 1, 100), b"x", small.epoch)
    assert small.stats()["entries"] == 2
    assert small.get(("train", 1, 1, 1, 100)) is None  # the oldest went first


class Reads:
    """A stand-in database read that waits until told to answer, and counts its calls."""

    def __init__(self):
        self.calls = 0
        self.go = asyncio.Event()

    async def __call__(self) -> bytes:
        self.calls += 1
        number = self.calls
        await self.go.wait()
        return f"answer {number}".encode()


async def test_requests_that_miss_together_share_one_read():
    cache, read = ReadCache(seconds=60), Reads()
    first = asyncio.ensure_future(cache.fetch(PAGE, read))
    second = asyncio.ensure_future(cache.fetch(PAGE, read))
    await asyncio.sleep(0)
    read.go.set()
    assert await first == await second == b"answer 1"
    assert read.calls == 1 and await cache.fetch(PAGE, read) == b"answer 1"
    assert cache.stats() == {"entries": 1, "hits": 1, "joined": 1, "misses": 1}


async def test_a_request_after_a_change_does_not_join_an_older_read():
    cache, read = ReadCache(seconds=60), Reads()
    before = asyncio.ensure_future(cache.fetch(PAGE, read))
    await asyncio.sleep(0)
    cache.runs_changed([7])  # stored while the first read runs
    after = asyncio.ensure_future(cache.fetch(PAGE, read))
    await asyncio.sleep(0)
    read.go.set()
    assert (await before, await after) == (b"answer 1", b"answer 2")
    assert await cache.fetch(PAGE, read) == b"answer 2"  # only the newer one was kept


async def test_a_shared_read_outlives_a_request_that_went_away_and_errors_reach_all():
    cache, read = ReadCache(seconds=60), Reads()
    leaving = asyncio.ensure_future(cache.fetch(PAGE, read))
    staying = asyncio.ensure_future(cache.fetch(PAGE, read))
    await asyncio.sleep(0)
    leaving.cancel()
    read.go.set()
    assert await staying == b"answer 1"

    async def failing() -> bytes:
        await asyncio.sleep(0)
        raise LookupError("no such model")

    both = [asyncio.ensure_future(cache.fetch(OTHER_PAGE, failing)) for _ in range(2)]
    for outcome in await asyncio.gather(*both, return_exceptions=True):
        assert isinstance(outcome, LookupError)
    assert cache.get(OTHER_PAGE) is None  # an error is not kept


async def heard(app, notices: int) -> None:
    """Wait until the process has heard `notices` notices (its own included)."""
    for _ in range(500):
        if app[LIVE].counts["notices"] >= notices:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"heard {app[LIVE].counts['notices']} notices, not {notices}")


async def test_a_kept_answer_is_served_again_and_follows_this_process_writes(alice: Api, client):
    reads = client.server.app[READS]
    first = await create(alice)
    await heard(client.server.app, 1)  # the run's creation, heard back
    for _ in range(20):  # a late notice (the event log storing the creation) or the 1 s
        _, listing = await alice.get("/models/")  # limit passing on a loaded machine may
        hits = reads.hits  # drop the answer between two reads: then the pair is read again
        _, again = await alice.get("/models/")
        if reads.hits > hits:
            break
        await asyncio.sleep(0.05)
    assert again == listing and reads.hits == hits + 1  # served from memory

    second = await create(alice)  # a new run: the list shows it at once
    _, listing = await alice.get("/models/")
    assert [m["id"] for m in listing["data"]["models"]] == [second, first]
    status, _ = await alice.post("/stop-train/", json={"model_id": first})
    assert status == 200
    _, listing = await alice.get("/models/")
    assert {m["id"]: m["status"] for m in listing["data"]["models"]}[first] == "stopped"


async def test_a_kept_answer_is_never_served_to_another_user(alice: Api, bob: Api):
    alices = await create(alice)
    for _ in range(2):  # the second answer comes from memory
        status, _ = await alice.get(f"/models/{alices}/train-data/")
        assert status == 200
        _, listing = await alice.get("/models/")
        assert listing["data"]["total"] == 1
    status, body = await bob.get(f"/models/{alices}/train-data/")
    assert status == 404 and body["message"] == "model_id: no such model"
    _, listing = await bob.get("/models/")
    assert listing["data"]["total"] == 0
