"""Queries for chat windows and chat contact points."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import table_of
from core.bulk import upsert_insert
from core.channels.models import ChatWindow
from core.debtors.models import ContactPoint


async def last_inbound(session: AsyncSession, channel: str, chat_id: str) -> datetime | None:
    stmt = select(col(ChatWindow.last_inbound_at)).where(
        col(ChatWindow.channel) == channel, col(ChatWindow.chat_id) == chat_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def touch(session: AsyncSession, channel: str, chat_id: str, at: datetime) -> None:
    """Set the chat's last inbound time to ``at`` unless a later one is already recorded."""
    table = table_of(ChatWindow)
    stmt = upsert_insert(session, table).values(channel=channel, chat_id=chat_id, last_inbound_at=at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.channel, table.c.chat_id],
        set_={"last_inbound_at": stmt.excluded.last_inbound_at},
        where=table.c.last_inbound_at < stmt.excluded.last_inbound_at,
    )
    await session.execute(stmt)


async def points_at(session: AsyncSession, kind: str, address: str) -> list[ContactPoint]:
    """The contact points of ``kind`` at ``address``; a number also matches its "+" form (WhatsApp
    reports ``31612345678`` for a point stored as ``+31612345678``)."""
    addresses = [address, f"+{address}"] if address.isdigit() else [address]
    stmt = select(ContactPoint).where(
        col(ContactPoint.kind) == kind, col(ContactPoint.address).in_(addresses)
    )
    return list((await session.scalars(stmt)).all())


async def set_point_status(session: AsyncSession, point_id: object, status: str, at: datetime) -> None:
    await session.execute(
        update(ContactPoint)
        .where(col(ContactPoint.id) == point_id)
        .values(last_delivery_status=status, last_delivery_at=at)
        .execution_options(synchronize_session=False)
    )
