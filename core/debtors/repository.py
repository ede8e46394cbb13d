"""Queries for debtors and contact points."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.bulk import among, chunk_size, chunks
from core.debtors.models import ContactPoint, Debtor


async def get_by_external_id(
    session: AsyncSession, external_id: str, *, for_update: bool = False
) -> Debtor | None:
    stmt = select(Debtor).where(col(Debtor.external_id) == external_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def ids_by_external_id(session: AsyncSession, external_ids: Iterable[str]) -> dict[str, uuid.UUID]:
    """external_id → id for those that exist, in chunks that every engine accepts."""
    wanted = list(dict.fromkeys(external_ids))
    found: dict[str, uuid.UUID] = {}
    for chunk in chunks(wanted, chunk_size(session)):
        rows = await session.execute(
            select(col(Debtor.external_id), col(Debtor.id)).where(
                among(session, col(Debtor.external_id), chunk)
            )
        )
        found.update({ext: did for ext, did in rows.all()})
    return found


async def contact_points(session: AsyncSession, debtor_id: uuid.UUID) -> Sequence[ContactPoint]:
    stmt = (
        select(ContactPoint)
        .where(col(ContactPoint.debtor_id) == debtor_id)
        .order_by(col(ContactPoint.kind), col(ContactPoint.created_at))
    )
    return (await session.scalars(stmt)).all()


async def remove_contact_points(
    session: AsyncSession, debtor_id: uuid.UUID, kind: str, keep: str | None
) -> None:
    stmt = delete(ContactPoint).where(
        col(ContactPoint.debtor_id) == debtor_id,
        col(ContactPoint.kind) == kind,
    )
    if keep is not None:
        stmt = stmt.where(col(ContactPoint.address) != keep)
    await session.execute(stmt)


async def lock(session: AsyncSession, debtor_id: uuid.UUID) -> None:
    """Row lock on the debtor (PostgreSQL); SQLite serialises writers anyway."""
    await session.execute(select(col(Debtor.id)).where(col(Debtor.id) == debtor_id).with_for_update())


async def get_by_id(session: AsyncSession, debtor_id: uuid.UUID) -> Debtor:
    debtor = await session.get(Debtor, debtor_id)
    assert debtor is not None, "foreign key guarantees the debtor"
    return debtor
