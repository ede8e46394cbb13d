"""The instalment sweep: a few set-based statements over the active plans.

1. Payments count toward instalments in order: what has been paid on a plan is its total minus what
   is still open on its invoices (payments, credit notes, whatever lowers it), and each instalment
   holds the part of that beyond the instalments before it (``start_minor``). Covered instalments
   become ``paid``.
2. A plan with every instalment paid is ``completed``.
3. A plan with an instalment still unpaid ``grace_days`` after its date is ``breached``: that
   instalment is ``missed``, the plan's invoices leave it and the next dunning sweep takes them up
   again at their next stage (event ``plan.breached`` for staff).
4. An instalment ``reminder_days_before`` its date (until the date itself) gets one reminder on the
   outbox (not the down payment: it is due at once, and the confirmation asks for it). The primary key of ``instalment_reminders`` makes a second one impossible, whatever
   sweeps, workers or retries run.

Called by the worker's plan job and at the start of the dunning sweep job, which commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BigInteger, and_, case, cast, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import SYSTEM
from core.base import new_id, table_of
from core.bulk import upsert_insert
from core.debtors.models import Debtor
from core.events.service import emit_many
from core.ledger.models import LedgerEntry
from core.messaging.models import QUEUED_COLUMNS, Message, MessageStatus
from core.plans.models import (
    InstalmentReminder,
    InstalmentStatus,
    PaymentPlan,
    PlanEvent,
    PlanInstalment,
    PlanInvoice,
    PlanState,
)
from core.sqlfuncs import add_days, json_object, new_uuid

REMINDER_KIND = "instalment_reminder"


@dataclass
class PlanSweepResult:
    run_id: uuid.UUID
    instalments_paid: int = 0
    reminders: int = 0
    completed: list[uuid.UUID] = field(default_factory=list)
    breached: list[uuid.UUID] = field(default_factory=list)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def sweep_instalments(session: AsyncSession, *, now: datetime) -> PlanSweepResult:
    today = now.date()
    out = PlanSweepResult(new_id())
    p, pi, ins = table_of(PaymentPlan), table_of(PlanInvoice), table_of(PlanInstalment)
    active = p.c.state == PlanState.active.value

    # 1. Paid so far per active plan, spread over its instalments in order.
    open_now = (
        select(
            pi.c.plan_id,
            cast(func.coalesce(func.sum(LedgerEntry.amount_minor), 0), BigInteger).label("open_minor"),
        )
        .select_from(pi)
        .join(table_of(LedgerEntry), col(LedgerEntry.invoice_id) == pi.c.invoice_id)
        .where(pi.c.active)
        .group_by(pi.c.plan_id)
        .subquery("open_now")
    )
    paid = (
        select(p.c.id.label("plan_id"), (p.c.total_minor - open_now.c.open_minor).label("paid"))
        .join(open_now, open_now.c.plan_id == p.c.id)
        .where(active)
        .subquery("paid")
    )
    covered = paid.c.paid >= ins.c.start_minor + ins.c.amount_minor
    await session.execute(
        update(ins)
        .where(ins.c.plan_id == paid.c.plan_id, ins.c.status == InstalmentStatus.open.value)
        .values(
            paid_minor=case(
                (covered, ins.c.amount_minor),
                (paid.c.paid > ins.c.start_minor, paid.c.paid - ins.c.start_minor),
                else_=0,
            ),
            status=case((covered, InstalmentStatus.paid.value), else_=ins.c.status),
            paid_at=case((covered, now), else_=ins.c.paid_at),
        )
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    out.instalments_paid = int(
        (
            await session.execute(
                select(func.count())
                .select_from(ins)
                .where(ins.c.paid_at == now, ins.c.status == InstalmentStatus.paid.value)
            )
        ).scalar_one()
    )

    # 2. Completed: nothing left open.
    unpaid = exists().where(ins.c.plan_id == p.c.id, ins.c.status != InstalmentStatus.paid.value)
    out.completed = list((await session.execute(select(p.c.id).where(active, ~unpaid))).scalars().all())
    await _end(session, out.completed, PlanState.completed, PlanEvent.completed, now)

    # 3. Breached: an instalment unpaid past its date plus the grace days.
    late = and_(
        ins.c.plan_id == p.c.id,
        ins.c.status == InstalmentStatus.open.value,
        add_days(ins.c.due_on, p.c.grace_days) < today,
    )
    out.breached = list(
        (await session.execute(select(p.c.id).where(active, exists().where(late)))).scalars().all()
    )
    if out.breached:
        await session.execute(
            update(ins)
            .where(late, p.c.id.in_(out.breached))
            .values(status=InstalmentStatus.missed.value)
            .execution_options(synchronize_session=False)
        )
        await _end(session, out.breached, PlanState.breached, PlanEvent.breached, now)

    # 4. Reminders, once per instalment.
    r = table_of(InstalmentReminder)
    due = (
        select(ins.c.plan_id, ins.c.number, p.c.debtor_id, literal(out.run_id), new_uuid(), literal(now))
        .select_from(ins)
        .join(p, p.c.id == ins.c.plan_id)
        .where(
            active,
            ins.c.status == InstalmentStatus.open.value,
            ins.c.number > 0,  # the down payment is due at once: the confirmation asks for it
            add_days(ins.c.due_on, -p.c.reminder_days_before) <= today,
            ins.c.due_on >= today,
        )
    )
    await session.execute(
        upsert_insert(session, r)
        .from_select(["plan_id", "number", "debtor_id", "run_id", "message_id", "created_at"], due)
        .on_conflict_do_nothing()
    )
    d = table_of(Debtor)
    payload = json_object(
        literal("kind"),
        literal(REMINDER_KIND),
        literal("plan_id"),
        r.c.plan_id,
        literal("number"),
        r.c.number,
    )
    messages = (
        select(
            r.c.message_id,
            r.c.debtor_id,
            literal(REMINDER_KIND),
            literal("instalment_reminder"),
            literal("friendly"),
            d.c.channel_order,
            literal(MessageStatus.queued.value),
            literal(0),
            literal(now),
            literal(out.run_id),
            payload,
            literal(now),
            literal(now),
        )
        .select_from(r)
        .join(d, d.c.id == r.c.debtor_id)
        .where(r.c.run_id == out.run_id)
    )
    out.reminders = _rowcount(
        await session.execute(insert(table_of(Message)).from_select(QUEUED_COLUMNS, messages))
    )
    if out.instalments_paid or out.reminders or out.completed or out.breached:
        await audit.record(
            session,
            SYSTEM,
            "plans.swept",
            "plan_sweep",
            out.run_id,
            after={
                "date": today.isoformat(),
                "instalments_paid": out.instalments_paid,
                "reminders": out.reminders,
                "completed": len(out.completed),
                "breached": len(out.breached),
            },
        )
    return out


async def _end(
    session: AsyncSession, plan_ids: list[uuid.UUID], state: PlanState, event: PlanEvent, now: datetime
) -> None:
    """Close plans: their state, their invoices back to dunning, audit and events."""
    if not plan_ids:
        return
    p = table_of(PaymentPlan)
    await session.execute(
        update(p)
        .where(p.c.id.in_(plan_ids))
        .values(state=state.value, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(table_of(PlanInvoice))
        .where(col(PlanInvoice.plan_id).in_(plan_ids))
        .values(active=False)
        .execution_options(synchronize_session=False)
    )
    rows = (
        await session.execute(
            select(p.c.id, col(Debtor.external_id), p.c.total_minor, p.c.currency)
            .join(table_of(Debtor), col(Debtor.id) == p.c.debtor_id)
            .where(p.c.id.in_(plan_ids))
        )
    ).all()
    await audit.record_many(
        session,
        SYSTEM,
        f"plan.{state.value}",
        "payment_plan",
        (
            (row.id, {"state": PlanState.active.value}, {"state": state.value, "on": now.date().isoformat()})
            for row in rows
        ),
    )
    await emit_many(
        session,
        event.value,
        (
            (
                str(row.id),
                {
                    "plan_id": str(row.id),
                    "debtor": row.external_id,
                    "state": state.value,
                    "on": now.date().isoformat(),
                },
            )
            for row in rows
        ),
    )
