"""Outbox queries: claiming due messages, loading what one delivery needs, guarded status changes.

A claimed message is ``sending`` and its ``updated_at`` is the claim's time. That value is the
claim's token: every later write is guarded by ``status = 'sending' AND updated_at = token``, so a
worker whose lease ran out (and whose message another worker took over) changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.debtors.models import ContactPoint, Debtor
from core.dunning.models import DunningAction, DunningPolicy, DunningStage, DunningState
from core.invoices.models import PAYABLE_STATUSES, Invoice
from core.ledger.models import LedgerEntry
from core.messaging.models import Message, MessageStatus
from core.plans.models import PLAN_MESSAGE_KINDS

LEASE = timedelta(minutes=5)  # a message ``sending`` for longer belonged to a worker that died
DELIVERED = (MessageStatus.sent.value, MessageStatus.delivered.value, MessageStatus.read.value)


async def claim(
    session: AsyncSession, now: datetime, limit: int, *, lease: timedelta = LEASE
) -> list[Message]:
    """Take up to ``limit`` due messages and mark them ``sending``; the caller commits at once.

    Due: ``queued`` with ``next_attempt_at`` now or earlier (or unset), and ``sending`` whose lease
    ran out. Rows another worker holds are skipped (``FOR UPDATE SKIP LOCKED``; SQLite has no row
    locks, but its write transactions run one at a time). Two statements, expired leases first.
    """
    found: list[Message] = []
    stale = now - lease
    phases = (
        (
            and_(col(Message.status) == MessageStatus.sending.value, col(Message.updated_at) < stale),
            col(Message.updated_at),
        ),
        (
            and_(
                col(Message.status) == MessageStatus.queued.value,
                or_(col(Message.next_attempt_at).is_(None), col(Message.next_attempt_at) <= now),
            ),
            col(Message.next_attempt_at),
        ),
    )
    for where, order in phases:
        room = limit - len(found)
        if room <= 0:
            break
        pick = (
            select(col(Message.id))
            .where(where)
            .order_by(order)
            .limit(room)
            .with_for_update(skip_locked=True)
            .cte("pick")  # a locking CTE is evaluated once, never folded into the UPDATE
        )
        stmt = (
            update(Message)
            .where(col(Message.id) == pick.c.id)
            .values(status=MessageStatus.sending.value, updated_at=now)
            .returning(Message)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        found.extend((await session.execute(stmt)).scalars().all())
    return found


async def release(session: AsyncSession, claims: Iterable[tuple[uuid.UUID, datetime]]) -> int:
    """Hand claimed messages back untouched (queued, same due time), e.g. when a run aborts."""
    n = 0
    for message_id, token in claims:
        n += await transition(session, message_id, token, status=MessageStatus.queued.value)
    return n


async def transition(session: AsyncSession, message_id: uuid.UUID, token: datetime, **values: Any) -> int:
    """Apply ``values`` to a message this worker still holds; 0 when it no longer does."""
    stmt = (
        update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status) == MessageStatus.sending.value,
            col(Message.updated_at) == token,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class DueInvoice:
    """One invoice a message is about, still open, with what its stage says."""

    id: uuid.UUID
    number: str
    due_date: date
    currency: str
    open_minor: int
    stage_key: str
    policy_id: uuid.UUID
    fee_minor: int | None
    fee_currency: str | None
    charge_interest: bool

    @classmethod
    def of(cls, r: Any) -> DueInvoice:
        """From a result row with these fields as its column labels."""
        return cls(
            id=r.id,
            number=r.number,
            due_date=r.due_date,
            currency=r.currency,
            open_minor=int(r.open_minor),
            stage_key=r.stage_key,
            policy_id=r.policy_id,
            fee_minor=r.fee_minor,
            fee_currency=r.fee_currency,
            charge_interest=bool(r.charge_interest),
        )


@dataclass
class Job:
    """Everything one delivery of one message needs, read in one short session."""

    message: Message
    debtor: Debtor
    points: list[ContactPoint]
    invoices: list[DueInvoice]
    policies: list[DunningPolicy]
    recent_sent: list[datetime] = field(
        default_factory=list
    )  # the debtor's sends in the window, oldest first
    extra: dict[str, Any] = field(default_factory=dict)  # template context a message kind adds


async def load_job(
    session: AsyncSession, message_id: uuid.UUID, token: datetime, *, since: datetime
) -> Job | None:
    """The message (None when this worker no longer holds it), its debtor, contact points, open
    invoices, their policies and the debtor's sends since ``since``."""
    message = (
        await session.execute(
            select(Message)
            .where(
                col(Message.id) == message_id,
                col(Message.status) == MessageStatus.sending.value,
                col(Message.updated_at) == token,
            )
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if message is None:
        return None
    debtor = await session.get(Debtor, message.debtor_id)
    assert debtor is not None, "foreign key guarantees the debtor"
    points = list(
        (
            await session.scalars(
                select(ContactPoint)
                .where(col(ContactPoint.debtor_id) == debtor.id)
                .order_by(col(ContactPoint.verified).desc(), col(ContactPoint.created_at).desc())
            )
        ).all()
    )
    extra: dict[str, Any] = {}
    if message.kind in PLAN_MESSAGE_KINDS:  # payment plans: invoices and context from the plan
        from core.plans.messages import load as load_plan_message

        invoices, extra = await load_plan_message(session, message)
    else:
        invoices = await open_invoices(session, message)
    policy_ids = list(dict.fromkeys(i.policy_id for i in invoices))
    policies: list[DunningPolicy] = []
    if policy_ids:
        found = await session.scalars(select(DunningPolicy).where(col(DunningPolicy.id).in_(policy_ids)))
        by_id = {p.id: p for p in found.all()}
        policies = [by_id[p] for p in policy_ids if p in by_id]
    recent = await sent_since(session, debtor.id, since)
    return Job(message, debtor, points, invoices, policies, recent, extra)


async def open_invoices(session: AsyncSession, message: Message) -> list[DueInvoice]:
    """The message's invoices (through ``dunning_actions.message_id``) that still have money open."""
    a, inv, st, stg = DunningAction, Invoice, DunningState, DunningStage
    mine = col(a.message_id) == message.id
    if message.sweep_id is not None:  # reach the actions through the index on sweep_id
        mine = and_(col(a.sweep_id) == message.sweep_id, col(a.debtor_id) == message.debtor_id, mine)
    ids = select(col(a.invoice_id)).where(mine)
    sums = (
        select(
            col(LedgerEntry.invoice_id).label("invoice_id"),
            func.sum(col(LedgerEntry.amount_minor)).label("open_minor"),
        )
        .where(col(LedgerEntry.invoice_id).in_(ids))
        .group_by(col(LedgerEntry.invoice_id))
        .subquery("sums")
    )
    stmt = (
        select(
            col(inv.id),
            col(inv.number),
            col(inv.due_date),
            col(inv.currency),
            sums.c.open_minor,
            col(a.stage_key),
            col(st.policy_id),
            col(stg.fee_minor),
            col(stg.fee_currency),
            col(stg.charge_interest),
        )
        .select_from(a)
        .join(inv, col(inv.id) == col(a.invoice_id))
        .join(st, col(st.invoice_id) == col(inv.id))
        .join(sums, sums.c.invoice_id == col(inv.id))
        .outerjoin(stg, and_(col(stg.policy_id) == col(st.policy_id), col(stg.key) == col(a.stage_key)))
        .where(mine, col(inv.status).in_([s.value for s in PAYABLE_STATUSES]), sums.c.open_minor > 0)
        .order_by(col(inv.due_date), col(inv.number))
    )
    return [DueInvoice.of(r) for r in (await session.execute(stmt)).all()]


async def sent_since(session: AsyncSession, debtor_id: uuid.UUID, since: datetime) -> list[datetime]:
    """When the debtor's messages went out since ``since``, on any channel, oldest first."""
    stmt = (
        select(col(Message.sent_at))
        .where(
            col(Message.debtor_id) == debtor_id,
            col(Message.sent_at).is_not(None),
            col(Message.sent_at) > since,
            col(Message.status).in_(DELIVERED),
        )
        .order_by(col(Message.sent_at))
    )
    return [t for t in (await session.execute(stmt)).scalars().all() if t is not None]


async def mark_points(session: AsyncSession, updates: Sequence[tuple[uuid.UUID, str]], now: datetime) -> None:
    """Record each contact point's latest delivery outcome (sent, failed, bounced, blocked)."""
    for point_id, status in updates:
        await session.execute(
            update(ContactPoint)
            .where(col(ContactPoint.id) == point_id)
            .values(last_delivery_status=status, last_delivery_at=now)
            .execution_options(synchronize_session=False)
        )


async def by_provider_id(session: AsyncSession, channel: str, provider_id: str) -> Message | None:
    stmt = (
        select(Message)
        .where(col(Message.channel) == channel, col(Message.provider_id) == provider_id)
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def move_status(session: AsyncSession, message_id: uuid.UUID, from_status: str, **values: Any) -> bool:
    """Change a message only if it still has ``from_status`` (a compare-and-set)."""
    stmt = (
        update(Message)
        .where(col(Message.id) == message_id, col(Message.status) == from_status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
