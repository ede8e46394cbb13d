"""Queries for PSP payments, webhook events and refund requests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from core.base import table_of
from core.bulk import among, insert_ignore, upsert_insert
from core.ledger.models import LedgerEntry
from core.payments.models import PspEvent, PspPayment, PspPaymentInvoice, RefundRequest, RefundStatus


async def latest_for_scope(session: AsyncSession, scope: str) -> PspPayment | None:
    stmt = (
        select(PspPayment)
        .where(col(PspPayment.scope) == scope)
        .order_by(col(PspPayment.created_at).desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_for_scope(session: AsyncSession, scope: str) -> int:
    stmt = select(func.count()).select_from(PspPayment).where(col(PspPayment.scope) == scope)
    return int((await session.execute(stmt)).scalar_one())


async def by_provider_id(
    session: AsyncSession, provider_id: str, *, for_update: bool = False
) -> PspPayment | None:
    stmt = select(PspPayment).where(col(PspPayment.provider_id) == provider_id)
    if for_update:
        stmt = stmt.with_for_update()
    stmt = stmt.execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get(session: AsyncSession, psp_id: uuid.UUID, *, for_update: bool = False) -> PspPayment | None:
    stmt = select(PspPayment).where(col(PspPayment.id) == psp_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()


async def link_invoices(session: AsyncSession, psp_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID]) -> None:
    await insert_ignore(
        session,
        PspPaymentInvoice.__table__,  # type: ignore[attr-defined]
        [{"psp_payment_id": psp_id, "invoice_id": i} for i in invoice_ids],
    )


async def covered_invoices(session: AsyncSession, psp_id: uuid.UUID) -> list[uuid.UUID]:
    stmt = select(col(PspPaymentInvoice.invoice_id)).where(col(PspPaymentInvoice.psp_payment_id) == psp_id)
    return list((await session.execute(stmt)).scalars().all())


async def allocations(session: AsyncSession, ledger_payment_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    """(invoice id, amount) the ledger payment was allocated to, oldest entry first."""
    stmt = (
        select(col(LedgerEntry.invoice_id), func.sum(col(LedgerEntry.amount_minor)))
        .where(col(LedgerEntry.payment_id) == ledger_payment_id, col(LedgerEntry.invoice_id).is_not(None))
        .group_by(col(LedgerEntry.invoice_id))
    )
    rows = (await session.execute(stmt)).all()
    return [(r[0], -int(r[1])) for r in rows if r[0] is not None and int(r[1]) < 0]


# --------------------------------------------------------------------------- events

LEASE = timedelta(minutes=5)  # a claim older than this belonged to a worker that died


async def add_event(
    session: AsyncSession | AsyncConnection, provider: str, resource_id: str, now: datetime
) -> uuid.UUID:
    """Store a webhook call unless one for the payment waits already (one statement); the id
    it was offered under (the waiting event's id may differ: ``store_event`` answers that)."""
    new_id = uuid.uuid4()
    stmt = upsert_insert(session, PspEvent.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
    row = {"id": new_id, "provider": provider, "resource_id": resource_id, "received_at": now, "attempts": 0}
    await session.execute(stmt, row)
    return new_id


async def store_event(session: AsyncSession, provider: str, resource_id: str, now: datetime) -> uuid.UUID:
    """Store a webhook call; at most one waiting event per payment. Answers the waiting event's id."""
    new_id = await add_event(session, provider, resource_id, now)
    stmt = select(col(PspEvent.id)).where(
        col(PspEvent.provider) == provider,
        col(PspEvent.resource_id) == resource_id,
        col(PspEvent.claimed_at).is_(None),
        col(PspEvent.processed_at).is_(None),
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    return found or new_id  # None only when a worker claimed it in between: ours was the one


async def claim_event(session: AsyncSession, event_id: uuid.UUID, now: datetime) -> PspEvent | None:
    """Take an unprocessed event whose claim is free or stale; None when another worker has it."""
    stmt = (
        update(PspEvent)
        .where(
            col(PspEvent.id) == event_id,
            col(PspEvent.processed_at).is_(None),
            or_(col(PspEvent.claimed_at).is_(None), col(PspEvent.claimed_at) < now - LEASE),
        )
        .values(claimed_at=now, attempts=col(PspEvent.attempts) + 1)
        .returning(PspEvent)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def finish_event(
    session: AsyncSession, event_id: uuid.UUID, now: datetime, outcome: str, error: str | None = None
) -> None:
    await session.execute(
        update(PspEvent)
        .where(col(PspEvent.id) == event_id)
        .values(processed_at=now, outcome=outcome[:64], error=error)
        .execution_options(synchronize_session=False)
    )


async def release_event(session: AsyncSession, event_id: uuid.UUID, error: str) -> None:
    """Give a claimed event back (the PSP was unreachable): it waits for the next try."""
    await session.execute(
        update(PspEvent)
        .where(col(PspEvent.id) == event_id)
        .values(claimed_at=None, error=error)
        .execution_options(synchronize_session=False)
    )


async def unprocessed_events(
    session: AsyncSession, now: datetime, *, older_than: timedelta, limit: int
) -> list[uuid.UUID]:
    """Events nobody finished: never claimed for ``older_than`` (the enqueue was lost), or whose
    claim went stale (the worker died)."""
    stmt = (
        select(col(PspEvent.id))
        .where(
            col(PspEvent.processed_at).is_(None),
            or_(
                and_(col(PspEvent.claimed_at).is_(None), col(PspEvent.received_at) < now - older_than),
                col(PspEvent.claimed_at) < now - LEASE,
            ),
        )
        .order_by(col(PspEvent.received_at))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())


class Claimed(NamedTuple):
    id: uuid.UUID
    resource_id: str


async def claim_events(session: AsyncSession, now: datetime, *, limit: int) -> list[Claimed]:
    """Take up to ``limit`` unprocessed events whose claim is free or stale, oldest first. Rows
    another drainer holds are skipped (FOR UPDATE SKIP LOCKED; SQLite serialises writers).
    Core statements: the drain needs two columns, not ORM objects."""
    t = table_of(PspEvent)
    pick = (
        select(t.c.id)
        .where(t.c.processed_at.is_(None), or_(t.c.claimed_at.is_(None), t.c.claimed_at < now - LEASE))
        .order_by(t.c.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        t.update()
        .where(t.c.id.in_(pick.scalar_subquery()))
        .values(claimed_at=now, attempts=t.c.attempts + 1)
        .returning(t.c.id, t.c.resource_id)
    )
    return [Claimed(*row) for row in (await session.execute(stmt)).all()]


_FINISH = (
    table_of(PspEvent)
    .update()
    .where(table_of(PspEvent).c.id == bindparam("event_id"))
    .values(processed_at=bindparam("done_at"), outcome=bindparam("result"), error=bindparam("reason"))
)


async def finish_events(
    session: AsyncSession, now: datetime, outcomes: Sequence[tuple[uuid.UUID, str, str | None]]
) -> None:
    """Close events: (event id, outcome, error), in one executemany."""
    if outcomes:
        await session.execute(
            _FINISH,
            [
                {"event_id": eid, "done_at": now, "result": outcome[:64], "reason": error}
                for eid, outcome, error in outcomes
            ],
        )


POSTING_COLUMNS = (
    "id",
    "provider",
    "provider_id",
    "debtor_id",
    "status",
    "amount_minor",
    "currency",
    "ledger_payment_id",
    "refunded_minor",
    "charged_back_minor",
)


async def lock_by_provider_ids(session: AsyncSession, provider_ids: Sequence[str]) -> dict[str, Any]:
    """The PSP payments with these ids (``POSTING_COLUMNS``), row-locked in a fixed order (no
    deadlock between drainers)."""
    t = table_of(PspPayment)
    stmt = (
        select(*(t.c[name] for name in POSTING_COLUMNS))
        .where(among(session, t.c.provider_id, sorted(set(provider_ids))))
        .order_by(t.c.provider_id)
        .with_for_update()
    )
    return {row.provider_id: row for row in (await session.execute(stmt)).all()}


async def covered_by(session: AsyncSession, psp_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """psp payment id → the invoices it covers."""
    out: dict[uuid.UUID, list[uuid.UUID]] = {p: [] for p in psp_ids}
    stmt = select(col(PspPaymentInvoice.psp_payment_id), col(PspPaymentInvoice.invoice_id)).where(
        among(session, col(PspPaymentInvoice.psp_payment_id), list(psp_ids))
    )
    for psp_id, invoice_id in (await session.execute(stmt)).all():
        out[psp_id].append(invoice_id)
    return out


# --------------------------------------------------------------------------- refunds

LIVE_REFUNDS = (RefundStatus.requested.value, RefundStatus.approved.value, RefundStatus.executed.value)


async def refund_usage(
    session: AsyncSession, *, since: datetime, currency: str, requested_by: str | None = None
) -> tuple[int, int]:
    """(count, total in ``currency``) of live refunds since ``since``, overall or by one requester."""
    where = [col(RefundRequest.created_at) >= since, col(RefundRequest.status).in_(LIVE_REFUNDS)]
    if requested_by is not None:
        where.append(col(RefundRequest.requested_by) == requested_by)
    count = select(func.count()).select_from(RefundRequest).where(*where)
    total = select(func.coalesce(func.sum(col(RefundRequest.amount_minor)), 0)).where(
        *where, col(RefundRequest.currency) == currency
    )
    return int((await session.execute(count)).scalar_one()), int((await session.execute(total)).scalar_one())


async def reserved_refunds(session: AsyncSession, psp_id: uuid.UUID) -> int:
    """What refund requests not yet executed hold of a payment's refundable amount."""
    stmt = select(func.coalesce(func.sum(col(RefundRequest.amount_minor)), 0)).where(
        col(RefundRequest.psp_payment_id) == psp_id,
        col(RefundRequest.status).in_((RefundStatus.requested.value, RefundStatus.approved.value)),
    )
    return int((await session.execute(stmt)).scalar_one())


async def in_flight_refunds(session: AsyncSession, psp_id: uuid.UUID) -> int:
    """Approved refunds not yet recorded as executed: the PSP may hold them already (an answer
    that got lost), so a PSP report of refunds does not post them; their execution will."""
    stmt = select(func.coalesce(func.sum(col(RefundRequest.amount_minor)), 0)).where(
        col(RefundRequest.psp_payment_id) == psp_id,
        col(RefundRequest.status) == RefundStatus.approved.value,
    )
    return int((await session.execute(stmt)).scalar_one())


async def get_refund(
    session: AsyncSession, refund_id: uuid.UUID, *, for_update: bool = False
) -> RefundRequest | None:
    stmt = select(RefundRequest).where(col(RefundRequest.id) == refund_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()


async def approved_refunds(session: AsyncSession, limit: int = 50) -> list[uuid.UUID]:
    stmt = (
        select(col(RefundRequest.id))
        .where(col(RefundRequest.status) == RefundStatus.approved.value)
        .order_by(col(RefundRequest.created_at))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())
