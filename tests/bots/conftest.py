"""Fixtures of the channel tests: the fake SMTP server for e-mail (the fallback), a per-test rate limiter,
the echoing conversation handler, the recorded back-off waits and the fake Slack of the staff notices."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from core.messaging.ratelimit import RateLimiter
from tests.bots.chat import EchoHandler, Waits
from tests.fakes.slack import FakeSlack, fake_slack
from tests.fakes.smtp import FakeSmtpServer, smtp_server


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtpServer]:
    async with smtp_server() as server:
        yield server


@pytest.fixture
async def limiter() -> AsyncIterator[RateLimiter]:
    lim = RateLimiter("memory://", key_prefix=f"test:{uuid.uuid4()}")
    yield lim
    await lim.aclose()


@pytest.fixture
def handler() -> EchoHandler:
    return EchoHandler()


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with fake_slack() as server:
        yield server
