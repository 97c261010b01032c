"""POST /trainingassistent/ through the API, on SQLite and MariaDB: streamed advice on a
stored run or a free request, as text or SSE, in English or Chinese, bad input, and an
optional language model (a small fake of the streaming chat-completions API)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from aiohttp import web

from tests.conftest import Api, login, make_config
from tests.web.helpers import (
    PRESET,
    SHORT_REWARDS,
    add_episodes,
    collapsing_rewards,
    plateau_rewards,
    solved_rewards,
)
from web.app import init_app
from web.assistant import engine
from web.db.tables import Metric

PATH = "/trainingassistent/"
DIVERGING = {
    "algorithm": "dqn",
    "env_id": "CartPole-v1",
    "hyperparameters": {"learning_rate": 0.05},
}


async def ask(api: Api, headers: dict | None = None, **kwargs) -> tuple[int, str, str]:
    """(status, content type, whole body as text)."""
    headers = {**api.headers, **(headers or {})}
    async with api.client.post(PATH, headers=headers, **kwargs) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


def sse_events(raw: str) -> list[tuple[str, str]]:
    """(event, data) pairs; multi-line data joined with newlines, as browsers do."""
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        kind, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
        events.append((kind, "\n".join(data)))
    return events


# ---- advice ---------------------------------------------------------------------------------


async def test_a_stored_run_is_read_from_the_database(alice: Api, bob: Api, database):
    run = {k: PRESET[k] for k in PRESET if k != "hyperparameters"}
    status, body = await alice.post(
        "/train/", json={**run, "hyperparameters": PRESET["hyperparameters"]}
    )
    assert status == 201, body
    model_id = body["id"]
    add_episodes(database, model_id, plateau_rewards())
    database.call(
        lambda s: s.add_all(
            Metric(
                model_id=model_id,
                event_id=f"m{i}",
                env_steps=40_000 + 1000 * i,
                values={"charts/epsilon": 0.04, "losses/td_loss": 0.8},
            )
            for i in range(20)
        )
    )

    status, ctype, advice = await ask(alice, json={"model_id": model_id})
    assert status == 200 and ctype == "text/plain; charset=utf-8"
    assert advice.startswith(f"# Training assistant — run {model_id}\n")
    assert "- dqn / CartPole-v1; Gymnasium reward_threshold = 475." in advice
    assert "- 300 episodes, smoothed over 30" in advice
    assert "Metrics (20 reports): loss_name = losses/td_loss" in advice
    assert "**exploration_final_eps: 0.04 → 0.1** — The curve has been flat" in advice
    assert "Evidence: epsilon = 0.04, env_steps = 59000, anneal_steps = 8000" in advice
    assert "**target_episode: 3000 → 300** — No progress for" in advice
    assert "**exploration: linear → apex**" in advice

    status, _, other = await ask(bob, json={"model_id": model_id})
    assert status == 404 and json.loads(other)["data"]["field"] == "model_id"


async def test_a_free_request_as_a_form_like_runt_sent_it(alice: Api):
    form = {
        "algorithm": "dqn",
        "env_id": "CartPole-v1",
        "hyperparameters": json.dumps({"learning_rate": 0.05}),
        "rewards": json.dumps(collapsing_rewards()),
        "lang": "en",
    }
    status, _, advice = await ask(alice, data=form)
    assert status == 200
    assert "Verdict: collapse after a peak." in advice
    assert "**learning_rate: 0.05 → 0.001** — learning_rate = 0.05 is above the usual" in advice
    assert "drop_from_peak = 0.9" in advice  # the collapse is part of the evidence
    assert "**stop_reward → 475** — The smoothed reward fell from" in advice
    # settings the request left out are read as runt's DQN defaults, and say so
    assert "**target_update_interval: 1000 (default) → 2000**" in advice


async def test_sse_in_chinese_from_accept_language(alice: Api):
    request = {"algorithm": "dqn", "env_id": "CartPole-v1", "rewards": solved_rewards()}
    headers = {"Accept": "text/event-stream", "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    status, ctype, raw = await ask(alice, headers=headers, json=request)
    assert status == 200 and ctype == "text/event-stream"
    events = sse_events(raw)
    assert events[-1] == ("done", json.dumps({"source": "engine"}))
    assert {kind for kind, _ in events[:-1]} == {"message"}
    advice = "".join(data for _, data in events[:-1])
    assert advice.startswith("# 训练助手\n")
    for heading in ("## 一、超参数调整", "## 二、训练策略优化", "## 三、模型结构改进"):
        assert heading in advice
    assert "**stop_reward → 475** — 已解决：达到 500，阈值为 475" in advice  # noqa: RUF001


async def test_a_too_short_curve(alice: Api):
    status, _, advice = await ask(alice, json={"rewards": SHORT_REWARDS, "lang": "en"})
    assert status == 200
    assert "**target_episode → 100** — Only 8 episodes: at least 20 are needed" in advice
    assert "Evidence: episodes = 8, minimum = 20." in advice


async def test_the_first_chunk_leaves_before_the_analysis_is_done(alice: Api, monkeypatch):
    """The engine is held at its first step until the test has read the first chunk."""
    gate, analysed = threading.Event(), threading.Event()
    real_diagnose = engine.diagnose

    def held_diagnose(facts):
        assert gate.wait(10), "the test never released the analysis"
        diagnosis = real_diagnose(facts)
        analysed.set()
        return diagnosis

    monkeypatch.setattr(engine, "diagnose", held_diagnose)
    request = {"algorithm": "dqn", "env_id": "CartPole-v1", "rewards": plateau_rewards()}
    started = time.monotonic()
    async with alice.client.post(PATH, json=request, headers=alice.headers) as resp:
        assert resp.status == 200
        first, _ = await asyncio.wait_for(resp.content.readchunk(), 5)
        waited = time.monotonic() - started
        assert first.decode() == "# Training assistant\n\n"
        assert not analysed.is_set()
        assert waited < 0.2, f"first bytes after {waited * 1000:.0f} ms"
        gate.set()
        chunks = [first] + [chunk async for chunk, _ in resp.content.iter_chunks()]
    assert analysed.is_set()
    texts = [chunk.decode() for chunk in chunks]
    assert len(texts) >= 5  # heading, overview, then one chunk per section
    assert texts[1].startswith("## What the run shows")
    assert "## 3. Model-architecture improvements" in "".join(texts)


async def test_an_engine_failure_ends_the_stream_saying_so(alice: Api, monkeypatch):
    def broken(facts):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "diagnose", broken)
    status, _, advice = await ask(alice, json={"rewards": SHORT_REWARDS})
    assert status == 200  # sent with the heading, before the failure
    assert advice.startswith("# Training assistant\n")
    assert advice.endswith("_The analysis failed; the error is in the service log._\n")


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "status", "field"),
    [
        ({"rewards": [1.0, "a"]}, 400, "rewards.1"),
        ({"rewards": "lots"}, 400, "rewards"),
        ({"rewards": [1.0, True]}, 400, "rewards.1"),
        ({"hyperparameters": [1, 2]}, 400, "hyperparameters"),
        ({"hyperparameters": "fast"}, 400, "hyperparameters"),
        ({"hyperparameters": {"learning_rate": "fast"}}, 400, "hyperparameters.learning_rate"),
        ({"hyperparameters": {"hidden": "big"}}, 400, "hyperparameters.hidden"),
        ({"model_id": 987654}, 404, "model_id"),
        ({"model_id": 0}, 400, "model_id"),
        ({"model_id": 5, "rewards": [1.0]}, 400, "model_id"),
        ({}, 400, "model_id"),
        ({"rewards": [1.0], "lang": "fr"}, 400, "lang"),
        ({"rewards": [1.0], "algorithm": "a2c"}, 400, "algorithm"),
    ],
)
async def test_bad_input_names_the_field(alice: Api, request_body, status, field):
    got, _, raw = await ask(alice, json=request_body)
    body = json.loads(raw)
    assert (got, body["status"], body["data"]["field"]) == (status, "error", field), body
    assert body["message"].startswith(f"{field}: ")


async def test_not_a_number_in_json(alice: Api):
    got, _, raw = await ask(
        alice, data=b'{"rewards": [1, NaN]}', headers={"Content-Type": "application/json"}
    )
    assert got == 400 and json.loads(raw)["data"]["field"] == "rewards.1"


async def test_a_session_is_needed(client):
    async with client.post(PATH, json={"rewards": [1.0]}) as resp:
        assert resp.status == 401


# ---- the optional language model -----------------------------------------------------------

ANSWER = ["Lower the ", "learning rate ", "to 0.001."]


def fake_llm(behaviour: str, seen: list[dict]) -> web.Application:
    """A streaming chat-completions endpoint: it answers ANSWER piece by piece, or fails."""

    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append({"auth": request.headers.get("Authorization"), "body": await request.json()})
        if behaviour == "error":
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        if behaviour == "slow":
            await asyncio.sleep(1.5)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ANSWER:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if behaviour == "broken":
            await response.write(b"data: {oops\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


@pytest.fixture
def with_llm(db_url, make_user, monkeypatch, aiohttp_server, aiohttp_client):
    async def start(behaviour: str, timeout: float = 5.0) -> tuple[Api, list[dict]]:
        seen: list[dict] = []
        server = await aiohttp_server(fake_llm(behaviour, seen))
        monkeypatch.setenv("RUNT_LLM_API_KEY", "sk-test-key")
        assistant = {
            "llm_base_url": str(server.make_url("/v1")),
            "llm_model": "fake-gpt",
            "llm_timeout_seconds": timeout,
        }
        client = await aiohttp_client(init_app(make_config(db_url, assistant=assistant)))
        make_user("carol")
        return Api(client, await login(client, "carol")), seen

    return start


async def test_the_model_answer_is_relayed_with_the_findings_in_its_prompt(with_llm):
    api, seen = await with_llm("ok")
    request = {**DIVERGING, "rewards": collapsing_rewards()}
    status, _, raw = await ask(api, headers={"Accept": "text/event-stream"}, json=request)
    assert status == 200
    events = sse_events(raw)
    assert events[-1] == ("done", json.dumps({"source": "llm"}))
    advice = "".join(data for _, data in events[:-1])
    assert advice == (
        "# Training assistant\n\n_Answer by the language model fake-gpt, given the built-in "
        "findings._\n\n" + "".join(ANSWER)
    )
    (call,) = seen
    assert call["auth"] == "Bearer sk-test-key"
    assert call["body"]["model"] == "fake-gpt" and call["body"]["stream"] is True
    system, user = call["body"]["messages"]
    assert system["role"] == "system" and "three sections" in system["content"]
    assert "**learning_rate: 0.05 → 0.001**" in user["content"]
    assert "**stop_reward → 475**" in user["content"]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("slow", "no answer within 0.3 s"),
        ("error", "HTTP 500 from http://"),
        ("broken", "malformed stream piece"),
    ],
)
async def test_the_engine_answers_when_the_model_fails(with_llm, behaviour, reason):
    api, seen = await with_llm(behaviour, timeout=0.3)
    status, _, advice = await ask(api, json={**DIVERGING, "rewards": collapsing_rewards()})
    assert status == 200 and len(seen) == 1
    note = "_The language model did not answer ("
    assert note in advice and reason in advice.split(note)[1].split(")")[0]
    after = advice.split(note)[1]
    assert "## 1. Hyperparameter adjustments" in after
    assert "**learning_rate: 0.05 → 0.001**" in after
    if behaviour == "broken":  # what it said before it broke stays, the engine follows
        assert advice.index("".join(ANSWER)) < advice.index(note)
