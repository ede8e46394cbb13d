"""Queries for chat windows and chat contact points."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

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


def _touch(session: AsyncSession, channel: str, chat_id: str, at: datetime) -> Any:
    table = table_of(ChatWindow)
    stmt = upsert_insert(session, table).values(channel=channel, chat_id=chat_id, last_inbound_at=at)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.channel, table.c.chat_id],
        set_={"last_inbound_at": stmt.excluded.last_inbound_at},
        where=table.c.last_inbound_at < stmt.excluded.last_inbound_at,
    )


async def touch(session: AsyncSession, channel: str, chat_id: str, at: datetime) -> None:
    """Set the chat's last inbound time to ``at`` unless a later one is already recorded."""
    await session.execute(_touch(session, channel, chat_id, at))


def _addresses(address: str) -> list[str]:
    return [address, f"+{address}"] if address.isdigit() else [address]


async def touch_and_set_status(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    at: datetime,
    *,
    kind: str,
    status: str,
    new_status: str,
) -> list[uuid.UUID]:
    """:func:`touch`, and the contact points of ``kind`` at the chat's address whose last delivery
    status is ``status`` set to ``new_status``; answers their ids. One statement on PostgreSQL (the
    upsert runs as a data-modifying CTE), two elsewhere."""
    stmt = (
        update(ContactPoint)
        .where(
            col(ContactPoint.kind) == kind,
            col(ContactPoint.address).in_(_addresses(chat_id)),
            col(ContactPoint.last_delivery_status) == status,
        )
        .values(last_delivery_status=new_status, last_delivery_at=at)
        .returning(col(ContactPoint.id))
        .execution_options(synchronize_session=False)
    )
    touch_stmt = _touch(session, channel, chat_id, at)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.add_cte(touch_stmt.returning(table_of(ChatWindow).c.chat_id).cte("touched"))
    else:
        await session.execute(touch_stmt)
    return list((await session.scalars(stmt)).all())


async def points_at(session: AsyncSession, kind: str, address: str) -> list[ContactPoint]:
    """The contact points of ``kind`` at ``address``; a number also matches its "+" form (WhatsApp
    reports ``31612345678`` for a point stored as ``+31612345678``)."""
    stmt = select(ContactPoint).where(
        col(ContactPoint.kind) == kind, col(ContactPoint.address).in_(_addresses(address))
    )
    return list((await session.scalars(stmt)).all())


async def set_point_status(session: AsyncSession, point_id: object, status: str, at: datetime) -> None:
    await session.execute(
        update(ContactPoint)
        .where(col(ContactPoint.id) == point_id)
        .values(last_delivery_status=status, last_delivery_at=at)
        .execution_options(synchronize_session=False)
    )
