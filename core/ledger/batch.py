"""Many payments at once: the allocation rules of ``allocation`` (``record_payment``'s), set-based.

A ``PaymentBook`` locks a set of debtors (in id order, so two books never deadlock), loads their
invoices with the open amount per currency in two queries, and then allocates payments in memory,
one after the other with ``allocation.allocate``, as ``record_payment`` does: to one invoice when one is named, else to
the debtor's payable invoices oldest due first; what is left becomes credit on the debtor's account.
``flush`` writes every payment, ledger entry, status change, kept promise, event and audit event in
a handful of bulk statements. Callers see the open amounts move as they allocate, so a later
payment in the same batch sees what an earlier one settled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import Actor
from core.base import new_id, table_of, utcnow
from core.bulk import among, chunk_size, chunks, copy_records
from core.debtors.models import Debtor
from core.invoices.models import PAYABLE_STATUSES, Invoice, InvoiceStatus
from core.ledger.allocation import Booked, Settled, allocate, settle
from core.ledger.entries import post
from core.ledger.models import LedgerEntry, Payment

_PAYABLE = frozenset(s.value for s in PAYABLE_STATUSES)
PAYMENT_COLUMNS = (
    "id",
    "debtor_id",
    "amount_minor",
    "currency",
    "method",
    "reference",
    "received_on",
    "created_by",
    "created_at",
)


class NotPayable(Exception):
    """The named invoice cannot take payments (``record_payment`` answers invoice_not_payable)."""

    code = "invoice_not_payable"


@dataclass(eq=False)
class BookInvoice:
    id: uuid.UUID
    external_id: str
    number: str
    debtor_id: uuid.UUID
    currency: str
    status: str
    due_date: date
    open: dict[str, int] = field(default_factory=dict)  # per currency of its entries

    @property
    def payable(self) -> bool:
        return self.status in _PAYABLE


@dataclass
class BookPayment:
    id: uuid.UUID
    debtor_id: uuid.UUID
    amount_minor: int
    currency: str
    reference: str | None
    received_on: date
    shares: list[tuple[BookInvoice, int]] = field(default_factory=list)  # (invoice, amount taken)
    rest: int = 0  # credit on the debtor's account


@dataclass
class PaymentBook:
    invoices: dict[uuid.UUID, BookInvoice] = field(default_factory=dict)
    by_debtor: dict[uuid.UUID, list[BookInvoice]] = field(default_factory=dict)
    by_number: dict[str, BookInvoice] = field(default_factory=dict)
    debtor_external_ids: dict[uuid.UUID, str] = field(default_factory=dict)
    payments: list[BookPayment] = field(default_factory=list)
    settled: list[Settled] = field(default_factory=list)

    def payable(self, debtor_id: uuid.UUID, currency: str) -> list[BookInvoice]:
        """As ``repository.payable_invoices``: payable, something open in the currency, oldest due first."""
        found = [i for i in self.by_debtor.get(debtor_id, ()) if i.payable and i.open.get(currency, 0) > 0]
        return sorted(found, key=lambda i: (i.due_date, i.number))

    def owes_other_currency(self, debtor_id: uuid.UUID, currency: str) -> bool:
        return any(i.payable and i.currency != currency for i in self.by_debtor.get(debtor_id, ()))

    def pay(
        self,
        *,
        debtor_id: uuid.UUID,
        invoice_id: uuid.UUID | None,
        amount_minor: int,
        currency: str,
        received_on: date,
        reference: str | None,
    ) -> BookPayment:
        """Allocate one payment in memory; raises NotPayable like ``record_payment`` refuses."""
        candidates = self.payable(debtor_id, currency)
        if invoice_id is not None:
            invoice = self.invoices[invoice_id]
            if invoice.status not in _PAYABLE and invoice.status != InvoiceStatus.paid:
                raise NotPayable(invoice.status)
            candidates = [c for c in candidates if c.id == invoice_id]
        payment = BookPayment(new_id(), debtor_id, amount_minor, currency, reference, received_on)
        shares, rest = allocate(amount_minor, ((c, c.open.get(currency, 0)) for c in candidates))
        for share in shares:
            cand = share.invoice
            cand.open[currency] -= share.take
            if share.settles:
                self.settled.append(Settled(cand.id, cand.external_id, cand.status, payment.id))
                cand.status = InvoiceStatus.paid.value
            payment.shares.append((cand, share.take))
        payment.rest = rest
        self.payments.append(payment)
        return payment


async def open_book(session: AsyncSession, debtor_ids: Iterable[uuid.UUID]) -> PaymentBook:
    """Lock the debtors (id order) and load all their invoices with open amounts per currency."""
    ids = sorted(set(debtor_ids))
    book = PaymentBook()
    size = chunk_size(session)
    for part in chunks(ids, size):
        stmt = select(col(Debtor.id), col(Debtor.external_id)).where(among(session, col(Debtor.id), part))
        rows = await session.execute(stmt.order_by(col(Debtor.id)).with_for_update())
        book.debtor_external_ids.update({i: e for i, e in rows.all()})
    for part in chunks(ids, size):
        invoices = select(
            col(Invoice.id),
            col(Invoice.external_id),
            col(Invoice.number),
            col(Invoice.debtor_id),
            col(Invoice.currency),
            col(Invoice.status),
            col(Invoice.due_date),
        ).where(among(session, col(Invoice.debtor_id), part))
        for i, ext, number, debtor, currency, status, due in (await session.execute(invoices)).all():
            inv = BookInvoice(i, ext, number, debtor, currency, status, due)
            book.invoices[inv.id] = inv
            book.by_debtor.setdefault(inv.debtor_id, []).append(inv)
            book.by_number[inv.number] = inv
        sums = (
            select(
                col(LedgerEntry.invoice_id),
                col(LedgerEntry.currency),
                func.sum(col(LedgerEntry.amount_minor)),
            )
            .where(among(session, col(LedgerEntry.debtor_id), part), col(LedgerEntry.invoice_id).is_not(None))
            .group_by(col(LedgerEntry.invoice_id), col(LedgerEntry.currency))
        )
        for invoice_id, currency, total in (await session.execute(sums)).all():
            if invoice_id in book.invoices:
                book.invoices[invoice_id].open[currency] = int(total)
    return book


async def flush(session: AsyncSession, book: PaymentBook, *, actor: Actor, method: str) -> None:
    """Write what ``pay`` allocated, as ``record_payment`` would have, in bulk."""
    if not book.payments:
        return
    now = utcnow()
    records = [
        (p.id, p.debtor_id, p.amount_minor, p.currency, method, p.reference, p.received_on, actor.label, now)
        for p in book.payments
    ]
    await copy_records(session, table_of(Payment), PAYMENT_COLUMNS, records)
    booked = [
        Booked(
            payment_id=p.id,
            debtor_id=p.debtor_id,
            debtor=book.debtor_external_ids.get(p.debtor_id),
            amount_minor=p.amount_minor,
            currency=p.currency,
            method=method,
            reference=p.reference,
            received_on=p.received_on,
            created_by=actor.label,
            shares=[(inv.id, inv.external_id, take) for inv, take in p.shares],
            rest=p.rest,
        )
        for p in book.payments
    ]
    await post(session, [row for b in booked for row in b.entries()])
    await audit.record_many(
        session, actor, "payment.recorded", "payment", ((b.payment_id, None, b.audit()) for b in booked)
    )
    await settle(session, book.settled, actor=actor, now=now)
