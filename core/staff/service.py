"""What staff look at: a debtor found by name or id, a debtor's overview, a batch waiting for approval.

Pure reads; the chat edge (bots/slack) renders them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from rapidfuzz import fuzz, process, utils
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.debtors.models import ContactKind, ContactPoint, Debtor
from core.dunning.models import DunningState, Promise, PromiseStatus
from core.errors import NotFound
from core.invoices import service as invoices
from core.invoices.models import BatchStatus, Invoice, InvoiceBatch
from core.ledger import service as ledger
from core.money import Money

FUZZY_CUTOFF = 75.0
MAX_HITS = 8
FUZZY_SCAN = 200_000  # debtors compared by name at most; beyond that, narrow the query


@dataclass(frozen=True)
class DebtorHit:
    external_id: str
    name: str
    score: float


async def find_debtors(session: AsyncSession, query: str) -> list[DebtorHit]:
    """Debtors matching ``query``: its external id, its exact name, or names close to it.

    One hit means a match; several mean the caller offers a pick list; none means not found.
    """
    q = query.strip()
    if not q:
        return []
    exact = (
        await session.execute(
            select(col(Debtor.external_id), col(Debtor.name)).where(
                func.lower(col(Debtor.external_id)) == q.lower()
            )
        )
    ).first()
    if exact is not None:
        return [DebtorHit(exact.external_id, exact.name, 100.0)]
    named = (
        await session.execute(
            select(col(Debtor.external_id), col(Debtor.name))
            .where(func.lower(col(Debtor.name)) == q.lower())
            .limit(MAX_HITS)
        )
    ).all()
    if named:
        return [DebtorHit(r.external_id, r.name, 100.0) for r in named]
    rows = (
        await session.execute(
            select(col(Debtor.external_id), col(Debtor.name)).order_by(col(Debtor.name)).limit(FUZZY_SCAN)
        )
    ).all()
    choices = {r.external_id: r.name for r in rows}
    found = process.extract(
        q,
        choices,
        scorer=fuzz.WRatio,
        processor=utils.default_process,
        score_cutoff=FUZZY_CUTOFF,
        limit=MAX_HITS,
    )
    hits = [DebtorHit(key, name, float(score)) for name, score, key in found]
    # A clear winner (far ahead of the rest) is a match, not a question.
    if len(hits) > 1 and hits[0].score >= 95 and hits[1].score < hits[0].score - 10:
        return hits[:1]
    return hits


@dataclass
class DebtorOverview:
    debtor: Debtor
    balance: ledger.DebtorBalance
    holds: dict[str, DunningState]  # by invoice external id
    promises: list[tuple[str, Promise]]  # (invoice external id, active promise)
    disputes: list[tuple[str, str]]  # (invoice external id, reason)


async def debtor_overview(session: AsyncSession, external_id: str, today: date) -> DebtorOverview:
    debtor = (await session.scalars(select(Debtor).where(col(Debtor.external_id) == external_id))).first()
    if debtor is None:
        raise NotFound(f"debtor {external_id!r} does not exist", "debtor_not_found")
    balance = await ledger.debtor_balance(session, debtor.id, today)
    states = (
        await session.execute(
            select(col(Invoice.external_id), DunningState)
            .join(DunningState, col(DunningState.invoice_id) == col(Invoice.id))
            .where(col(Invoice.debtor_id) == debtor.id)  # the states through their invoices' index
        )
    ).all()
    holds = {ext: state for ext, state in states}
    promises = (
        await session.execute(
            select(col(Invoice.external_id), Promise)
            .join(Promise, col(Promise.invoice_id) == col(Invoice.id))
            .where(col(Promise.debtor_id) == debtor.id, col(Promise.status) == PromiseStatus.active)
            .order_by(col(Promise.promised_on))
        )
    ).all()
    disputes = [(ext, s.dispute_reason or "") for ext, s in holds.items() if s.disputed]
    return DebtorOverview(
        debtor=debtor,
        balance=balance,
        holds=holds,
        promises=[(ext, p) for ext, p in promises],
        disputes=sorted(disputes),
    )


@dataclass
class BatchSummary:
    id: uuid.UUID
    status: str
    source: str
    count: int
    totals: list[Money]
    channel_mix: dict[str, int]
    earliest_due: date | None
    samples: list[tuple[str, str, Money, date]]  # (number, debtor name, amount, due date)
    created_by: str
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


_CHANNEL_OF_KIND = {
    ContactKind.email.value: "email",
    ContactKind.phone.value: "sms",
    ContactKind.telegram.value: "telegram",
    ContactKind.whatsapp.value: "whatsapp",
}


def first_channel(order: list[str], kinds: set[str]) -> str:
    """The channel an invoice goes out on first: the first one in the debtor's order they can be reached by."""
    reachable = {_CHANNEL_OF_KIND[k] for k in kinds if k in _CHANNEL_OF_KIND}
    if ContactKind.phone.value in kinds:
        reachable.add("whatsapp")  # a phone number may also be on WhatsApp
    return next((c for c in order if c in reachable), "none")


async def batch_summary(session: AsyncSession, batch_id: uuid.UUID, samples: int = 3) -> BatchSummary:
    batch = await invoices.get_batch(session, batch_id)
    per_debtor = (
        await session.execute(
            select(col(Invoice.debtor_id), func.count())
            .where(col(Invoice.batch_id) == batch_id)
            .group_by(col(Invoice.debtor_id))
        )
    ).all()
    debtor_ids = [r[0] for r in per_debtor]
    orders = dict(
        (
            await session.execute(
                select(col(Debtor.id), col(Debtor.channel_order)).where(col(Debtor.id).in_(debtor_ids))
            )
        ).all()
    )
    kinds: dict[uuid.UUID, set[str]] = {}
    for debtor_id, kind in (
        await session.execute(
            select(col(ContactPoint.debtor_id), col(ContactPoint.kind)).where(
                col(ContactPoint.debtor_id).in_(debtor_ids), ~col(ContactPoint.opted_out)
            )
        )
    ).all():
        kinds.setdefault(debtor_id, set()).add(kind)
    mix: Counter[str] = Counter()
    for debtor_id, n in per_debtor:
        mix[first_channel(list(orders.get(debtor_id) or []), kinds.get(debtor_id, set()))] += int(n)
    earliest = (
        await session.execute(
            select(func.min(col(Invoice.due_date))).where(col(Invoice.batch_id) == batch_id)
        )
    ).scalar_one()
    sample_rows = (
        await session.execute(
            select(
                col(Invoice.number),
                col(Debtor.name),
                col(Invoice.amount_minor),
                col(Invoice.currency),
                col(Invoice.due_date),
            )
            .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
            .where(col(Invoice.batch_id) == batch_id)
            .order_by(col(Invoice.due_date), col(Invoice.number))
            .limit(samples)
        )
    ).all()
    return BatchSummary(
        id=batch.id,
        status=batch.status,
        source=batch.source,
        count=batch.count,
        totals=[Money(int(v), cur) for cur, v in sorted(batch.totals.items())],
        channel_mix=dict(sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))),
        earliest_due=earliest,
        samples=[(r.number, r.name, Money(int(r.amount_minor), r.currency), r.due_date) for r in sample_rows],
        created_by=batch.created_by,
        created_at=batch.created_at,
        decided_by=batch.decided_by,
        decided_at=batch.decided_at,
        decision_note=batch.decision_note,
    )


async def pending_batches(session: AsyncSession, limit: int = 20) -> list[InvoiceBatch]:
    stmt = (
        select(InvoiceBatch)
        .where(col(InvoiceBatch.status) == BatchStatus.pending_approval.value)
        .order_by(col(InvoiceBatch.created_at))
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())
