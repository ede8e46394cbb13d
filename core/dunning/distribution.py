"""Distribution of approved invoices, throttled: thousands must not reach customer service at once.

Approval puts one ``invoice_delivery`` message per invoice on the outbox, spaced so that at most
DUEBOT_DISTRIBUTION_PER_HOUR go out per hour across all batches (a new batch queues behind the ones
still going out). Issuing is stage ``issued`` in ``dunning_actions``, so it happens once per invoice.
When the message is out, ``mark_issued`` moves the invoice from ``approved`` to ``open``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import new_id, table_of
from core.bulk import copy_records
from core.debtors.models import DEFAULT_CHANNEL_ORDER
from core.dunning.models import DunningAction
from core.invoices.models import Invoice, InvoiceStatus
from core.messaging.models import QUEUED_COLUMNS, Message, MessageStatus

ISSUED = "issued"
ACTION_COLUMNS = ("due_date", "invoice_id", "stage_key", "debtor_id", "sweep_id", "message_id", "created_at")


async def schedule_delivery(session: AsyncSession, batch_id: uuid.UUID, now: datetime, per_hour: int) -> int:
    """Queue the batch's invoices for delivery at ``per_hour`` at most. Returns how many were queued."""
    rows = (
        await session.execute(
            select(col(Invoice.id), col(Invoice.debtor_id), col(Invoice.due_date))
            .where(col(Invoice.batch_id) == batch_id)
            .order_by(col(Invoice.due_date), col(Invoice.number))
        )
    ).all()
    if not rows:
        return 0
    last = (
        await session.execute(
            select(func.max(Message.next_attempt_at)).where(
                col(Message.kind) == "invoice", col(Message.status) == MessageStatus.queued.value
            )
        )
    ).scalar_one()
    step = timedelta(seconds=3600 / max(per_hour, 1))
    start = max(now, last + step) if last is not None else now
    messages, actions = [], []
    for i, (invoice_id, debtor_id, due_date) in enumerate(rows):
        message_id = new_id()
        messages.append(
            (
                message_id,
                debtor_id,
                "invoice",
                "invoice_delivery",
                "neutral",
                list(DEFAULT_CHANNEL_ORDER),
                MessageStatus.queued.value,
                0,
                start + i * step,
                None,  # no sweep: the batch's approval queued it
                {"kind": "invoice"},
                now,
                now,
            )
        )
        actions.append((due_date, invoice_id, ISSUED, debtor_id, batch_id, message_id, now))
    await copy_records(session, table_of(Message), QUEUED_COLUMNS, messages)
    await copy_records(session, table_of(DunningAction), ACTION_COLUMNS, actions)
    return len(rows)


async def mark_issued(session: AsyncSession, now: datetime) -> int:
    """Approved invoices whose delivery message is out become ``open`` (one UPDATE)."""
    out = (
        select(col(DunningAction.invoice_id))
        .join(Message, col(Message.id) == col(DunningAction.message_id))
        .where(
            col(DunningAction.stage_key) == ISSUED,
            col(Message.status).in_(
                (MessageStatus.sent.value, MessageStatus.delivered.value, MessageStatus.read.value)
            ),
        )
    )
    result = await session.execute(
        update(Invoice)
        .where(col(Invoice.status) == InvoiceStatus.approved.value, col(Invoice.id).in_(out))
        .values(status=InvoiceStatus.open.value, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
