"""Fixtures of the channel tests: the fake SMTP server for e-mail (the fallback) and a per-test rate limiter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from core.messaging.ratelimit import RateLimiter
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
