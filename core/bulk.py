"""Bulk inserts: binary COPY on PostgreSQL, executemany elsewhere.

Used for invoice intake and ledger postings, where rows arrive by the thousand. The rows are
inserted inside the caller's transaction, so a failure rolls everything back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator

COPY_THRESHOLD = 64  # below this, a plain INSERT is cheaper than setting up COPY


def _is_json(col_type: Any) -> bool:
    if isinstance(col_type, TypeDecorator):
        col_type = col_type.impl
    return isinstance(col_type, JSON) or getattr(col_type, "__visit_name__", "") in ("JSON", "JSONB")


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        columns = list(rows[0].keys())
        json_cols = {c for c in columns if _is_json(table.c[c].type)}
        records = [
            tuple(json.dumps(r[c]) if c in json_cols and r[c] is not None else r[c] for c in columns)
            for r in rows
        ]
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table.name, records=records, columns=columns)
        return len(rows)
    await session.execute(insert(table), list(rows))
    return len(rows)
