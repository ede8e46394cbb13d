"""Async engine and sessions. ``session_scope()`` is the commit/rollback boundary.

Services only flush; the request, job or bot update that owns the scope commits once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

WRITE_UNIT = "duebot_write_unit"
IDLE_PING_AFTER = 10.0  # seconds a pooled connection may sit unused before its checkout pings it
RECYCLE_AFTER = 1800  # seconds; older connections are replaced at checkout (idle-killing middleboxes)
_CHECKED_IN = "duebot_checked_in"


def make_engine(url: str, *, idle_ping_after: float = IDLE_PING_AFTER, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # Let SQLAlchemy, not the driver, emit BEGIN, so that SAVEPOINTs work.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A unit of work (session_scope) takes the write lock up front, so two writers queue
            # instead of one failing on a stale snapshot. Reads stay deferred: in WAL mode they
            # never wait for a writer, so health checks stay fast.
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return  # one_statement(): each statement commits by itself
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_UNIT, False) else "BEGIN")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_recycle", RECYCLE_AFTER)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_after_idle(engine, idle_ping_after)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle: float) -> None:
    """Liveness check at checkout, only for a connection that sat in the pool for ``idle`` seconds.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout; on asyncpg that is three round trips
    (BEGIN, an empty query, ROLLBACK) per unit of work, as many as a short bot update's own
    statements. A connection checked in a moment ago was alive a moment ago, so the ping is kept for
    the case it exists for: a connection that idled while the server restarted or a middlebox dropped
    it. A failed ping raises ``DisconnectionError``, and the pool replaces the connection and tries
    again (the pre-ping's behaviour). A server that dies while connections are busy fails their
    statements whichever strategy is used; SQLAlchemy then invalidates the whole pool, so the next
    checkouts get fresh connections. ``pool_recycle`` replaces connections older than half an hour.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since < idle:
            return  # new (just connected) or in steady use
        try:
            dbapi_conn.ping()
        except Exception as error:
            raise exc.DisconnectionError(f"the pooled connection is gone: {error}") from error


class Database:
    """Owns the engine and the session factory; built once by a composition root."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        owns_transactions: bool = True,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self._owns_transactions = owns_transactions
        # Sessions on SQLite's own pooled connections begin their write units IMMEDIATE.
        self._sqlite_pool = owns_transactions and engine.dialect.name == "sqlite"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        engine = make_engine(url, **kwargs)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False, autoflush=False))

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions that join an outer transaction with savepoints (tests roll it back)."""
        maker = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        return cls(connection.engine, maker, owns_transactions=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session_scope(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any error."""
        async with self.sessionmaker() as session:
            try:
                if self._sqlite_pool:
                    await session.connection(execution_options={WRITE_UNIT: True})
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a single statement that commits by itself (autocommit): on PostgreSQL
        one round trip instead of three (BEGIN, the statement, COMMIT). Only for one statement,
        which is atomic on its own. A Database bound to an outer transaction (the tests') runs it
        in a session scope there instead."""
        if not self._owns_transactions:
            async with self.session_scope() as session:
                yield await session.connection()
            return
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
