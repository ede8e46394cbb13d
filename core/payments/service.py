"""PSP payments: checkouts (get or create, reused while open), and applying what the PSP reports.

Checkouts. One scope per thing a debtor can pay: an invoice (``invoice:<id>``), a debtor's open
invoices together (``debtor:<id>:<currency>``), an instalment or a payment request. The latest
payment of a scope is reused while it is open, has a checkout URL, does not expire within
``REUSE_MARGIN`` and is for the same amount; otherwise a new one is made. The idempotency key
``duebot:<scope>:<amount>:<n>`` is stable: a retried request gets the payment it made before.

Applying a payment's state (``apply_state``, after a webhook, from a fetched snapshot). The
payment row is locked, so concurrent jobs for the same payment run one after the other, and:
- the status moves forward only (``RANK``): a stale snapshot never undoes a later one;
- "paid" posts the payment to the ledger once (``ledger_payment_id``), allocated to the covered
  invoice (or oldest due first), any rest as credit on the debtor's account; paid invoices leave
  dunning at once (the sweep only acts on open invoices);
- refunds and chargebacks the PSP reports post only what the ledger does not hold yet
  (``refunded_minor``/``charged_back_minor``). A chargeback reverses the allocations and reopens
  the invoices, so dunning resumes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import utcnow
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.errors import NotFound
from core.invoices import repository as invoice_repo
from core.invoices.models import Invoice, InvoiceStatus
from core.ledger import repository as ledger_repo
from core.ledger import service as ledger
from core.ledger.allocation import allocate
from core.ledger.models import EntryKind
from core.ledger.schemas import PaymentIn
from core.money import Money
from core.payments import repository as repo
from core.payments.models import FINAL_STATUSES, PaymentPurpose, PspPayment
from core.payments.texts import checkout_description
from core.ports import PaymentProvider, ProviderPayment

log = structlog.get_logger(__name__)

PSP_ACTOR = Actor("psp", "mollie")
REUSE_MARGIN = timedelta(minutes=5)
METADATA_INVOICES = 10
RANK = {"open": 0, "pending": 1, "authorized": 2, "canceled": 3, "expired": 3, "failed": 3, "paid": 4}


@dataclass(frozen=True)
class CheckoutRequest:
    debtor: Debtor
    purpose: PaymentPurpose
    scope: str
    amount: Money
    description: str
    invoices: Sequence[Invoice] = ()
    metadata: dict[str, Any] | None = None


def reusable(psp: PspPayment | None, amount: Money, now: datetime) -> bool:
    return (
        psp is not None
        and psp.status == "open"
        and psp.checkout_url is not None
        and psp.amount_minor == amount.minor
        and psp.currency == amount.currency
        and (psp.expires_at is None or psp.expires_at > now + REUSE_MARGIN)
    )


async def get_or_create(
    session: AsyncSession, provider: PaymentProvider, req: CheckoutRequest, *, actor: Actor, now: datetime
) -> PspPayment:
    """The open checkout for ``req.scope`` and amount, or a new one at the PSP. Raises
    PaymentProviderError when the PSP cannot be reached."""
    await debtor_repo.lock(session, req.debtor.id)  # one checkout at a time per debtor
    latest = await repo.latest_for_scope(session, req.scope)
    if latest is not None and reusable(latest, req.amount, now):
        return latest
    attempt = await repo.count_for_scope(session, req.scope)
    key = f"duebot:{req.scope}:{req.amount.minor}{req.amount.currency}:{attempt}"
    metadata = {
        "debtor": req.debtor.external_id,
        "purpose": req.purpose.value,
        # Mollie keeps at most 1 KB of metadata; the covered invoices are in psp_payment_invoices.
        "invoices": [i.external_id for i in req.invoices[:METADATA_INVOICES]],
        "invoice_count": len(req.invoices),
        **(req.metadata or {}),
    }
    snap = await provider.create_payment(
        amount_minor=req.amount.minor,
        currency=req.amount.currency,
        description=req.description,
        metadata=metadata,
        key=key,
        locale=req.debtor.locale,
    )
    existing = await repo.by_provider_id(session, snap.id)
    if existing is not None:  # an idempotent replay of a create we already stored
        return existing
    psp = PspPayment(
        provider=provider.name,
        provider_id=snap.id,
        debtor_id=req.debtor.id,
        purpose=req.purpose.value,
        scope=req.scope,
        amount_minor=req.amount.minor,
        currency=req.amount.currency,
        description=req.description[:255],
        status=snap.status,
        checkout_url=snap.checkout_url,
        expires_at=snap.expires_at,
        idempotency_key=key,
        created_by=actor.label,
    )
    session.add(psp)
    await session.flush()
    await repo.link_invoices(session, psp.id, [i.id for i in req.invoices])
    await audit.record(
        session,
        actor,
        "psp_payment.created",
        "psp_payment",
        psp.provider_id,
        after={
            "scope": req.scope,
            "amount": req.amount.decimal_str,
            "currency": req.amount.currency,
            "invoices": [i.external_id for i in req.invoices],
            "replaces": latest.provider_id if latest is not None else None,
        },
    )
    return psp


def invoice_request(
    debtor: Debtor, invoice: Invoice, open_minor: int, *, creditor_name: str = "duebot"
) -> CheckoutRequest:
    return CheckoutRequest(
        debtor=debtor,
        purpose=PaymentPurpose.invoice,
        scope=f"invoice:{invoice.id}",
        amount=Money(open_minor, invoice.currency),
        description=checkout_description(debtor.locale, [invoice.number], creditor_name),
        invoices=(invoice,),
    )


def debtor_request(
    debtor: Debtor, invoices: Sequence[Invoice], amount: Money, *, creditor_name: str = "duebot"
) -> CheckoutRequest:
    return CheckoutRequest(
        debtor=debtor,
        purpose=PaymentPurpose.debtor,
        scope=f"debtor:{debtor.id}:{amount.currency}",
        amount=amount,
        description=checkout_description(debtor.locale, [i.number for i in invoices], creditor_name),
        invoices=tuple(invoices),
    )


def instalment_request(
    debtor: Debtor, *, key: str, amount: Money, description: str, metadata: dict[str, Any] | None = None
) -> CheckoutRequest:
    """For a payment plan's instalment: ``key`` names it (e.g. the instalment id)."""
    return CheckoutRequest(
        debtor=debtor,
        purpose=PaymentPurpose.instalment,
        scope=f"instalment:{key}",
        amount=amount,
        description=description,
        metadata=metadata,
    )


# --------------------------------------------------------------------------- applying PSP state


def _moves_forward(current: str, new: str) -> bool:
    if new == current:
        return False
    if new == "paid":
        return True
    if current in FINAL_STATUSES:
        return False
    return RANK.get(new, 0) >= RANK.get(current, 0)


async def apply_state(session: AsyncSession, snap: ProviderPayment, *, today: date) -> str:
    """Bring our copy of the payment and the ledger in line with ``snap``; answers what happened."""
    psp = await repo.by_provider_id(session, snap.id, for_update=True)
    if psp is None:
        log.warning("psp.unknown_payment", provider_id=snap.id)
        return "not_ours"
    if snap.amount_minor != psp.amount_minor or snap.currency != psp.currency:
        log.warning(
            "psp.amount_differs", provider_id=snap.id, ours=psp.amount_minor, theirs=snap.amount_minor
        )
    done: list[str] = []
    before = psp.status
    if _moves_forward(psp.status, snap.status):
        psp.status = snap.status
        done.append(f"status:{snap.status}")
    if psp.status == "paid" and psp.ledger_payment_id is None:
        await _post_payment(session, psp, snap, today)
        done.append("posted")
    if psp.ledger_payment_id is not None:
        # Refunds made elsewhere (the Mollie dashboard); our own approved ones post when executed.
        refund = snap.refunded_minor - psp.refunded_minor
        if refund > 0:
            refund -= await repo.in_flight_refunds(session, psp.id)
        if refund > 0:
            await post_refund(session, psp, refund, today, f"refund at {psp.provider}: {psp.provider_id}")
            psp.refunded_minor += refund
            done.append("refunded")
        charged = snap.charged_back_minor - psp.charged_back_minor
        if charged > 0:
            await _post_chargeback(session, psp, charged, today)
            psp.charged_back_minor = snap.charged_back_minor
            done.append("charged_back")
    if not done:
        return "unchanged"
    psp.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        PSP_ACTOR,
        "psp_payment.updated",
        "psp_payment",
        psp.provider_id,
        before={"status": before},
        after={
            "status": psp.status,
            "changes": done,
            "refunded": Money(psp.refunded_minor, psp.currency).decimal_str,
            "charged_back": Money(psp.charged_back_minor, psp.currency).decimal_str,
        },
    )
    return ",".join(done)


async def _post_payment(session: AsyncSession, psp: PspPayment, snap: ProviderPayment, today: date) -> None:
    debtor = await debtor_repo.get_by_id(session, psp.debtor_id)
    covered = await repo.covered_invoices(session, psp.id)
    invoice_external_id = None
    if len(covered) == 1:
        invoice = await session.get(Invoice, covered[0])
        invoice_external_id = invoice.external_id if invoice is not None else None
    # Built without validation: "mollie" is a method only the PSP path books.
    data = PaymentIn.model_construct(
        debtor_external_id=debtor.external_id,
        invoice_external_id=invoice_external_id,
        currency=snap.currency,
        amount=Money(snap.amount_minor, snap.currency).decimal_str,
        received_on=today,
        method=psp.provider,
        reference=psp.provider_id,
    )
    result = await ledger.record_payment(session, data, actor=PSP_ACTOR, today=today)
    psp.ledger_payment_id = result.payment.id


async def post_refund(session: AsyncSession, psp: PspPayment, amount: int, today: date, note: str) -> None:
    """Money back to the debtor: a refund entry on the account (it uses up credit first)."""
    await debtor_repo.lock(session, psp.debtor_id)
    await ledger.post(
        session,
        [
            ledger.entry_row(
                kind=EntryKind.refund,
                debtor_id=psp.debtor_id,
                amount_minor=amount,
                currency=psp.currency,
                effective_date=today,
                created_by=PSP_ACTOR.label,
                payment_id=psp.ledger_payment_id,
                description=note,
            )
        ],
    )


async def _post_chargeback(session: AsyncSession, psp: PspPayment, amount: int, today: date) -> None:
    """The debtor's bank took the money back: reverse the allocations, newest invoice first, and
    reopen the invoices that are owed again."""
    assert psp.ledger_payment_id is not None
    await debtor_repo.lock(session, psp.debtor_id)
    shares, left = allocate(amount, reversed(await repo.allocations(session, psp.ledger_payment_id)))
    rows = [_chargeback_row(psp, s.take, today, s.invoice) for s in shares]
    if left:
        rows.append(_chargeback_row(psp, left, today, None))
    await ledger.post(session, rows)
    reopened = [s.invoice for s in shares]
    reopen = []
    for invoice_id in reopened:
        invoice = await session.get(Invoice, invoice_id)
        paid = invoice is not None and invoice.status == InvoiceStatus.paid
        if paid and invoice is not None and await ledger_repo.open_amount(session, invoice_id) > 0:
            reopen.append(invoice)
    if reopen:
        await invoice_repo.set_status(session, [i.id for i in reopen], InvoiceStatus.open, utcnow())
        await audit.record_many(
            session,
            PSP_ACTOR,
            "invoice.reopened",
            "invoice",
            (
                (i.external_id, {"status": "paid"}, {"status": "open", "chargeback": psp.provider_id})
                for i in reopen
            ),
        )


def _chargeback_row(
    psp: PspPayment, amount: int, today: date, invoice_id: uuid.UUID | None
) -> dict[str, Any]:
    return ledger.entry_row(
        kind=EntryKind.refund,
        debtor_id=psp.debtor_id,
        amount_minor=amount,
        currency=psp.currency,
        effective_date=today,
        created_by=PSP_ACTOR.label,
        invoice_id=invoice_id,
        payment_id=psp.ledger_payment_id,
        description=f"chargeback at {psp.provider}: {psp.provider_id}",
    )


async def find_payment(session: AsyncSession, ref: str) -> PspPayment:
    """A PSP payment by its provider id (``tr_…``) or our id."""
    psp = await repo.by_provider_id(session, ref)
    if psp is None:
        try:
            psp = await repo.get(session, uuid.UUID(ref))
        except ValueError:
            psp = None
    if psp is None:
        raise NotFound(f"no PSP payment {ref!r}", "unknown_payment")
    return psp
