"""Bulk statements: binary COPY on PostgreSQL, executemany elsewhere; array lookups without
expanding thousands of bind parameters.

Used for invoice intake and ledger postings, where rows arrive by the thousand. Rows are written
inside the caller's transaction, so a failure rolls everything back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, String, Table, any_, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import TypeDecorator

COPY_THRESHOLD = 64  # below this, a plain INSERT is cheaper than setting up COPY


def _is_json(col_type: Any) -> bool:
    if isinstance(col_type, TypeDecorator):
        col_type = col_type.impl
    return isinstance(col_type, JSON) or getattr(col_type, "__visit_name__", "") in ("JSON", "JSONB")


async def copy_records(
    session: AsyncSession, table: Table, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> int:
    """Insert ``records`` (tuples in the order of ``columns``)."""
    if not records:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "postgresql" and len(records) >= COPY_THRESHOLD:
        json_idx = [i for i, c in enumerate(columns) if _is_json(table.c[c].type)]
        if json_idx:
            records = [_dump_json(r, json_idx) for r in records]
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
        return len(records)
    await session.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in records])
    return len(records)


def _dump_json(record: Sequence[Any], idx: list[int]) -> tuple[Any, ...]:
    out = list(record)
    for i in idx:
        if out[i] is not None:
            out[i] = json.dumps(out[i])
    return tuple(out)


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert dict rows that all have the same keys."""
    if not rows:
        return 0
    columns = list(rows[0].keys())
    return await copy_records(session, table, columns, [tuple(r[c] for c in columns) for r in rows])


def upsert_insert(session: AsyncSession | AsyncConnection, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing()`` and ``on_conflict_do_update()``."""
    bind = session if isinstance(session, AsyncConnection) else session.get_bind()
    dialect = bind.dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def insert_ignore(session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping any that would violate a unique key; answers how many were new."""
    if not rows:
        return 0
    result = await session.execute(upsert_insert(session, table).values(list(rows)).on_conflict_do_nothing())
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def chunk_size(session: AsyncSession) -> int:
    """How many values one lookup may carry: PostgreSQL takes one array parameter, SQLite
    expands each value into a bind parameter (its limit is 32,766)."""
    return 50_000 if session.get_bind().dialect.name == "postgresql" else 5_000


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def among(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values`` as ``column = ANY(:array)`` on PostgreSQL (one parameter, no
    compile-time expansion), and as a plain IN elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        item_type = getattr(column, "type", None) or String()
        return column == any_(bindparam(None, list(values), type_=ARRAY(item_type)))  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]
