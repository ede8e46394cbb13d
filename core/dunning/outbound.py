"""The sweep's outbound events, completed after its commit by the event fan-out.

The sweep decides and enqueues; the webhook events about what it decided are not part of that.
Writing one ``dunning.stage_reached`` event per invoice (and an evidence file per debtor handed to
the agency) inside the sweep cost it more than the decision's own statements, so the sweep records
only what is needed to produce them later, in the same transaction as the decision:

- one ``dunning.stages_pending`` row in ``events`` per sweep (its id in the payload): an internal
  work item, never delivered;
- per debtor handed to the agency, its ``invoice.handed_to_agency`` event with the evidence file
  still pending (core.dunning.agency).

:func:`complete_pending`, called by ``core.events.service.fan_out`` for the events it has claimed
(locked, SKIP LOCKED), expands each work item into the stage events of that sweep's actions, deletes
it, and fills in the pending evidence files, all in the fan-out's transaction and before any
delivery is made. Everything it needs was committed with the sweep, so a worker that dies before or
during the fan-out loses nothing: the next fan-out does it, once (the work item is gone after it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import new_id, table_of
from core.bulk import among
from core.debtors.models import Debtor
from core.dunning.agency import complete_hand_offs
from core.dunning.models import DunningAction, DunningState
from core.events.models import Event, EventType
from core.sqlfuncs import json_object, new_uuid

STAGES_PENDING = "dunning.stages_pending"  # a sweep whose stage events the fan-out has yet to write


async def record_stage_events(session: AsyncSession, sweep_id: uuid.UUID, now: datetime) -> None:
    """Leave the stage events of this sweep's actions to the fan-out (one row, not one per invoice)."""
    await session.execute(
        insert(table_of(Event)).values(
            id=new_id(),
            type=STAGES_PENDING,
            subject=str(sweep_id),
            payload={"sweep_id": str(sweep_id)},
            dispatched=False,
            created_at=now,
        )
    )


async def complete_pending(session: AsyncSession, event_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Complete the claimed events; answers the ids to fan out (the stage events written instead of
    the work items, the others as they were)."""
    e = table_of(Event)
    claimed: Any = list(event_ids)
    items = (
        await session.execute(
            select(e.c.id, e.c.payload, e.c.created_at).where(
                among(session, e.c.id, claimed), e.c.type == STAGES_PENDING
            )
        )
    ).all()
    done = {item.id for item in items}
    ids = [i for i in event_ids if i not in done]
    for item in items:
        ids.extend(await _stage_events(session, uuid.UUID(item.payload["sweep_id"]), item.created_at))
    if done:
        gone: Any = list(done)
        await session.execute(e.delete().where(among(session, e.c.id, gone)))
    await complete_hand_offs(session, ids)
    return ids


async def _stage_events(session: AsyncSession, sweep_id: uuid.UUID, at: datetime) -> list[uuid.UUID]:
    """One ``dunning.stage_reached`` event per action of the sweep, dated at the sweep."""
    a, s, d = DunningAction, DunningState, Debtor
    payload = json_object(
        literal("invoice"),
        col(s.invoice_external_id),
        literal("number"),
        col(s.invoice_number),
        literal("debtor"),
        col(d.external_id),
        literal("stage"),
        col(a.stage_key),
    )
    rows = (
        select(
            new_uuid(),
            literal(EventType.stage_reached.value),
            col(s.invoice_external_id),
            payload,
            literal(False),
            literal(at),
        )
        .select_from(a)
        .join(s, col(s.invoice_id) == col(a.invoice_id))
        .join(d, col(d.id) == col(a.debtor_id))
        .where(col(a.sweep_id) == sweep_id)
    )
    e = table_of(Event)
    written = await session.execute(
        insert(e)
        .from_select(["id", "type", "subject", "payload", "dispatched", "created_at"], rows)
        .returning(e.c.id)
    )
    return list(written.scalars().all())
