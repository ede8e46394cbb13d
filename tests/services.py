"""Finding the real PostgreSQL and Redis for the suite, or falling back to SQLite and fakeredis.

With DUEBOT_REQUIRE_SERVICES=1 (CI) an unreachable service fails the run instead.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from core.config import Settings


@dataclass
class Backends:
    database_url: str
    redis_url: str | None  # None: fakeredis
    postgres: bool


def _required() -> bool:
    return os.environ.get("DUEBOT_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")


async def admin_connect(url: str) -> asyncpg.Connection:
    """A connection to the server's ``postgres`` database, for creating and dropping others."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database="postgres",
        timeout=5,
    )


async def recreate_postgres_database(url: str) -> None:
    """Drop and create the database named in ``url`` (the suite owns it)."""
    parsed = make_url(url)
    name = parsed.database
    assert name and name.replace("_", "").isalnum(), f"refusing odd database name {name!r}"
    admin = await admin_connect(url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _redis_ok(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


def discover(tmp: Path) -> Backends:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    required = _required()
    db_url = settings.test_database_url
    postgres = True
    try:
        asyncio.run(recreate_postgres_database(db_url))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if required:
            raise RuntimeError(
                f"PostgreSQL at {db_url} is required (DUEBOT_REQUIRE_SERVICES=1): {exc}"
            ) from exc
        db_url = f"sqlite+aiosqlite:///{tmp / 'duebot_test.db'}"
        postgres = False
    redis_url: str | None = settings.test_redis_url
    assert redis_url is not None
    if not asyncio.run(_redis_ok(redis_url)):
        if required:
            raise RuntimeError(f"Redis at {redis_url} is required (DUEBOT_REQUIRE_SERVICES=1)")
        redis_url = None
    return Backends(db_url, redis_url, postgres)
