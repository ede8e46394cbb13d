"""Queries for invoices and batches."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.bulk import among, chunk_size, chunks
from core.dunning.lifecycle import follow_invoice_status
from core.invoices.models import Invoice, InvoiceBatch


async def get_batch(
    session: AsyncSession, batch_id: uuid.UUID, *, for_update: bool = False
) -> InvoiceBatch | None:
    stmt = select(InvoiceBatch).where(col(InvoiceBatch.id) == batch_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def list_batches(session: AsyncSession, status: str | None, limit: int = 100) -> Sequence[InvoiceBatch]:
    stmt = select(InvoiceBatch).order_by(col(InvoiceBatch.created_at).desc()).limit(limit)
    if status:
        stmt = stmt.where(col(InvoiceBatch.status) == status)
    return (await session.scalars(stmt)).all()


async def get_by_external_id(
    session: AsyncSession, external_id: str, *, for_update: bool = False
) -> Invoice | None:
    stmt = select(Invoice).where(col(Invoice.external_id) == external_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


EXISTING_COLUMNS = (
    col(Invoice.id),
    col(Invoice.external_id),
    col(Invoice.number),
    col(Invoice.debtor_id),
    col(Invoice.batch_id),
    col(Invoice.issue_date),
    col(Invoice.due_date),
    col(Invoice.currency),
    col(Invoice.amount_minor),
    col(Invoice.description),
)


async def existing_by_keys(
    session: AsyncSession, external_ids: Sequence[str], numbers: Sequence[str]
) -> list[Any]:
    """Invoices whose external id or number is among the given ones."""
    out: dict[object, Any] = {}
    size = chunk_size(session)
    for keys, column in ((external_ids, col(Invoice.external_id)), (numbers, col(Invoice.number))):
        for chunk in chunks(keys, size):
            stmt = select(*EXISTING_COLUMNS).where(among(session, column, chunk))
            for row in (await session.execute(stmt)).all():
                out[row.id] = row
    return list(out.values())


async def batch_rows(session: AsyncSession, batch_id: uuid.UUID) -> list[Any]:
    stmt = select(
        col(Invoice.id),
        col(Invoice.external_id),
        col(Invoice.debtor_id),
        col(Invoice.currency),
        col(Invoice.amount_minor),
        col(Invoice.issue_date),
        col(Invoice.status),
    ).where(col(Invoice.batch_id) == batch_id)
    return list((await session.execute(stmt)).all())


async def set_batch_status(session: AsyncSession, batch_id: uuid.UUID, status: str, now: datetime) -> None:
    await session.execute(
        update(Invoice).where(col(Invoice.batch_id) == batch_id).values(status=status, updated_at=now)
    )


async def set_status(
    session: AsyncSession, invoice_ids: Iterable[uuid.UUID], status: str, now: datetime
) -> None:
    ids = list(invoice_ids)
    for part in chunks(ids, chunk_size(session)):  # = ANY(array): one statement text for any count
        await session.execute(
            update(Invoice).where(among(session, col(Invoice.id), part)).values(status=status, updated_at=now)
        )
    await follow_invoice_status(session, ids, status, now)
