"""Queries for staff posts: claim a subject once, record where it went, find a thread again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import new_id, table_of, utcnow
from core.bulk import upsert_insert
from core.events.models import Event
from core.invoices.models import BatchStatus, InvoiceBatch
from core.staff.models import StaffPost


async def claim(
    session: AsyncSession, kind: str, ref: str, data: dict[str, Any] | None = None
) -> uuid.UUID | None:
    """Reserve the post of (kind, ref). Returns its id, or None when it was claimed before."""
    table = table_of(StaffPost)
    stmt = (
        upsert_insert(session, table)
        .values(id=new_id(), kind=kind, ref=ref, data=data or {}, created_at=utcnow())
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    found: uuid.UUID | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def mark_posted(
    session: AsyncSession, post_id: uuid.UUID, channel: str, ts: str, now: datetime
) -> None:
    await session.execute(
        update(StaffPost).where(col(StaffPost.id) == post_id).values(channel=channel, ts=ts, posted_at=now)
    )


async def release(session: AsyncSession, post_id: uuid.UUID) -> None:
    """Drop a claim whose post failed, so that the next run tries again."""
    await session.execute(delete(StaffPost).where(col(StaffPost.id) == post_id))


async def close(session: AsyncSession, kind: str, ref: str, now: datetime) -> None:
    """The subject is decided and its message says so: it leaves the open posts."""
    await session.execute(
        update(StaffPost)
        .where(col(StaffPost.kind) == kind, col(StaffPost.ref) == ref, col(StaffPost.closed_at).is_(None))
        .values(closed_at=now)
    )


async def open_posts(session: AsyncSession, kind: str, limit: int = 200) -> list[StaffPost]:
    """Posted messages of ``kind`` whose subject was not closed yet, oldest first."""
    stmt = (
        select(StaffPost)
        .where(
            col(StaffPost.kind) == kind, col(StaffPost.ts).is_not(None), col(StaffPost.closed_at).is_(None)
        )
        .order_by(col(StaffPost.created_at))
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def find(session: AsyncSession, kind: str, ref: str) -> StaffPost | None:
    stmt = select(StaffPost).where(col(StaffPost.kind) == kind, col(StaffPost.ref) == ref)
    return (await session.scalars(stmt)).first()


async def by_thread(session: AsyncSession, channel: str, ts: str) -> StaffPost | None:
    """The post that started the thread ``ts`` in ``channel`` (staff replies in it are relayed)."""
    stmt = select(StaffPost).where(col(StaffPost.channel) == channel, col(StaffPost.ts) == ts)
    return (await session.scalars(stmt)).first()


async def _posted(session: AsyncSession, kind: str, refs: list[str]) -> set[str]:
    if not refs:
        return set()
    stmt = select(col(StaffPost.ref)).where(col(StaffPost.kind) == kind, col(StaffPost.ref).in_(refs))
    return set((await session.execute(stmt)).scalars().all())


async def unposted_batches(session: AsyncSession, limit: int = 20) -> list[uuid.UUID]:
    """Batches waiting for approval that were not posted yet, oldest first."""
    stmt = (
        select(col(InvoiceBatch.id))
        .where(col(InvoiceBatch.status) == BatchStatus.pending_approval.value)
        .order_by(col(InvoiceBatch.created_at))
    )
    ids = list((await session.execute(stmt)).scalars().all())
    posted = await _posted(session, "batch", [str(i) for i in ids])
    return [i for i in ids if str(i) not in posted][:limit]


async def unposted_events(
    session: AsyncSession, event_type: str, kind: str, since: datetime, limit: int = 50
) -> list[Event]:
    """Events of a type since ``since`` that have no staff post of ``kind`` yet, oldest first."""
    stmt = (
        select(Event)
        .where(col(Event.type) == event_type, col(Event.created_at) >= since)
        .order_by(col(Event.created_at))
        .limit(limit * 4)
    )
    events = list((await session.scalars(stmt)).all())
    posted = await _posted(session, kind, [str(e.id) for e in events])
    return [e for e in events if str(e.id) not in posted][:limit]
