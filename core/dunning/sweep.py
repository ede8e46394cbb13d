"""The dunning sweep: a few set-based statements that decide and record what is due.

0. On PostgreSQL an advisory lock lets one sweep run at a time; a second waits, then finds nothing.
1. ``due_query`` finds, through the index on ``next_action_on``, every eligible invoice whose next
   stage has come, and the latest stage that has come for it. After downtime that is the latest
   one only: the debtor gets no burst of stale reminders, yet fees of crossed stages are charged.
   It reads dunning states, never invoices (lifecycle.py keeps the states in step), and its
   result goes into a temporary table that the statements below read.
2. One outbox message per debtor lists all of that debtor's due invoices; it takes the template
   and tone of the most advanced stage among them.
3. One row per (invoice, stage) goes into ``dunning_actions``, pointing at its message. The
   primary key makes a second sweep, a second worker or a retried job unable to act twice.
   Its webhook events (stage reached, the hand-offs' evidence) are left to the event fan-out as
   one work item (outbound.py): writing them is no part of deciding.
4. Fees of every stage crossed, and statutory interest, are posted to the ledger.
5. Each state moves to its new stage and the date of the next one.

Nothing here loops over invoices in Python. Delivery (channel choice, quiet hours, caps, retries)
happens later, from the outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from core import audit
from core.audit import SYSTEM
from core.base import JSONType, new_id, table_of
from core.bulk import upsert_insert
from core.debtors.models import Debtor
from core.dunning import tone
from core.dunning.agency import hand_over
from core.dunning.holds import break_promises
from core.dunning.models import DunningAction, DunningPolicy, DunningStage, DunningState, StageAction
from core.dunning.outbound import record_stage_events
from core.invoices.models import InvoiceStatus
from core.ledger.models import EntryKind, LedgerEntry
from core.messaging.models import QUEUED_COLUMNS, Message, MessageStatus
from core.payments.models import PENDING_STATUSES, PspPayment, PspPaymentInvoice
from core.plans.models import PlanInvoice
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
    """(invoice_id, debtor_id, policy_id, due_date, from_position, position): what is due on ``today``.

    It reads dunning states through the index on ``next_action_on`` and never the invoices: an
    invoice that is not open has no next action (lifecycle.py), and the state carries its due date.
    """
    s, d, pol, stg = DunningState, Debtor, DunningPolicy, DunningStage
    eligible = and_(
        col(s.next_action_on) <= today,
        not_(col(s.disputed)),
        or_(
            col(s.pause_reason).is_(None), and_(col(s.paused_until).is_not(None), col(s.paused_until) < today)
        ),
        or_(not_(col(d.dunning_paused)), and_(col(d.paused_until).is_not(None), col(d.paused_until) < today)),
        or_(col(s.promise_date).is_(None), add_days(s.promise_date, pol.promise_grace_days) < today),
        ~exists().where(col(PlanInvoice.invoice_id) == col(s.invoice_id), col(PlanInvoice.active)),
        not_(psp_pending(col(s.invoice_id))),
    )
    return (
        select(
            col(s.invoice_id).label("invoice_id"),
            col(s.debtor_id).label("debtor_id"),
            col(s.policy_id).label("policy_id"),
            col(s.due_date).label("due_date"),
            col(s.currency).label("currency"),
            col(s.invoice_external_id).label("invoice_external_id"),
            col(s.invoice_number).label("invoice_number"),
            col(d.external_id).label("debtor_external_id"),
            col(s.stage_position).label("from_position"),
            func.max(stg.position).label("position"),
        )
        .join(d, col(d.id) == col(s.debtor_id))
        .join(pol, col(pol.id) == col(s.policy_id))
        .join(
            stg,
            and_(
                col(stg.policy_id) == col(s.policy_id),
                col(stg.position) > col(s.stage_position),
                add_days(s.due_date, stg.offset_days) <= today,
            ),
        )
        .where(eligible)
        .group_by(
            col(s.invoice_id),
            col(s.debtor_id),
            col(s.policy_id),
            col(s.due_date),
            col(s.currency),
            col(s.invoice_external_id),
            col(s.invoice_number),
            col(d.external_id),
            col(s.stage_position),
        )
    )


@dataclass
class SweepResult:
    sweep_id: uuid.UUID
    actions: int
    messages: int
    fees: int  # fee and interest entries posted
    broken_promises: list[str] = field(default_factory=list)  # invoice external ids, for staff


def _due_table(sweep_id: uuid.UUID) -> Table:
    """The due set of one sweep: computed once, read by every statement after it, dropped at the
    end. Its name is the sweep's own, so two sweeps on one connection cannot collide."""
    return Table(
        f"sweep_due_{sweep_id.hex[-16:]}",
        MetaData(),
        Column("invoice_id", Uuid, primary_key=True),
        Column("debtor_id", Uuid, nullable=False),
        Column("policy_id", Uuid, nullable=False),
        Column("due_date", Date, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("invoice_external_id", String(128), nullable=False),
        Column("invoice_number", String(64), nullable=False),
        Column("debtor_external_id", String(128), nullable=False),
        Column("from_position", Integer, nullable=False),
        Column("position", Integer, nullable=False),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


SWEEP_LOCK = 0x64756E6E696E67  # pg_advisory_xact_lock key: one sweep at a time ("dunning")

ENTRY_COLUMNS = [
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


async def sweep(session: AsyncSession, *, now: datetime) -> SweepResult:
    """Decide and record one sweep. The caller commits; enqueue delivery after the commit."""
    today = now.date()
    sweep_id = new_id()
    if session.get_bind().dialect.name == "postgresql":
        # A second sweep waits here, then finds nothing due. (SQLite's write lock does the same.)
        await session.execute(select(func.pg_advisory_xact_lock(SWEEP_LOCK)))
        # Every statement below is driven by the small due set: reach the big tables through their
        # keys. With the default random_page_cost the planner would rather scan all of
        # dunning_states to update 1% of it, and the sweep would grow with the book.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        # That makes every plan look costly, which would have PostgreSQL JIT-compile each statement
        # (about 0.2 s apiece) for work that takes milliseconds.
        await session.execute(text("SET LOCAL jit = off"))
    broken = await break_promises(session, today)  # their invoices come due again below

    # 1. The due set, once.
    due = _due_table(sweep_id)
    conn = await session.connection()
    await conn.run_sync(due.create)
    result = await session.execute(
        insert(due).from_select([c.name for c in due.columns], due_query(today))  # same order
    )
    n_due = int(getattr(result, "rowcount", 0) or 0)
    if n_due and session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"ANALYZE {due.name}"))

    # 2. One message per debtor, in the words of its most advanced stage.
    n_messages = await _messages(session, due, sweep_id, now) if n_due else 0
    if n_messages:
        await tone.adjust(session, sweep_id, today)  # the debtor's history moves the stage's tone

    # 3. Actions, at most once per (invoice, stage), each pointing at the message that carries it.
    n_actions = await _actions(session, due, sweep_id, now) if n_due else 0
    if n_actions < n_due:  # another sweep acted first: keep only what this one decided
        n_messages = await _forget_acted(session, due, sweep_id)
    if n_actions == 0:
        await _finish(session, conn, due)
        return SweepResult(sweep_id, 0, 0, 0, broken)
    await record_stage_events(session, sweep_id, now)  # written by the fan-out (outbound.py)
    at_agency = aliased(DunningStage)
    reached_agency = (
        select(due.c.invoice_id)
        .join(
            at_agency,
            and_(col(at_agency.policy_id) == due.c.policy_id, col(at_agency.position) == due.c.position),
        )
        .where(col(at_agency.action) == StageAction.agency.value)
    )
    await hand_over(session, sweep_id, now, reached_agency)

    # 4. Fees and statutory interest of every stage crossed.
    n_fees = await _fees(session, due, today, now)

    # 5. Advance: the new stage, and the date the next one comes due (none after the last).
    st = table_of(DunningStage)
    cur = st.alias("cur")
    nxt = st.alias("nxt")
    moved = (
        select(
            due.c.invoice_id,
            cur.c.position,
            cur.c.key,
            # None after the last stage, and at the agency's (the last, too): the invoice is gone.
            case(
                (cur.c.action == StageAction.agency.value, None),
                else_=add_days(due.c.due_date, nxt.c.offset_days),
            ).label("next_on"),
        )
        .select_from(due)
        .join(cur, and_(cur.c.policy_id == due.c.policy_id, cur.c.position == due.c.position))
        .outerjoin(nxt, and_(nxt.c.policy_id == due.c.policy_id, nxt.c.position == cur.c.position + 1))
        .subquery("moved")
    )
    s_ = table_of(DunningState)
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
    await _finish(session, conn, due)
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


async def _finish(session: AsyncSession, conn: Any, due: Table) -> None:
    await conn.run_sync(due.drop)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL enable_seqscan TO DEFAULT"))
        await session.execute(text("SET LOCAL jit TO DEFAULT"))


async def _messages(session: AsyncSession, due: Table, sweep_id: uuid.UUID, now: datetime) -> int:
    ranked = select(
        due.c.debtor_id,
        due.c.policy_id,
        due.c.position,
        func.row_number()
        .over(partition_by=due.c.debtor_id, order_by=(due.c.position.desc(), due.c.invoice_id))
        .label("rank"),
    ).subquery("ranked")
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
    result = await session.execute(insert(table_of(Message)).from_select(QUEUED_COLUMNS, messages))
    return int(getattr(result, "rowcount", 0) or 0)


async def _actions(session: AsyncSession, due: Table, sweep_id: uuid.UUID, now: datetime) -> int:
    stg = aliased(DunningStage)
    m = table_of(Message)
    chosen = (
        select(
            due.c.due_date,
            due.c.invoice_id,
            col(stg.key),
            due.c.debtor_id,
            literal(sweep_id),
            literal(now),
            m.c.id,
        )
        .select_from(due)
        .join(stg, and_(col(stg.policy_id) == due.c.policy_id, col(stg.position) == due.c.position))
        .join(m, and_(m.c.sweep_id == sweep_id, m.c.debtor_id == due.c.debtor_id))
    )
    stmt = (
        upsert_insert(session, table_of(DunningAction))
        .from_select(
            ["due_date", "invoice_id", "stage_key", "debtor_id", "sweep_id", "created_at", "message_id"],
            chosen,
        )
        .on_conflict_do_nothing()
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def _forget_acted(session: AsyncSession, due: Table, sweep_id: uuid.UUID) -> int:
    """Drop from this sweep what an earlier one already did (its (invoice, stage) row exists):
    those invoices do not advance again, and a debtor left with nothing gets no message."""
    a = table_of(DunningAction)
    m = table_of(Message)
    mine = select(a.c.invoice_id).where(a.c.sweep_id == sweep_id)
    await session.execute(delete(due).where(due.c.invoice_id.not_in(mine)))
    await session.execute(
        delete(m).where(
            m.c.sweep_id == sweep_id,
            m.c.debtor_id.not_in(select(a.c.debtor_id).where(a.c.sweep_id == sweep_id)),
        )
    )
    count = select(func.count()).select_from(m).where(m.c.sweep_id == sweep_id)
    return int((await session.execute(count)).scalar_one())


async def _fees(session: AsyncSession, due: Table, today: date, now: datetime) -> int:
    """Fees of every stage crossed, in the invoice's currency, and statutory interest when a stage
    that charges it is crossed: simple interest at the policy's annual rate on the open amount
    (fees and earlier interest excluded) for the days overdue."""
    crossed = aliased(DunningStage)
    stages_crossed = and_(
        col(crossed.policy_id) == due.c.policy_id,
        col(crossed.position) > due.c.from_position,
        col(crossed.position) <= due.c.position,
    )
    fees = (
        select(
            new_uuid(),
            due.c.debtor_id,
            due.c.invoice_id,
            literal(EntryKind.fee.value),
            col(crossed.fee_minor),
            due.c.currency,
            literal(today),
            literal("dunning fee: ") + col(crossed.key),
            literal(SYSTEM.label),
            literal(now),
        )
        .select_from(due)
        .join(
            crossed,
            and_(
                stages_crossed,
                col(crossed.fee_minor).is_not(None),
                col(crossed.fee_currency) == due.c.currency,
            ),
        )
    )
    entries = table_of(LedgerEntry)
    result = await session.execute(insert(entries).from_select(ENTRY_COLUMNS, fees))
    n_fees = int(getattr(result, "rowcount", 0) or 0)

    # sum() is NUMERIC on PostgreSQL: cast, so that the division below stays integer division.
    principal = (
        select(cast(func.coalesce(func.sum(LedgerEntry.amount_minor), 0), BigInteger))
        .where(
            col(LedgerEntry.invoice_id) == due.c.invoice_id,
            col(LedgerEntry.kind).not_in((EntryKind.fee.value, EntryKind.interest.value)),
        )
        .scalar_subquery()
    )
    pol = DunningPolicy
    # Round half up in integer arithmetic: (principal * bp * days + 1825000) // 3650000.
    interest_minor = (
        principal * col(pol.interest_rate_bp) * days_between(literal(today), due.c.due_date) + 1_825_000
    ) // 3_650_000
    interest = (
        select(
            new_uuid(),
            due.c.debtor_id,
            due.c.invoice_id,
            literal(EntryKind.interest.value),
            interest_minor,
            due.c.currency,
            literal(today),
            literal("statutory interest at stage ") + col(crossed.key),
            literal(SYSTEM.label),
            literal(now),
        )
        .select_from(due)
        .join(pol, col(pol.id) == due.c.policy_id)
        .join(crossed, and_(stages_crossed, col(crossed.charge_interest)))
        .where(col(pol.interest_rate_bp) > 0, interest_minor > 0)
    )
    result = await session.execute(insert(entries).from_select(ENTRY_COLUMNS, interest))
    return n_fees + int(getattr(result, "rowcount", 0) or 0)
