"""Migrations build the schema from nothing, tear it down to nothing, and match core.models exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core import migrate
from core.models import metadata
from tests.services import Backends, admin_connect, recreate_postgres_database

APP_TABLES = set(metadata.tables)


async def _drop_postgres_database(url: str) -> None:
    parsed = make_url(url)
    admin = await admin_connect(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}"')
    finally:
        await admin.close()


@pytest.fixture
async def empty_url(backends: Backends, tmp_path: Path) -> AsyncIterator[str]:
    """A database with nothing in it: a separate PostgreSQL database, or a fresh SQLite file."""
    if not backends.postgres:
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    test_db = make_url(backends.database_url)
    # Named after the suite's own database, so that two suites on one server never share it.
    url = test_db.set(database=f"{test_db.database}_migrations").render_as_string(hide_password=False)
    await recreate_postgres_database(url)
    try:
        yield url
    finally:
        await _drop_postgres_database(url)


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _head() -> str:
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1, f"the migrations must have one head, not {heads}"
    return heads[0]


async def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_url: str) -> None:
    assert await _inspect(empty_url, _tables) == set()

    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _inspect(empty_url, _tables) == APP_TABLES | {"alembic_version"}
    assert await _inspect(empty_url, _revision) == _head()

    await asyncio.to_thread(migrate.downgrade, empty_url, "base")
    assert await _inspect(empty_url, _tables) <= {"alembic_version"}
    assert await _inspect(empty_url, _revision) is None

    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _inspect(empty_url, _tables) == APP_TABLES | {"alembic_version"}
    assert await _inspect(empty_url, _diff) == []

    # Upgrading a database that is already at head changes nothing.
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _inspect(empty_url, _revision) == _head()


async def test_the_models_match_the_migrated_schema(empty_url: str) -> None:
    """If this fails, a model changed without a migration: run alembic revision --autogenerate."""
    await asyncio.to_thread(migrate.upgrade, empty_url)
    diffs = await _inspect(empty_url, _diff)
    assert diffs == [], "\n".join(map(str, diffs))


def test_every_model_table_is_created_by_a_migration() -> None:
    expected = {
        "api_keys",
        "audit_events",
        "contact_points",
        "credit_notes",
        "debtors",
        "idempotency_records",
        "invoice_batches",
        "invoice_documents",
        "invoices",
        "ledger_entries",
        "payments",
    }
    assert expected <= APP_TABLES


async def test_the_suite_database_is_at_head(backends: Backends) -> None:
    assert await _inspect(backends.database_url, _revision) == _head()
