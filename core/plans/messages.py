"""What the outbox delivery needs for plan messages (kinds ``instalment_reminder`` and
``plan_confirmation``): the plan's invoices that are still open, and the template context.

core/messaging/repository.load_job calls ``load`` for these kinds instead of looking for dunning
actions; the delivery's render context takes ``extra`` over its own. A reminder whose instalment
was paid meanwhile, or whose plan is no longer active, finds nothing left and is not sent.

Template context added to the usual one (core/templates.py):

``total``: Money, the instalment's amount still to pay (reminder) or the plan's total (confirmation).
``instalment``: the reminded instalment, ``{number, count, due_on, amount}`` (reminder only).
``schedule``: every instalment ``{number, due_on, amount}``; number 0 is the down payment.
``down_payment``: Money or None. ``plan_ends``: the last instalment's date.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, cast, false, func, literal, null, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.dunning.models import DunningState
from core.invoices.models import PAYABLE_STATUSES, Invoice
from core.ledger.models import LedgerEntry
from core.messaging.models import Message
from core.messaging.repository import DueInvoice
from core.money import Money
from core.plans.models import InstalmentStatus, PaymentPlan, PlanInstalment, PlanInvoice, PlanState

PLAN_STAGE = "payment_plan"


async def load(session: AsyncSession, message: Message) -> tuple[list[DueInvoice], dict[str, Any]]:
    try:
        plan_id = uuid.UUID(str(message.payload.get("plan_id")))
    except ValueError:
        return [], {}
    plan = await session.get(PaymentPlan, plan_id)
    if plan is None or plan.state != PlanState.active.value:
        return [], {}
    rows = list(
        (
            await session.scalars(
                select(PlanInstalment)
                .where(col(PlanInstalment.plan_id) == plan.id)
                .order_by(col(PlanInstalment.number))
            )
        ).all()
    )
    schedule = [
        {"number": r.number, "due_on": r.due_on, "amount": Money(r.amount_minor, plan.currency)} for r in rows
    ]
    extra: dict[str, Any] = {
        "total": Money(plan.total_minor, plan.currency),
        "schedule": schedule,
        "down_payment": Money(plan.down_payment_minor, plan.currency) if plan.down_payment_minor else None,
        "plan_ends": rows[-1].due_on if rows else plan.starts_on,
    }
    if message.kind == "instalment_reminder":
        number = message.payload.get("number")
        this = next((r for r in rows if r.number == number), None)
        if this is None or this.status != InstalmentStatus.open.value:
            return [], {}
        extra["total"] = Money(this.amount_minor - this.paid_minor, plan.currency)
        extra["instalment"] = {
            "number": this.number,
            "count": plan.instalment_count,
            "due_on": this.due_on,
            "amount": Money(this.amount_minor, plan.currency),
        }
    return await _open_invoices(session, plan.id), extra


async def _open_invoices(session: AsyncSession, plan_id: uuid.UUID) -> list[DueInvoice]:
    covered = select(col(PlanInvoice.invoice_id)).where(col(PlanInvoice.plan_id) == plan_id)
    sums = (
        select(
            col(LedgerEntry.invoice_id).label("invoice_id"),
            cast(func.sum(col(LedgerEntry.amount_minor)), BigInteger).label("open_minor"),
        )
        .where(col(LedgerEntry.invoice_id).in_(covered))
        .group_by(col(LedgerEntry.invoice_id))
        .subquery("sums")
    )
    stmt = (
        select(
            col(Invoice.id),
            col(Invoice.number),
            col(Invoice.due_date),
            col(Invoice.currency),
            sums.c.open_minor,
            literal(PLAN_STAGE).label("stage_key"),
            col(DunningState.policy_id),
            null().label("fee_minor"),
            null().label("fee_currency"),
            false().label("charge_interest"),
        )
        .join(sums, sums.c.invoice_id == col(Invoice.id))
        .join(DunningState, col(DunningState.invoice_id) == col(Invoice.id))
        .where(col(Invoice.status).in_([s.value for s in PAYABLE_STATUSES]), sums.c.open_minor > 0)
        .order_by(col(Invoice.due_date), col(Invoice.number))
    )
    return [DueInvoice.of(r) for r in (await session.execute(stmt)).all()]
