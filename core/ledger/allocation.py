"""How a payment is allocated and what it writes: one set of rules for every way a payment arrives.

``service.record_payment`` (one payment through the API), ``batch`` (bank statements, many payments
of many debtors at once) and ``psp_batch`` (PSP webhooks, one payment per debtor) each find the
candidate invoices their own way, then share what follows:

* ``allocate``: oldest due first (the caller orders the candidates), each invoice takes what is
  open on it until the money runs out; what is left is credit on the debtor's account;
* ``Booked``: one allocated payment, its ledger entries (one per invoice it went to and one for
  the credit) and what the audit trail says of it;
* ``settle``: the invoices it paid in full become paid (their dunning stops and their promises are
  kept), with an ``invoice.paid`` event and an audit event each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.dunning.holds import keep_promises
from core.events.models import EventType
from core.events.service import emit_many
from core.invoices import repository as invoice_repo
from core.invoices.models import InvoiceStatus
from core.ledger.entries import entry_row
from core.ledger.models import EntryKind
from core.money import Money

CREDIT_DESCRIPTION = "unallocated: credit on the debtor's account"  # the entry of money no invoice took

K = TypeVar("K")


@dataclass(frozen=True)
class Share(Generic[K]):
    """What one candidate invoice takes of a payment; ``settles``: all that was open on it."""

    invoice: K
    take: int
    settles: bool


def allocate(amount_minor: int, candidates: Iterable[tuple[K, int]]) -> tuple[list[Share[K]], int]:
    """Spread ``amount_minor`` over (invoice, open amount) in the order given; (the shares, the rest)."""
    shares: list[Share[K]] = []
    left = amount_minor
    for invoice, open_minor in candidates:
        if left == 0:
            break
        take = min(left, open_minor)
        left -= take
        shares.append(Share(invoice, take, take == open_minor))
    return shares, left


@dataclass(frozen=True)
class Booked:
    """One allocated payment: what it writes to the ledger (``entries``) and to the audit trail
    (``audit``), from one set of facts."""

    payment_id: uuid.UUID
    debtor_id: uuid.UUID
    debtor: str | None  # the debtor's external id, for the audit trail
    amount_minor: int
    currency: str
    method: str
    reference: str | None
    received_on: date
    created_by: str
    shares: Sequence[tuple[uuid.UUID, str, int]]  # (invoice id, invoice external id, amount taken)
    rest: int  # credit on the debtor's account

    def entries(self) -> list[dict[str, Any]]:
        """One entry per invoice the payment went to, then the rest as credit."""
        common: dict[str, Any] = {
            "kind": EntryKind.agency_payment if self.method == "agency" else EntryKind.payment,
            "debtor_id": self.debtor_id,
            "currency": self.currency,
            "effective_date": self.received_on,
            "created_by": self.created_by,
            "payment_id": self.payment_id,
        }
        rows = [
            entry_row(amount_minor=take, invoice_id=invoice_id, description=self.reference, **common)
            for invoice_id, _, take in self.shares
        ]
        if self.rest:
            rows.append(entry_row(amount_minor=self.rest, description=CREDIT_DESCRIPTION, **common))
        return rows

    def audit(self) -> dict[str, Any]:
        """The ``payment.recorded`` audit record."""
        allocations: list[tuple[str | None, int]] = [
            (external_id, take) for _, external_id, take in self.shares
        ]
        if self.rest:
            allocations.append((None, self.rest))
        return {
            "debtor": self.debtor,
            "amount": Money(self.amount_minor, self.currency).decimal_str,
            "currency": self.currency,
            "method": self.method,
            "reference": self.reference,
            "allocations": [
                {"invoice": invoice, "amount": Money(take, self.currency).decimal_str}
                for invoice, take in allocations
            ],
        }


@dataclass(frozen=True)
class Settled:
    """An invoice a payment paid in full."""

    invoice_id: uuid.UUID
    external_id: str
    status_before: str
    payment_id: uuid.UUID


async def settle(session: AsyncSession, settled: Sequence[Settled], *, actor: Actor, now: datetime) -> None:
    """The invoices become paid (dunning follows), their promises are kept, and each gets an
    ``invoice.paid`` event and audit event."""
    if not settled:
        return
    ids = [s.invoice_id for s in settled]
    await invoice_repo.set_status(session, ids, InvoiceStatus.paid, now)
    await keep_promises(session, ids)
    await emit_many(
        session,
        EventType.invoice_paid,
        ((s.external_id, {"invoice": s.external_id, "payment_id": str(s.payment_id)}) for s in settled),
    )
    await audit.record_many(
        session,
        actor,
        "invoice.paid",
        "invoice",
        (
            (
                s.external_id,
                {"status": s.status_before},
                {"status": InvoiceStatus.paid.value, "payment_id": str(s.payment_id)},
            )
            for s in settled
        ),
    )
