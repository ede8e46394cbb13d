"""Per-channel send rates shared by every worker process, and the backoff between retries.

:class:`RateLimiter` wraps the ``limits`` library's moving-window strategy. With a ``redis://`` storage
URI the counters live in Redis, so any number of workers on any hosts stay under one limit together;
``memory://`` keeps them in this process (the embedded single-process mode and tests).

Each channel has an optional overall limit and an optional limit per recipient (chat, number):
Telegram allows about 30 messages a second overall and 1 a second per chat, WhatsApp 80 a second per
sending number and about 1 every 6 seconds to the same user (REFERENCE.md). A limit that is reached is
not a failure: :meth:`RateLimiter.acquire` says how long to wait and the message is requeued for then.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

MIN_WAIT = 0.05  # seconds; never requeue for "now" when a limit is reached


@dataclass(frozen=True)
class ChannelLimit:
    """Rate limits in the ``limits`` notation ("30/second", "1 per 6 seconds"); None: unlimited."""

    overall: str | None = None
    per_recipient: str | None = None


DEFAULT_LIMITS: dict[str, ChannelLimit] = {
    "telegram": ChannelLimit("30/second", "1/second"),
    "whatsapp": ChannelLimit("80/second", "1 per 6 seconds"),
    "sms": ChannelLimit("10/second"),
    "email": ChannelLimit("10/second"),
}


def storage_uri(uri: str) -> str:
    """``redis://…``, ``rediss://…`` or ``memory://`` as the async storage URI ``limits`` expects."""
    uri = uri.strip()
    if uri.startswith("async+"):
        return uri
    scheme = uri.partition("://")[0].lower()
    if scheme not in {"redis", "rediss", "memory"}:
        raise ValueError(f"rate limit storage must be redis://, rediss:// or memory://, not {uri!r}")
    return f"async+{uri}"


class RateLimiter:
    """Shared per-channel rate limits (``limits``, moving window)."""

    def __init__(
        self,
        storage: str = "memory://",
        limits: Mapping[str, ChannelLimit] | None = None,
        *,
        key_prefix: str = "duebot:ratelimit",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        uri = storage_uri(storage)
        self._pool: Any = None
        options: dict[str, Any] = {}
        if uri.startswith(("async+redis", "async+rediss")):
            from redis.asyncio import ConnectionPool

            # redis-py (already a dependency through arq) rather than coredis; we own the pool.
            self._pool = ConnectionPool.from_url(uri.removeprefix("async+"))
            options = {"implementation": "redispy", "key_prefix": key_prefix, "connection_pool": self._pool}
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri, **options))
        self._time = wall_clock  # ``limits`` itself measures windows on the wall clock
        self._items: dict[str, tuple[RateLimitItem | None, RateLimitItem | None]] = {
            channel: (
                parse(limit.overall) if limit.overall else None,
                parse(limit.per_recipient) if limit.per_recipient else None,
            )
            for channel, limit in (DEFAULT_LIMITS if limits is None else limits).items()
        }

    async def acquire(self, channel: str, recipient: str) -> float | None:
        """Take one send slot for ``recipient`` on ``channel``: None when granted, else the seconds
        to wait before trying again. Raises the storage's error when Redis is unreachable."""
        overall, per_recipient = self._items.get(channel, (None, None))
        if overall is not None and not await self._limiter.test(overall, channel):
            return await self._wait(overall, channel)
        if per_recipient is not None and not await self._limiter.hit(per_recipient, channel, recipient):
            return await self._wait(per_recipient, channel, recipient)
        if overall is not None and not await self._limiter.hit(overall, channel):
            # Another worker took the last slot between test and hit; the recipient's slot is spent.
            waits = [await self._wait(overall, channel)]
            if per_recipient is not None:
                waits.append(await self._wait(per_recipient, channel, recipient))
            return max(waits)
        return None

    async def _wait(self, item: RateLimitItem, *identifiers: str) -> float:
        stats = await self._limiter.get_window_stats(item, *identifiers)
        return max(MIN_WAIT, float(stats.reset_time) - self._time())

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()
            self._pool = None


def backoff(
    attempt: int, *, base: float = 30.0, cap: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …): exponential with "equal jitter".

    The n-th retry waits between half and all of ``min(cap, base * 2**(n-1))``: 15 to 30 s, 30 to 60 s, …
    up to 30 to 60 minutes. Half is fixed so that a retry is never immediate, half is random so that
    messages that failed together do not all come back at the same moment.
    """
    n = max(1, attempt)
    ceiling = min(cap, base * 2 ** min(n - 1, 32))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
