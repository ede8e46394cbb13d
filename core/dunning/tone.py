"""The tone of a reminder: the stage's tone, moved one step by the debtor's payment history.

Rules (over the last 12 months, counted per debtor, set-based for the whole sweep at once):

- A *late payment* is an invoice now paid that needed at least one reminder (a dunning action other
  than its delivery). A *broken promise* is a promise to pay that was broken.
- Habitual late payer (3 or more late payments, or 2 or more broken promises): one step firmer
  (friendly → neutral, neutral → firm). They get firm sooner.
- Good payer (at least 2 invoices paid without a reminder, no late payment, no broken promise): one
  step friendlier, neutral → friendly. Firm stages are the final notices: they stay firm.
- Anyone else gets the stage's tone.

The sweep applies this to the reminders it has just queued (:func:`adjust`); delivery renders the
message with the tone stored on it, and the stage's own tone is kept in the message payload.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Subquery, and_, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import table_of
from core.dunning.models import DunningAction, Promise, PromiseStatus
from core.invoices.models import Invoice, InvoiceStatus
from core.messaging.models import Message

WINDOW = timedelta(days=365)
HABITUAL_LATE = 3
HABITUAL_BROKEN = 2
GOOD_ON_TIME = 2
ISSUED = "issued"  # distribution.ISSUED: the delivery of the invoice itself, not a reminder
FIRMER = {"friendly": "neutral", "neutral": "firm", "firm": "firm"}
FRIENDLIER = {"neutral": "friendly"}


@dataclass(frozen=True)
class History:
    late: int = 0  # invoices paid after at least one reminder
    on_time: int = 0  # invoices paid without a reminder
    broken_promises: int = 0


def choose(stage_tone: str, history: History) -> str:
    """The tone for one reminder, from its stage's tone and the debtor's history."""
    if history.late >= HABITUAL_LATE or history.broken_promises >= HABITUAL_BROKEN:
        return FIRMER.get(stage_tone, stage_tone)
    if history.late == 0 and history.broken_promises == 0 and history.on_time >= GOOD_ON_TIME:
        return FRIENDLIER.get(stage_tone, stage_tone)
    return stage_tone


def _history(today: date, debtors: Any) -> tuple[Subquery, Subquery]:
    """Per debtor among ``debtors`` (a subquery of ids): late payments, on-time payments, broken
    promises within the window. Only those debtors are read, through their indexes: the cost
    follows the sweep, not the book."""
    since = today - WINDOW
    reminded = (
        select(literal(1))
        .where(
            col(DunningAction.due_date) == col(Invoice.due_date),
            col(DunningAction.invoice_id) == col(Invoice.id),
            col(DunningAction.stage_key) != ISSUED,
        )
        .exists()
    )
    paid = (
        select(
            col(Invoice.debtor_id).label("debtor_id"),
            func.sum(case((reminded, 1), else_=0)).label("late"),
            func.sum(case((reminded, 0), else_=1)).label("on_time"),
        )
        .where(
            col(Invoice.debtor_id).in_(debtors),
            col(Invoice.status) == InvoiceStatus.paid.value,
            col(Invoice.due_date) >= since,
        )
        .group_by(col(Invoice.debtor_id))
        .subquery("paid")
    )
    broken = (
        select(col(Promise.debtor_id).label("debtor_id"), func.count().label("broken"))
        .where(
            col(Promise.debtor_id).in_(debtors),
            col(Promise.status) == PromiseStatus.broken.value,
            col(Promise.created_at) >= datetime.combine(since, time(), UTC),
        )
        .group_by(col(Promise.debtor_id))
        .subquery("broken")
    )
    return paid, broken


async def adjust(session: AsyncSession, sweep_id: uuid.UUID, today: date) -> int:
    """Move the tone of this sweep's reminders by each debtor's history; the number changed."""
    m = table_of(Message)
    paid, broken = _history(today, select(m.c.debtor_id).where(m.c.sweep_id == sweep_id))
    rows = await session.execute(
        select(m.c.id, m.c.tone, paid.c.late, paid.c.on_time, broken.c.broken)
        .select_from(m)
        .outerjoin(paid, paid.c.debtor_id == m.c.debtor_id)
        .outerjoin(broken, broken.c.debtor_id == m.c.debtor_id)
        .where(and_(m.c.sweep_id == sweep_id, m.c.kind == "reminder"))
    )
    moves: dict[tuple[str, str], list[uuid.UUID]] = {}
    for msg_id, tone, late, on_time, n_broken in rows:
        history = History(int(late or 0), int(on_time or 0), int(n_broken or 0))
        new = choose(tone, history)
        if new != tone:
            moves.setdefault((tone, new), []).append(msg_id)
    changed = 0
    for (old, new), ids in moves.items():
        result = await session.execute(
            update(m)
            .where(m.c.id.in_(ids))
            .values(tone=new, payload={"kind": "reminder", "stage_tone": old, "tone_rule": "history"})
        )
        changed += int(getattr(result, "rowcount", 0) or 0)
    return changed
