"""Suite set-up: one database per run, built by the migrations; one rolled-back transaction per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Services
from api.main import create_app
from core import migrate
from core.config import Settings
from core.db import Database, make_engine
from core.ports import FixedClock
from tests import factories
from tests.services import Backends, discover

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Backends:
    found = discover(tmp_path_factory.mktemp("db"))
    migrate.upgrade(found.database_url)
    return found


@pytest.fixture(scope="session")
def settings(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=backends.database_url,
        redis_url=backends.redis_url,
        DUEBOT_SECRET_KEY="test-secret-key",  # type: ignore[arg-type]
        DUEBOT_VAR_DIR=tmp_path_factory.mktemp("var"),  # type: ignore[arg-type]
        DUEBOT_BATCH_MAX_INVOICES=50,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[object]:
    eng = make_engine(settings.database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: object) -> AsyncIterator[Database]:
    """A Database whose sessions live in one outer transaction that is rolled back after the test."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    async with engine.connect() as conn:
        outer = await conn.begin()
        try:
            yield Database.bound_to(conn)
        finally:
            await outer.rollback()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[object]:
    async with db.sessionmaker() as s:
        yield s


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    if settings.redis_url:
        client: Redis = Redis.from_url(settings.redis_url)
        await client.flushdb()
    else:
        from fakeredis import FakeAsyncRedis

        client = FakeAsyncRedis()
    yield client
    await client.aclose()


@pytest.fixture
async def arq_pool(settings: Settings) -> AsyncIterator[object]:
    """A connection pool of its own for arq (a Worker closes its pool when it stops)."""
    import worker

    if settings.redis_url:
        from arq import ArqRedis
        from redis.asyncio import ConnectionPool

        pool = ArqRedis(connection_pool=ConnectionPool.from_url(settings.redis_url))
    else:
        pool = worker.embedded_redis_pool()
    yield pool
    await pool.aclose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def services(settings: Settings, db: Database, redis: Redis, clock: FixedClock) -> Services:
    return Services(settings=settings, db=db, redis=redis, clock=clock)


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://duebot.test") as c:
        yield c


@pytest.fixture
async def api_key(db: Database) -> str:
    return await factories.api_key(db, scopes=["*"])


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# Rows the migrations put in; committed tests leave them be.
SEEDED = {"dunning_policies", "dunning_stages", "plan_policies"}


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[Database]:
    """A Database whose sessions really commit, on separate pooled connections (for races).

    Emptied afterwards, seeded tables excepted, so later tests start clean.
    """
    from core.models import metadata

    db = Database.from_url(settings.database_url)
    try:
        yield db
    finally:
        async with db.session_scope() as s:
            await empty(s, [t for t in metadata.sorted_tables if t.name not in SEEDED])
        await db.dispose()


async def empty(session: AsyncSession, tables: list[Table]) -> None:
    """Delete every row of these tables (in ``metadata.sorted_tables`` order, parents first)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)}"))
    else:
        for table in reversed(tables):
            await session.execute(table.delete())


@pytest.fixture
async def mollie(clock: FixedClock) -> AsyncIterator[object]:
    """A local fake Mollie API (tests/fakes/mollie.py) on the test's clock."""
    from tests.fakes.mollie import mollie_server

    async with mollie_server() as fake:
        fake.now = clock.now
        yield fake


@pytest.fixture
def provider(mollie: object, settings: Settings) -> object:
    """The real MollieProvider (mollie-api-python) talking to the fake over loopback."""
    from core.payments.providers.mollie import MollieProvider
    from tests.fakes.mollie import FakeMollie

    assert isinstance(mollie, FakeMollie)
    configured = settings.model_copy(
        update={"mollie_api_key": SecretStr("test_duebot"), "mollie_api_base": mollie.url}
    )
    return MollieProvider.from_settings(configured, timeout=(1, 1))
