"""`POST /trainingassistent/`: streamed advice on a run.

The answer starts with a heading as soon as the input is valid, then each part of the
analysis as the engine produces it (the engine runs on a worker thread, part by part).
With a language model configured, the engine's findings go into its prompt and its
answer is relayed instead; if it fails, the engine's advice follows a note saying so.
Plain chunked text by default, server-sent events with `Accept: text/event-stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from schemas.api import AssistantRequest
from schemas.config import AssistantConfig
from web.assistant import facts as run_facts
from web.assistant import llm, text
from web.assistant.engine import advise
from web.assistant.hyper import bad_hyperparameter
from web.assistant.records import Part, RunFacts
from web.db import store
from web.http import SECURITY_HEADERS, ApiError, parse_body
from web.typedefs import CONFIG, DB, USER

log = logging.getLogger("runt.web.assistant")


def language(accept_language: str) -> str:
    """'zh' when Accept-Language prefers Chinese to English, else 'en'."""
    ranked = []
    for position, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().lower().partition(";")
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip() else 1.0
        except ValueError:
            q = 0.0
        if tag.startswith(("zh", "en")):
            ranked.append((-q, position, tag[:2]))
    return min(ranked)[2] if ranked else "en"


class AdviceStream:
    """Writes text as chunked text/plain, or as SSE `data:` lines ending in `event: done`."""

    def __init__(self, request: web.Request):
        self.request = request
        self.sse = "text/event-stream" in request.headers.get("Accept", "")
        content_type = "text/event-stream" if self.sse else "text/plain; charset=utf-8"
        headers = {"Content-Type": content_type, "Cache-Control": "no-cache"}
        # proxies such as nginx would otherwise hold the chunks back
        headers["X-Accel-Buffering"] = "no"
        self.response = web.StreamResponse(headers={**SECURITY_HEADERS, **headers})
        if not self.sse:
            self.response.enable_chunked_encoding()

    async def open(self, first: str) -> None:
        await self.response.prepare(self.request)
        await self.send(first)

    async def send(self, chunk: str) -> None:
        if self.sse:
            chunk = "".join(f"data: {line}\n" for line in chunk.split("\n")) + "\n"
        await self.response.write(chunk.encode())

    async def close(self, source: str) -> None:
        if self.sse:
            done = json.dumps({"source": source})
            await self.response.write(f"event: done\ndata: {done}\n\n".encode())
        await self.response.write_eof()


async def engine_parts(facts: RunFacts) -> AsyncIterator[Part]:
    """The engine's parts, each computed on a worker thread when the previous is sent."""
    parts = advise(facts)
    while (part := await asyncio.to_thread(next, parts, None)) is not None:
        yield part


async def relay_llm(
    stream: AdviceStream, config: AssistantConfig, facts: RunFacts, lang: str
) -> str:
    """The model's answer, or the engine's advice after a note if the model fails."""
    findings = text.render([part async for part in engine_parts(facts)], facts, lang)
    started = False
    try:
        async for piece in llm.stream_chat(config, llm.messages(findings, lang)):
            if not started:
                await stream.send(text.note("llm", lang, model=config.llm_model))
                started = True
            await stream.send(piece)
        if started:
            return "llm"
        raise llm.LLMError("empty answer")
    except llm.LLMError as exc:
        log.warning("training assistant: language model failed: %s", exc)
        await stream.send(text.note("llm_failed", lang, reason=str(exc)))
        await stream.send(findings)
        return "engine"


async def load_facts(request: web.Request, body: AssistantRequest) -> RunFacts | None:
    if body.model_id is None:
        return await asyncio.to_thread(run_facts.from_request, body)
    owner = request[USER].id
    return await request.app[DB].run(run_facts.load_run, owner, body.model_id)


async def training_assistant(request: web.Request) -> web.StreamResponse:
    body = await parse_body(request, AssistantRequest)
    if problem := bad_hyperparameter(body.hyperparameters):
        name, _, message = problem.partition(": ")
        raise ApiError(400, message, field=f"hyperparameters.{name}")
    if body.model_id is not None:
        status = await request.app[DB].run(store.model_status, request[USER].id, body.model_id)
        if status is None:
            raise ApiError(404, "no such model", field="model_id")
    lang = body.lang or language(request.headers.get("Accept-Language", ""))
    config = request.app[CONFIG].assistant
    stream = AdviceStream(request)
    try:
        await stream.open(text.title(lang, body.model_id))
        facts = await load_facts(request, body)
        if facts is None:  # runs are never deleted; kept for safety
            await stream.send("no such model\n")
            source = "none"
        elif config.llm_enabled:
            source = await relay_llm(stream, config, facts, lang)
        else:
            async for part in engine_parts(facts):
                await stream.send(text.part_text(part, facts, lang))
            source = "engine"
        await stream.close(source)
    except ConnectionResetError:
        log.info("training assistant: the client went away")
    except Exception:  # the status is sent already: end the answer, saying so
        log.exception("training assistant failed")
        with contextlib.suppress(Exception):
            await stream.send(text.note("failed", lang))
            await stream.close("error")
    return stream.response
