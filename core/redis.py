"""The Redis connection: a real server when REDIS_URL is set, else an in-process substitute."""

from __future__ import annotations

from redis.asyncio import Redis

from core.config import Settings


def connect(settings: Settings) -> Redis:
    if settings.redis_url:
        return Redis.from_url(settings.redis_url)
    from fakeredis import FakeAsyncRedis

    return FakeAsyncRedis()
