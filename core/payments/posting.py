"""Applying many fetched PSP payments in one transaction (``apply_states``), for the webhook drain.

The result is what ``service.apply_state`` would give for each snapshot in turn; only the cost
differs. The PSP payment rows are locked together (in provider-id order, so two drainers cannot
deadlock), and the common case, a payment that is now paid and not yet in the ledger (no refunds
or chargebacks reported yet), is booked set-based by ``core.ledger.psp_batch.record_payments``. Every
other case (a status change that posts nothing, refunds, chargebacks, a second payment of the same
debtor in the batch, an unknown payment, an invoice that cannot take the payment) goes through
``service.apply_state`` one by one, after the set-based part, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.base import table_of, utcnow
from core.bulk import among
from core.invoices.models import PAYABLE_STATUSES, Invoice, InvoiceStatus
from core.ledger import psp_batch as ledger_batch
from core.money import Money
from core.payments import repository as repo
from core.payments import service
from core.payments.models import PspPayment
from core.ports import ProviderPayment

log = structlog.get_logger(__name__)


def _only_posting(psp: Any, snap: ProviderPayment) -> bool:
    """Paid, not in the ledger yet, and nothing else to apply."""
    return (
        snap.status == "paid"
        and psp.ledger_payment_id is None
        and snap.amount_minor > 0
        and snap.refunded_minor == 0
        and snap.charged_back_minor == 0
    )


async def apply_states(
    session: AsyncSession, snaps: Sequence[ProviderPayment], *, today: date
) -> dict[str, str]:
    """provider id → outcome (as ``service.apply_state`` answers it). One snapshot per payment."""
    psps = await repo.lock_by_provider_ids(session, [s.id for s in snaps])
    fast: list[tuple[Any, ProviderPayment]] = []
    slow: list[ProviderPayment] = []
    debtors: set[Any] = set()
    for snap in snaps:
        psp = psps.get(snap.id)
        if psp is None or not _only_posting(psp, snap) or psp.debtor_id in debtors:
            slow.append(snap)
            continue
        debtors.add(psp.debtor_id)
        fast.append((psp, snap))
    outcomes: dict[str, str] = {}
    if fast:
        booked, refused = await _book(session, fast, today)
        outcomes.update(booked)
        slow.extend(refused)
    for snap in slow:
        outcomes[snap.id] = await service.apply_state(session, snap, today=today)
    return outcomes


async def _book(
    session: AsyncSession, items: list[tuple[Any, ProviderPayment]], today: date
) -> tuple[dict[str, str], list[ProviderPayment]]:
    """Book the payments set-based; (outcomes, snapshots left to ``apply_state``)."""
    covered = await repo.covered_by(session, [psp.id for psp, _ in items])
    single = {psp.id: ids[0] for psp, _ in items if len(ids := covered[psp.id]) == 1}
    invoices: dict[Any, Any] = {}
    if single:
        stmt = select(
            col(Invoice.id), col(Invoice.debtor_id), col(Invoice.currency), col(Invoice.status)
        ).where(among(session, col(Invoice.id), list(single.values())))
        invoices = {row.id: row for row in (await session.execute(stmt)).all()}
    book: list[tuple[Any, ProviderPayment, ledger_batch.NewPayment]] = []
    refused: list[ProviderPayment] = []
    for psp, snap in items:
        invoice_id = single.get(psp.id)
        if invoice_id is not None and not _takes(invoices.get(invoice_id), psp, snap):
            refused.append(snap)  # record_payment refuses it with its reason, as before
            continue
        book.append(
            (
                psp,
                snap,
                ledger_batch.NewPayment(
                    debtor_id=psp.debtor_id,
                    amount_minor=snap.amount_minor,
                    currency=snap.currency,
                    method=psp.provider,
                    reference=psp.provider_id,
                    received_on=today,
                    invoice_id=invoice_id,
                ),
            )
        )
    payment_ids = await ledger_batch.record_payments(
        session, [new for _, _, new in book], actor=service.PSP_ACTOR
    )
    outcomes: dict[str, str] = {}
    updated: list[tuple[object, dict[str, Any], dict[str, Any]]] = []
    changed: list[dict[str, Any]] = []
    now = utcnow()
    for (psp, snap, _), payment_id in zip(book, payment_ids, strict=True):
        if snap.amount_minor != psp.amount_minor or snap.currency != psp.currency:
            log.warning(
                "psp.amount_differs", provider_id=snap.id, ours=psp.amount_minor, theirs=snap.amount_minor
            )
        done = ["posted"] if psp.status == "paid" else ["status:paid", "posted"]
        changed.append({"psp_id": psp.id, "paid_by": payment_id, "at": now})
        outcomes[snap.id] = ",".join(done)
        updated.append(
            (
                psp.provider_id,
                {"status": psp.status},
                {
                    "status": "paid",
                    "changes": done,
                    "refunded": Money(psp.refunded_minor, psp.currency).decimal_str,
                    "charged_back": Money(psp.charged_back_minor, psp.currency).decimal_str,
                },
            )
        )
    if changed:  # one executemany UPDATE by primary key
        await session.execute(_PAID, changed)
    await audit.record_many(session, service.PSP_ACTOR, "psp_payment.updated", "psp_payment", updated)
    return outcomes, refused


_PSP = table_of(PspPayment)
_PAID = (
    _PSP.update()
    .where(_PSP.c.id == bindparam("psp_id"))
    .values(status="paid", ledger_payment_id=bindparam("paid_by"), updated_at=bindparam("at"))
)


def _takes(invoice: Any, psp: Any, snap: ProviderPayment) -> bool:
    """The covered invoice can take the payment (else record_payment explains why not)."""
    return (
        invoice is not None
        and invoice.debtor_id == psp.debtor_id
        and invoice.currency == snap.currency
        and (invoice.status in PAYABLE_STATUSES or invoice.status == InvoiceStatus.paid)
    )
