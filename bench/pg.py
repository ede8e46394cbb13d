"""The bench database: recreate, migrate, seed, empty between phases, count."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.engine import make_url

from core import migrate
from tests.services import recreate_postgres_database

# Emptied before every measured phase; debtors and api_keys stay.
INTAKE_TABLES = ("invoices", "invoice_documents", "invoice_batches", "audit_events", "idempotency_records")


def check_local(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"the bench needs PostgreSQL, not {parsed.get_backend_name()} ({url})")
    if (parsed.host or "127.0.0.1") not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"the bench only talks to 127.0.0.1, not {parsed.host}")


async def connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    conn: asyncpg.Connection = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database,
        timeout=10,
        command_timeout=900,
    )
    return conn


def sibling_url(url: str, suffix: str) -> str:
    """The same server and user, another database: ``<name>_<suffix>``."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{suffix}").render_as_string(hide_password=False)


def recreate_and_migrate(url: str) -> None:
    """Drop, create and migrate the bench database. Blocking: call outside any running loop."""
    check_local(url)
    asyncio.run(recreate_postgres_database(url))
    migrate.upgrade(url)


async def server_version(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SHOW server_version"))


async def settings_summary(conn: asyncpg.Connection) -> str:
    rows = await conn.fetch(
        "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name",
        ["shared_buffers", "synchronous_commit", "fsync", "max_wal_size", "work_mem"],
    )
    return ", ".join(f"{r['name']}={r['setting']}{r['unit'] or ''}" for r in rows)


async def seed_debtors(conn: asyncpg.Connection, external_ids: Sequence[str]) -> dict[str, uuid.UUID]:
    """COPY the debtors in; return external_id → id."""
    now = datetime.now(UTC)
    ids = {ext: uuid.uuid4() for ext in external_ids}
    records = [
        (
            did,
            ext,
            f"Bench Debtor {ext}",
            "en",
            "Europe/Amsterdam",
            "default",
            None,
            '["email"]',
            False,
            None,
            None,
            now,
            now,
        )
        for ext, did in ids.items()
    ]
    await conn.copy_records_to_table(
        "debtors",
        records=records,
        columns=[
            "id",
            "external_id",
            "name",
            "locale",
            "timezone",
            "segment",
            "address",
            "channel_order",
            "dunning_paused",
            "paused_until",
            "pause_reason",
            "created_at",
            "updated_at",
        ],
    )
    await conn.execute("ANALYZE debtors")
    return ids


async def empty_intake_tables(conn: asyncpg.Connection) -> None:
    """Empty what an intake writes, then checkpoint so that each phase starts from the same state."""
    await conn.execute(f"TRUNCATE {', '.join(INTAKE_TABLES)} CASCADE")
    await conn.execute("CHECKPOINT")


async def count(conn: asyncpg.Connection, table: str) -> int:
    assert table.replace("_", "").isalnum()
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def create_api_key(url: str) -> str:
    """A full-scope key, committed in the bench database through the application's own service."""
    from core.access import service as access
    from core.audit import Actor
    from core.db import Database

    db = Database.from_url(url)
    try:
        async with db.session_scope() as session:
            token, _ = await access.create_key(session, "bench", ["*"], Actor("cli", "bench"))
    finally:
        await db.dispose()
    return token
