"""The `env` fixture of the broker tests: a broker of the test's own (tests/broker/helpers.py),
once on the in-process transport (memory://) and once on the real RabbitMQ (amqp://)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.broker.helpers import Env, opened


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("amqp_url")
    async with opened(url) as env:
        yield env
