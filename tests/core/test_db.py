"""The pool's liveness check: a connection that idled in the pool is pinged at checkout and replaced
when the server dropped it; one in steady use is not pinged (no round trips per unit of work)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.config import Settings
from core.db import Database


def _postgres(settings: Settings) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("pooled server connections are PostgreSQL's")  # SQLite has no server to drop us


async def _backend_pid(db: Database) -> int:
    async with db.session_scope() as s:
        return int((await s.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(db: Database, pid: int) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()


async def test_an_idle_connection_dropped_by_the_server_is_replaced_at_checkout(settings: Settings) -> None:
    _postgres(settings)
    db = Database.from_url(settings.database_url, idle_ping_after=0.0, pool_size=2)
    other = Database.from_url(settings.database_url, pool_size=1)
    try:
        first = await _backend_pid(db)
        await _terminate(other, first)
        second = await _backend_pid(db)  # the ping found the connection gone; a new one answers
        assert second != first
    finally:
        await db.dispose()
        await other.dispose()


async def test_a_connection_in_steady_use_is_not_pinged_and_the_pool_recovers_after_one_failure(
    settings: Settings,
) -> None:
    _postgres(settings)
    db = Database.from_url(settings.database_url, idle_ping_after=3600.0, pool_size=2)
    other = Database.from_url(settings.database_url, pool_size=1)
    try:
        first = await _backend_pid(db)
        await _terminate(other, first)
        with pytest.raises(DBAPIError) as failed:  # not pinged: the unit of work meets the dead link
            await _backend_pid(db)
        assert failed.value.connection_invalidated
        assert await _backend_pid(db) != first  # the pool was invalidated: a fresh connection
    finally:
        await db.dispose()
        await other.dispose()


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
async def test_one_statement_commits_by_itself_and_leaves_sessions_as_they_were(
    settings: Settings, engine: str, tmp_path: Path
) -> None:
    if engine == "postgresql":
        _postgres(settings)
        url = settings.database_url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    db, other = Database.from_url(url), Database.from_url(url)
    table = f"one_statement_{engine}"
    try:
        async with db.session_scope() as s:
            await s.execute(text(f"CREATE TABLE {table} (n integer)"))
        async with db.one_statement() as conn:
            await conn.execute(text(f"INSERT INTO {table} VALUES (1)"))
        async with other.sessionmaker() as s:  # committed: another connection sees it
            assert (await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 1
        with pytest.raises(RuntimeError):
            async with db.session_scope() as s:  # the pooled connection is transactional again
                await s.execute(text(f"INSERT INTO {table} VALUES (2)"))
                raise RuntimeError("roll back")
        async with other.sessionmaker() as s:
            assert (await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 1
    finally:
        async with db.session_scope() as s:
            await s.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await db.dispose()
        await other.dispose()
