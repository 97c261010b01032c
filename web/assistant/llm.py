"""An optional language model behind an OpenAI-compatible chat-completions endpoint.

`POST {base_url}/chat/completions` with `"stream": true` answers with server-sent
events: one `data: {json}` line per piece, the text in `choices[0].delta.content`, and
`data: [DONE]` at the end. Any failure (connection, HTTP status, timeout, a malformed
piece) is an `LLMError`, so the caller can fall back to the built-in analysis.
"""

# The Chinese prompt uses full-width punctuation, as Chinese text should.
# ruff: noqa: RUF001

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from schemas.config import AssistantConfig

SYSTEM_PROMPT = {
    "en": (
        "You are a reinforcement-learning training assistant. Answer in English Markdown "
        "with exactly three sections: hyperparameter adjustments, training-strategy "
        "optimisation, model-architecture improvements. Base every suggestion on the "
        "analysis you are given, quote its numbers as evidence and give a concrete new "
        "value. Do not invent measurements."
    ),
    "zh": (
        "你是强化学习训练助手。请用中文 Markdown 回答，恰好分为三节：超参数调整、训练策略优化、"
        "模型结构改进。每条建议都要基于给出的分析，引用其中的数字作为依据，并给出具体的新取值。"
        "不要编造测量数据。"
    ),
}


class LLMError(Exception):
    """The model did not answer usefully; the message says why (never the key)."""


def messages(findings_markdown: str, lang: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT[lang]},
        {"role": "user", "content": "Built-in analysis of the run:\n\n" + findings_markdown},
    ]


def parse_line(line: bytes) -> tuple[bool, str | None]:
    """(done, text) of one line of the stream; text is None on lines without any."""
    text = line.decode("utf-8", errors="replace").strip()
    if not text.startswith("data:"):
        return False, None  # blank separators, comments (": keep-alive"), event names
    data = text.removeprefix("data:").strip()
    if data == "[DONE]":
        return True, None
    try:
        piece: Any = json.loads(data)
        return False, piece["choices"][0].get("delta", {}).get("content") or None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(f"malformed stream piece: {data[:80]!r}") from exc


async def stream_chat(
    config: AssistantConfig, chat: list[dict[str, str]], environ: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """The model's answer, piece by piece. `llm_timeout_seconds` bounds connecting and
    each wait for the next piece, so a stalled model fails instead of hanging."""
    key = (os.environ if environ is None else environ).get(config.llm_api_key_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = config.llm_base_url.rstrip("/") + "/chat/completions"
    payload = {"model": config.llm_model, "messages": chat, "stream": True}
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=config.llm_timeout_seconds, sock_read=config.llm_timeout_seconds
    )
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url, json=payload, headers=headers) as resp:
                if resp.status != 200:
                    raise LLMError(f"HTTP {resp.status} from {url}")
                async for line in resp.content:
                    done, piece = parse_line(line)
                    if done:
                        return
                    if piece is not None:
                        yield piece
    except TimeoutError:
        raise LLMError(f"no answer within {config.llm_timeout_seconds:g} s") from None
    except aiohttp.ClientError as exc:
        raise LLMError(f"{type(exc).__name__} from {url}") from None
