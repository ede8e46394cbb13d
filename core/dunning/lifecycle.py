"""Keep dunning states in step with their invoices, so that the sweep reads states alone.

An invoice that leaves the open statuses (paid, handed to the agency, written off) has nothing
due: its ``next_action_on`` is cleared. One that comes back (a refund or chargeback reopens it)
is due again at its next stage, on the due date plus that stage's offset; a date already past is
caught up by the next sweep, with only the latest stage sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.base import table_of
from core.bulk import among, chunk_size, chunks
from core.dunning.models import DunningStage, DunningState
from core.sqlfuncs import add_days

ACTIVE_STATUSES = ("approved", "open")


async def follow_invoice_status(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID], status: str, now: datetime
) -> None:
    """Call after the invoices' status changed to ``status`` (same transaction)."""
    s = table_of(DunningState)
    for part in chunks(list(invoice_ids), chunk_size(session)):
        ids: list = list(part)  # type: ignore[type-arg]
        if status in ACTIVE_STATUSES:
            nxt = table_of(DunningStage).alias("nxt")
            next_on = (
                select(add_days(s.c.due_date, nxt.c.offset_days))
                .where(and_(nxt.c.policy_id == s.c.policy_id, nxt.c.position == s.c.stage_position + 1))
                .scalar_subquery()
            )
            stmt = (
                update(s)
                .where(among(session, s.c.invoice_id, ids), s.c.next_action_on.is_(None))
                .values(next_action_on=next_on, updated_at=now)
            )
        else:
            stmt = (
                update(s)
                .where(among(session, s.c.invoice_id, ids), s.c.next_action_on.is_not(None))
                .values(next_action_on=None, updated_at=now)
            )
        await session.execute(stmt)
