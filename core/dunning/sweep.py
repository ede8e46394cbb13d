"""The dunning sweep: a few set-based statements that decide and record what is due.

1. ``due_query`` finds, through the index on ``next_action_on``, every eligible invoice whose next
   stage has come, and the latest stage that has come for it. After downtime that is the latest
   one only: the debtor gets no burst of stale reminders, yet fees of crossed stages are charged.
2. One row per (invoice, stage) goes into ``dunning_actions``. Its primary key makes a second
   sweep, a second worker or a retried job unable to act twice: they insert nothing.
3. Fees of every stage crossed are posted to the ledger.
4. One outbox message per debtor lists all of that debtor's due invoices; it takes the template
   and tone of the most advanced stage among them.
5. Each state moves to its new stage and the date of the next one.

Nothing here loops over invoices in Python. Delivery (channel choice, quiet hours, caps, retries)
happens later, from the outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, and_, cast, exists, func, insert, literal, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from core import audit
from core.audit import SYSTEM
from core.base import JSONType, new_id, table_of
from core.bulk import upsert_insert
from core.debtors.models import Debtor
from core.dunning.agency import hand_over
from core.dunning.holds import break_promises
from core.dunning.models import DunningAction, DunningPolicy, DunningStage, DunningState
from core.events.service import emit_stage_events
from core.invoices.models import Invoice, InvoiceStatus
from core.ledger.models import EntryKind, LedgerEntry
from core.messaging.models import Message, MessageStatus
from core.payments.models import PENDING_STATUSES, PspPayment, PspPaymentInvoice
from core.sqlfuncs import add_days, days_between, new_uuid

ACTIVE_STATUSES = (InvoiceStatus.approved.value, InvoiceStatus.open.value)


def psp_pending(invoice_id: Any) -> Any:
    """EXISTS a PSP payment covering the invoice that the debtor started and the PSP has not
    settled yet (pending, authorized): no reminder while the money is on its way."""
    link, psp = PspPaymentInvoice, PspPayment
    return exists().where(
        col(link.invoice_id) == invoice_id,
        col(psp.id) == col(link.psp_payment_id),
        col(psp.status).in_(PENDING_STATUSES),
    )


def due_query(today: date) -> Any:
    """(invoice_id, debtor_id, policy_id, from_position, position): what is due on ``today``."""
    s, inv, d, pol, stg = DunningState, Invoice, Debtor, DunningPolicy, DunningStage
    eligible = and_(
        col(s.next_action_on) <= today,
        col(inv.status).in_(ACTIVE_STATUSES),
        not_(col(s.disputed)),
        or_(
            col(s.pause_reason).is_(None), and_(col(s.paused_until).is_not(None), col(s.paused_until) < today)
        ),
        or_(not_(col(d.dunning_paused)), and_(col(d.paused_until).is_not(None), col(d.paused_until) < today)),
        or_(col(s.promise_date).is_(None), add_days(s.promise_date, pol.promise_grace_days) < today),
        not_(psp_pending(col(s.invoice_id))),
    )
    return (
        select(
            col(s.invoice_id).label("invoice_id"),
            col(s.debtor_id).label("debtor_id"),
            col(s.policy_id).label("policy_id"),
            col(s.stage_position).label("from_position"),
            func.max(stg.position).label("position"),
        )
        .join(inv, col(inv.id) == col(s.invoice_id))
        .join(d, col(d.id) == col(s.debtor_id))
        .join(pol, col(pol.id) == col(s.policy_id))
        .join(
            stg,
            and_(
                col(stg.policy_id) == col(s.policy_id),
                col(stg.position) > col(s.stage_position),
                add_days(inv.due_date, stg.offset_days) <= today,
            ),
        )
        .where(eligible)
        .group_by(col(s.invoice_id), col(s.debtor_id), col(s.policy_id), col(s.stage_position))
    )


@dataclass
class SweepResult:
    sweep_id: uuid.UUID
    actions: int
    messages: int
    fees: int  # fee and interest entries posted
    broken_promises: list[str] = field(default_factory=list)  # invoice external ids, for staff


async def sweep(session: AsyncSession, *, now: datetime) -> SweepResult:
    """Decide and record one sweep. The caller commits; enqueue delivery after the commit."""
    today = now.date()
    sweep_id = new_id()
    broken = await break_promises(session, today)  # their invoices come due again below
    due = due_query(today).subquery("due")
    stg = aliased(DunningStage)

    # 2. Actions, at most once per (invoice, stage).
    actions = table_of(DunningAction)
    chosen = select(due.c.invoice_id, col(stg.key), due.c.debtor_id, literal(sweep_id), literal(now)).join(
        stg, and_(col(stg.policy_id) == due.c.policy_id, col(stg.position) == due.c.position)
    )
    stmt = (
        upsert_insert(session, actions)
        .from_select(["invoice_id", "stage_key", "debtor_id", "sweep_id", "created_at"], chosen)
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)
    this = select(DunningAction).where(col(DunningAction.sweep_id) == sweep_id).subquery("this")
    n_actions = int((await session.execute(select(func.count()).select_from(this))).scalar_one())
    if n_actions == 0:
        return SweepResult(sweep_id, 0, 0, 0, broken)
    await emit_stage_events(session, sweep_id, now)
    await hand_over(session, sweep_id, now)

    state = DunningState
    pol = DunningPolicy
    # 3. Fees of every stage crossed, in the invoice's currency.
    crossed = aliased(DunningStage)
    reached = aliased(DunningStage)
    fees = select(
        new_uuid(),
        col(state.debtor_id),
        col(state.invoice_id),
        literal(EntryKind.fee.value),
        col(crossed.fee_minor),
        col(Invoice.currency),
        literal(today),
        literal("dunning fee: ") + col(crossed.key),
        literal(SYSTEM.label),
        literal(now),
    )
    fees = _crossed(
        fees,
        this,
        crossed,
        reached,
        and_(col(crossed.fee_minor).is_not(None), col(crossed.fee_currency) == col(Invoice.currency)),
    )
    fee_cols = [
        "id",
        "debtor_id",
        "invoice_id",
        "kind",
        "amount_minor",
        "currency",
        "effective_date",
        "description",
        "created_by",
        "created_at",
    ]
    result = await session.execute(insert(table_of(LedgerEntry)).from_select(fee_cols, fees))
    n_fees = int(getattr(result, "rowcount", 0) or 0)

    # 3b. Statutory interest when a stage that charges it is crossed: simple interest at the policy's
    # annual rate on the open amount (fees and earlier interest excluded) for the days overdue.
    # sum() is NUMERIC on PostgreSQL: cast, so that the division below stays integer division.
    principal = (
        select(cast(func.coalesce(func.sum(LedgerEntry.amount_minor), 0), BigInteger))
        .where(
            col(LedgerEntry.invoice_id) == col(state.invoice_id),
            col(LedgerEntry.kind).not_in((EntryKind.fee.value, EntryKind.interest.value)),
        )
        .scalar_subquery()
    )
    # Round half up in integer arithmetic: (principal * bp * days + 1825000) // 3650000.
    interest_minor = (
        principal * col(pol.interest_rate_bp) * days_between(literal(today), Invoice.due_date) + 1_825_000
    ) // 3_650_000
    interest = select(
        new_uuid(),
        col(state.debtor_id),
        col(state.invoice_id),
        literal(EntryKind.interest.value),
        interest_minor,
        col(Invoice.currency),
        literal(today),
        literal("statutory interest at stage ") + col(crossed.key),
        literal(SYSTEM.label),
        literal(now),
    )
    interest = (
        _crossed(interest, this, crossed, reached, col(crossed.charge_interest))
        .join(pol, col(pol.id) == col(state.policy_id))
        .where(col(pol.interest_rate_bp) > 0, interest_minor > 0)
    )
    result = await session.execute(insert(table_of(LedgerEntry)).from_select(fee_cols, interest))
    n_fees += int(getattr(result, "rowcount", 0) or 0)

    # 4. One message per debtor, in the words of its most advanced stage.
    ranked = (
        select(
            this.c.debtor_id,
            col(state.policy_id).label("policy_id"),
            col(reached.position).label("position"),
            func.row_number()
            .over(partition_by=this.c.debtor_id, order_by=(col(reached.position).desc(), this.c.invoice_id))
            .label("rank"),
        )
        .select_from(this)
        .join(state, col(state.invoice_id) == this.c.invoice_id)
        .join(
            reached,
            and_(col(reached.policy_id) == col(state.policy_id), col(reached.key) == this.c.stage_key),
        )
        .subquery("ranked")
    )
    lead = aliased(DunningStage)
    messages = (
        select(
            new_uuid(),
            ranked.c.debtor_id,
            literal("reminder"),
            col(lead.template),
            col(lead.tone),
            col(lead.channels),
            literal(MessageStatus.queued.value),
            literal(0),
            literal(now),
            literal(sweep_id),
            literal({"kind": "reminder"}, JSONType),
            literal(now),
            literal(now),
        )
        .join(lead, and_(col(lead.policy_id) == ranked.c.policy_id, col(lead.position) == ranked.c.position))
        .where(ranked.c.rank == 1)
    )
    msg_cols = [
        "id",
        "debtor_id",
        "kind",
        "template",
        "tone",
        "channels",
        "status",
        "attempts",
        "next_attempt_at",
        "sweep_id",
        "payload",
        "created_at",
        "updated_at",
    ]
    result = await session.execute(insert(table_of(Message)).from_select(msg_cols, messages))
    n_messages = int(getattr(result, "rowcount", 0) or 0)

    # Each action points at the message that carries it (one UPDATE … FROM, a join not a subquery
    # per row: per-row lookups by sweep turn quadratic in the number of due invoices).
    a = table_of(DunningAction)
    m = table_of(Message)
    await session.execute(
        update(a)
        .where(a.c.sweep_id == sweep_id, m.c.sweep_id == sweep_id, m.c.debtor_id == a.c.debtor_id)
        .values(message_id=m.c.id)
    )

    # 5. Advance: the new stage, and the date the next one comes due (none after the last).
    s_ = table_of(DunningState)
    st = table_of(DunningStage)
    cur = st.alias("cur")
    nxt = st.alias("nxt")
    i = table_of(Invoice)
    moved = (
        select(
            a.c.invoice_id,
            cur.c.position,
            cur.c.key,
            add_days(i.c.due_date, nxt.c.offset_days).label("next_on"),
        )
        .select_from(a)
        .join(s_, s_.c.invoice_id == a.c.invoice_id)
        .join(cur, and_(cur.c.policy_id == s_.c.policy_id, cur.c.key == a.c.stage_key))
        .join(i, i.c.id == a.c.invoice_id)
        .outerjoin(nxt, and_(nxt.c.policy_id == s_.c.policy_id, nxt.c.position == cur.c.position + 1))
        .where(a.c.sweep_id == sweep_id)
        .subquery("moved")
    )
    await session.execute(
        update(s_)
        .where(s_.c.invoice_id == moved.c.invoice_id)
        .values(
            stage_position=moved.c.position,
            stage_key=moved.c.key,
            next_action_on=moved.c.next_on,
            updated_at=now,
        )
    )
    await audit.record(
        session,
        SYSTEM,
        "dunning.swept",
        "dunning_sweep",
        sweep_id,
        after={
            "date": today.isoformat(),
            "actions": n_actions,
            "messages": n_messages,
            "fees": n_fees,
            "broken_promises": len(broken),
        },
    )
    return SweepResult(sweep_id, n_actions, n_messages, n_fees, broken)


def _crossed(stmt: Any, this: Any, crossed: Any, reached: Any, condition: Any) -> Any:
    """Join ``stmt`` to every stage that this sweep's invoices crossed (after their old stage, up to
    the one reached) and that meets ``condition``: one row per invoice and such stage."""
    state = DunningState
    return (
        stmt.select_from(this)
        .join(state, col(state.invoice_id) == this.c.invoice_id)
        .join(Invoice, col(Invoice.id) == col(state.invoice_id))
        .join(
            reached,
            and_(col(reached.policy_id) == col(state.policy_id), col(reached.key) == this.c.stage_key),
        )
        .join(
            crossed,
            and_(
                col(crossed.policy_id) == col(state.policy_id),
                col(crossed.position) > col(state.stage_position),
                col(crossed.position) <= col(reached.position),
                condition,
            ),
        )
    )
