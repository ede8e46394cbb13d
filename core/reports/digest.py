"""The daily digest for staff: yesterday's cash, today's promises, what broke, what waits, and ageing.

All figures come from the ledger and the dunning tables; nothing is stored.

- **cash collected**: payments received yesterday (by ``received_on``), per currency.
- **promises due today**: active promises whose date is today.
- **promises broken** and **new disputes**: in the 24 hours before ``now``.
- **batches waiting**: batches pending approval, with their invoice count.
- **ageing**: the open amount of payable invoices by days past due: 0-30 (not yet due included),
  31-60, 61-90 and 90+, per currency.
- **DSO** (days sales outstanding): open receivables / invoiced in the last 90 days * 90, per
  currency; None when nothing was invoiced in that window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.audit import AuditEvent
from core.debtors.models import Debtor
from core.dunning.models import Promise, PromiseStatus
from core.invoices.models import PAYABLE_STATUSES, BatchStatus, Invoice, InvoiceBatch
from core.ledger.models import EntryKind, LedgerEntry, Payment
from core.money import Money

BUCKETS = ("0-30", "31-60", "61-90", "90+")
DSO_DAYS = 90


@dataclass(frozen=True)
class PromiseLine:
    invoice: str
    debtor: str
    amount: Money | None
    on: date


@dataclass
class Digest:
    today: date
    cash_collected: list[Money] = field(default_factory=list)
    promises_due_today: list[PromiseLine] = field(default_factory=list)
    promises_broken: list[PromiseLine] = field(default_factory=list)
    new_disputes: list[tuple[str, str]] = field(default_factory=list)  # (invoice, reason)
    batches_waiting: int = 0
    invoices_waiting: int = 0
    ageing: dict[str, dict[str, Money]] = field(default_factory=dict)  # currency -> bucket -> amount
    dso: dict[str, int | None] = field(default_factory=dict)  # currency -> days


async def build(session: AsyncSession, today: date, now: datetime) -> Digest:
    since = now - timedelta(hours=24)
    out = Digest(today=today)
    out.cash_collected = await _cash(session, today - timedelta(days=1))
    out.promises_due_today = await _promises(
        session, col(Promise.status) == PromiseStatus.active, col(Promise.promised_on) == today
    )
    out.promises_broken = await _promises(
        session,
        col(Promise.status) == PromiseStatus.broken,
        col(Promise.resolved_at) >= since,
        col(Promise.resolved_at) < now,
    )
    out.new_disputes = await _disputes(session, since, now)
    waiting = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(col(InvoiceBatch.count)), 0)).where(
                col(InvoiceBatch.status) == BatchStatus.pending_approval.value
            )
        )
    ).one()
    out.batches_waiting, out.invoices_waiting = int(waiting[0]), int(waiting[1])
    out.ageing = await _ageing(session, today)
    invoiced = await _invoiced(session, today)
    for currency, buckets in out.ageing.items():
        receivable = sum(m.minor for m in buckets.values())
        sales = invoiced.get(currency, 0)
        out.dso[currency] = round(receivable * DSO_DAYS / sales) if sales > 0 else None
    return out


async def _cash(session: AsyncSession, day: date) -> list[Money]:
    stmt = (
        select(col(Payment.currency), func.sum(col(Payment.amount_minor)))
        .where(col(Payment.received_on) == day)
        .group_by(col(Payment.currency))
        .order_by(col(Payment.currency))
    )
    return [Money(int(total), cur) for cur, total in (await session.execute(stmt)).all()]


async def _promises(session: AsyncSession, *where: object) -> list[PromiseLine]:
    stmt = (
        select(
            col(Invoice.external_id),
            col(Debtor.name),
            col(Promise.amount_minor),
            col(Invoice.currency),
            col(Promise.promised_on),
        )
        .join(Invoice, col(Invoice.id) == col(Promise.invoice_id))
        .join(Debtor, col(Debtor.id) == col(Promise.debtor_id))
        .where(*where)  # type: ignore[arg-type]
        .order_by(col(Promise.promised_on), col(Invoice.external_id))
    )
    return [
        PromiseLine(ext, name, Money(int(amount), cur) if amount is not None else None, on)
        for ext, name, amount, cur, on in (await session.execute(stmt)).all()
    ]


async def _disputes(session: AsyncSession, since: datetime, now: datetime) -> list[tuple[str, str]]:
    stmt = (
        select(col(AuditEvent.entity_id), col(AuditEvent.after))
        .where(
            col(AuditEvent.action) == "invoice.disputed",
            col(AuditEvent.at) >= since,
            col(AuditEvent.at) < now,
        )
        .order_by(col(AuditEvent.at))
    )
    return [
        (ext, str((after or {}).get("dispute_reason") or ""))
        for ext, after in (await session.execute(stmt)).all()
    ]


async def _ageing(session: AsyncSession, today: date) -> dict[str, dict[str, Money]]:
    open_per_invoice = (
        select(
            col(LedgerEntry.invoice_id).label("invoice_id"),
            func.sum(col(LedgerEntry.amount_minor)).label("open_minor"),
        )
        .where(col(LedgerEntry.invoice_id).is_not(None))
        .group_by(col(LedgerEntry.invoice_id))
        .subquery()
    )
    due = col(Invoice.due_date)
    bucket = case(
        (due >= today - timedelta(days=30), literal(BUCKETS[0])),
        (due >= today - timedelta(days=60), literal(BUCKETS[1])),
        (due >= today - timedelta(days=90), literal(BUCKETS[2])),
        else_=literal(BUCKETS[3]),
    ).label("bucket")
    stmt = (
        select(col(Invoice.currency), bucket, func.sum(open_per_invoice.c.open_minor))
        .join(open_per_invoice, open_per_invoice.c.invoice_id == col(Invoice.id))
        .where(
            col(Invoice.status).in_([s.value for s in PAYABLE_STATUSES]), open_per_invoice.c.open_minor > 0
        )
        .group_by(col(Invoice.currency), bucket)
    )
    out: dict[str, dict[str, Money]] = {}
    for currency, name, total in (await session.execute(stmt)).all():
        out.setdefault(currency, {b: Money(0, currency) for b in BUCKETS})[name] = Money(int(total), currency)
    return dict(sorted(out.items()))


async def _invoiced(session: AsyncSession, today: date) -> dict[str, int]:
    stmt = (
        select(col(LedgerEntry.currency), func.sum(col(LedgerEntry.amount_minor)))
        .where(
            col(LedgerEntry.kind) == EntryKind.invoice.value,
            col(LedgerEntry.effective_date) > today - timedelta(days=DSO_DAYS),
            col(LedgerEntry.effective_date) <= today,
        )
        .group_by(col(LedgerEntry.currency))
    )
    return {cur: int(total) for cur, total in (await session.execute(stmt)).all()}
