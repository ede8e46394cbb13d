"""Queries for chat windows and chat contact points."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql
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


async def _touch(session: AsyncSession, channel: str, chat_id: str, at: datetime) -> None:
    stmt = _touch_statement(upsert_insert(session, table_of(ChatWindow)))
    await session.execute(stmt, {"w_channel": channel, "w_chat_id": chat_id, "w_at": at})


def _touch_statement(insert: Any) -> Any:
    """The chat window's upsert with bound ``w_channel``, ``w_chat_id`` and ``w_at``."""
    table = table_of(ChatWindow)
    stmt = insert.values(
        channel=bindparam("w_channel"), chat_id=bindparam("w_chat_id"), last_inbound_at=bindparam("w_at")
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.channel, table.c.chat_id],
        set_={"last_inbound_at": stmt.excluded.last_inbound_at},
        where=table.c.last_inbound_at < stmt.excluded.last_inbound_at,
    )


async def touch(session: AsyncSession, channel: str, chat_id: str, at: datetime) -> None:
    """Set the chat's last inbound time to ``at`` unless a later one is already recorded."""
    await _touch(session, channel, chat_id, at)


def _addresses(address: str) -> list[str]:
    return [address, f"+{address}"] if address.isdigit() else [address]


def status_params(chat_id: str, *, kind: str, status: str, new_status: str) -> dict[str, str]:
    """The contact points' binds of :func:`touch_and_set_status_statement` (the window's are
    ``w_channel``, ``w_chat_id`` and ``w_at``)."""
    addresses = _addresses(chat_id)
    return {
        "p_kind": kind,
        "p_addr": addresses[0],
        "p_plus": addresses[-1],
        "p_status": status,
        "p_new_status": new_status,
    }


def touch_and_set_status_statement() -> Any:
    """PostgreSQL: :func:`touch_and_set_status` as one statement, the window's upsert as a
    data-modifying CTE of the contact points' update, which returns their ids. It also fits
    another statement's WITH (the conversation's: one round trip less per chat message). The
    address is matched in both spellings (``p_addr``, ``p_plus``: the same value twice for a
    non-number)."""
    points = table_of(ContactPoint)
    touched = _touch_statement(postgresql.insert(table_of(ChatWindow)))
    return (
        update(points)
        .where(
            points.c.kind == bindparam("p_kind"),
            points.c.address.in_([bindparam("p_addr"), bindparam("p_plus")]),
            points.c.last_delivery_status == bindparam("p_status"),
        )
        .values(last_delivery_status=bindparam("p_new_status"), last_delivery_at=bindparam("w_at"))
        .returning(points.c.id)
        .add_cte(touched.returning(table_of(ChatWindow).c.chat_id).cte("touched_window"))
    )


# Built once: every chat update runs it (building it cost more Python than executing it).
_touch_and_set_status_pg = functools.cache(touch_and_set_status_statement)


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
    if session.get_bind().dialect.name == "postgresql":
        values = {
            "w_channel": channel,
            "w_chat_id": chat_id,
            "w_at": at,
            **status_params(chat_id, kind=kind, status=status, new_status=new_status),
        }
        return list((await session.execute(_touch_and_set_status_pg(), values)).scalars().all())
    await _touch(session, channel, chat_id, at)
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
