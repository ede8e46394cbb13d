"""Pay options: everything a debtor needs to pay an invoice, or several together.

- the amount open now (fees and interest included);
- the RF creditor reference (per invoice; per debtor for a grouped payment);
- a checkout at the PSP (reused while open) and a QR code of its URL, when a PSP is configured;
- an EPC069-12 SEPA QR code with the amount and the reference, when the creditor's name and IBAN
  are configured and the amount is in euro.

Each part that cannot be made is left out with its reason (``checkout_unavailable``,
``epc_unavailable``), which is logged; the rest still goes out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.config import Settings
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.errors import Conflict, NotFound
from core.invoices import repository as invoice_repo
from core.invoices.models import PAYABLE_STATUSES, Invoice
from core.ledger import repository as ledger_repo
from core.money import Money
from core.payments import qr, reference, service
from core.ports import PaymentProvider, PaymentProviderError

log = structlog.get_logger(__name__)


@dataclass
class PayOptions:
    amount: Money
    reference: str
    invoices: list[str]  # external ids
    checkout_url: str | None = None
    psp_payment_id: str | None = None
    checkout_expires_at: datetime | None = None
    checkout_qr_png: bytes | None = None
    checkout_unavailable: str | None = None
    epc_payload: str | None = None
    epc_qr_png: bytes | None = None
    epc_unavailable: str | None = None

    @property
    def reference_printable(self) -> str:
        return reference.printable(self.reference)

    def images(self) -> list[tuple[str, bytes, str]]:
        """(filename, bytes, content type) of the QR codes, for e-mail attachments."""
        out = []
        if self.checkout_qr_png:
            out.append(("pay-online-qr.png", self.checkout_qr_png, "image/png"))
        if self.epc_qr_png:
            out.append(("sepa-transfer-qr.png", self.epc_qr_png, "image/png"))
        return out


async def build(
    session: AsyncSession,
    debtor: Debtor,
    invoices: Sequence[Invoice],
    amount: Money,
    *,
    settings: Settings,
    provider: PaymentProvider | None,
    actor: Actor,
    now: datetime,
) -> PayOptions:
    """Pay options for ``invoices`` (one: per-invoice reference and checkout; several: grouped)."""
    creditor = settings.creditor_name or "duebot"
    req = (
        service.invoice_request(debtor, invoices[0], amount.minor, creditor_name=creditor)
        if len(invoices) == 1
        else service.debtor_request(debtor, invoices, amount, creditor_name=creditor)
    )
    return await build_for(session, req, settings=settings, provider=provider, actor=actor, now=now)


async def build_for(
    session: AsyncSession,
    req: service.CheckoutRequest,
    *,
    settings: Settings,
    provider: PaymentProvider | None,
    actor: Actor,
    now: datetime,
) -> PayOptions:
    """Pay options for a checkout request: the invoice's RF reference for one invoice, the
    debtor's otherwise (several invoices, an instalment, a payment request)."""
    debtor, amount = req.debtor, req.amount
    if len(req.invoices) == 1:
        rf = await reference.for_invoice(session, invoice_id=req.invoices[0].id, debtor_id=debtor.id)
    else:
        rf = await reference.for_debtor(session, debtor_id=debtor.id)
    options = PayOptions(amount=amount, reference=rf, invoices=[i.external_id for i in req.invoices])
    if provider is None:
        options.checkout_unavailable = "no payment provider configured (MOLLIE_API_KEY)"
    else:
        try:
            async with session.begin_nested():
                psp = await service.get_or_create(session, provider, req, actor=actor, now=now)
        except PaymentProviderError as exc:
            log.warning("pay_options.no_checkout", debtor=debtor.external_id, error=exc.reason)
            options.checkout_unavailable = exc.reason
        else:
            options.checkout_url = psp.checkout_url
            options.psp_payment_id = psp.provider_id
            options.checkout_expires_at = psp.expires_at
            if psp.checkout_url:
                options.checkout_qr_png = qr.png(psp.checkout_url)
    if not (settings.creditor_name and settings.creditor_iban):
        options.epc_unavailable = "CREDITOR_NAME and CREDITOR_IBAN are not configured"
    else:
        try:
            options.epc_payload = qr.epc_payload(
                name=settings.creditor_name,
                iban=settings.creditor_iban,
                bic=settings.creditor_bic,
                amount=amount,
                reference=rf,
            )
        except qr.EpcUnavailable as exc:
            options.epc_unavailable = exc.reason
        else:
            options.epc_qr_png = qr.png(options.epc_payload)
    if options.epc_unavailable:
        log.info("pay_options.no_epc_qr", debtor=debtor.external_id, reason=options.epc_unavailable)
    return options


async def for_invoice(
    session: AsyncSession,
    external_id: str,
    *,
    settings: Settings,
    provider: PaymentProvider | None,
    actor: Actor,
    now: datetime,
) -> PayOptions:
    invoice = await invoice_repo.get_by_external_id(session, external_id)
    if invoice is None:
        raise NotFound(f"unknown invoice {external_id!r}", "unknown_invoice")
    open_minor = await ledger_repo.open_amount(session, invoice.id)
    if invoice.status not in PAYABLE_STATUSES or open_minor <= 0:
        raise Conflict(
            f"invoice {external_id!r} has nothing to pay (it is {invoice.status})", "nothing_to_pay"
        )
    debtor = await debtor_repo.get_by_id(session, invoice.debtor_id)
    return await build(
        session,
        debtor,
        [invoice],
        Money(open_minor, invoice.currency),
        settings=settings,
        provider=provider,
        actor=actor,
        now=now,
    )


async def for_invoices(
    session: AsyncSession,
    debtor_id: uuid.UUID,
    invoice_ids: Sequence[uuid.UUID],
    *,
    settings: Settings,
    provider: PaymentProvider | None,
    actor: Actor,
    now: datetime,
) -> PayOptions | None:
    """Pay options for the open ones among ``invoice_ids`` in the first one's currency (a reminder
    names several invoices); None when nothing is open."""
    debtor = await debtor_repo.get_by_id(session, debtor_id)
    found: list[tuple[Invoice, int]] = []
    for invoice_id in invoice_ids:
        invoice = await session.get(Invoice, invoice_id)
        if invoice is None or invoice.status not in PAYABLE_STATUSES:
            continue
        open_minor = await ledger_repo.open_amount(session, invoice_id)
        if open_minor > 0:
            found.append((invoice, open_minor))
    if not found:
        return None
    currency = found[0][0].currency
    chosen = [(i, m) for i, m in found if i.currency == currency]
    amount = Money(sum(m for _, m in chosen), currency)
    return await build(
        session,
        debtor,
        [i for i, _ in chosen],
        amount,
        settings=settings,
        provider=provider,
        actor=actor,
        now=now,
    )


async def for_debtor(
    session: AsyncSession,
    external_id: str,
    currency: str | None,
    *,
    settings: Settings,
    provider: PaymentProvider | None,
    actor: Actor,
    now: datetime,
) -> PayOptions:
    """One payment for all of a debtor's open invoices in ``currency`` (default: that of the oldest
    due one), with the debtor's RF reference (or the invoice's, when only one is open)."""
    debtor = await debtor_repo.get_by_external_id(session, external_id)
    if debtor is None:
        raise NotFound(f"unknown debtor {external_id!r}", "unknown_debtor")
    if currency is None:
        sums = [r for r in await ledger_repo.invoice_sums(session, debtor.id) if int(r.open_minor or 0) > 0]
        payable = [r for r in sums if r.status in PAYABLE_STATUSES]
        if not payable:
            raise Conflict(f"debtor {external_id!r} has nothing to pay", "nothing_to_pay")
        currency = min(payable, key=lambda r: (r.due_date, r.number)).currency
    assert currency is not None
    rows = await ledger_repo.payable_invoices(session, debtor.id, currency)
    if not rows:
        raise Conflict(f"debtor {external_id!r} has nothing to pay in {currency}", "nothing_to_pay")
    found = await for_invoices(
        session,
        debtor.id,
        [r.id for r in rows],
        settings=settings,
        provider=provider,
        actor=actor,
        now=now,
    )
    assert found is not None
    return found
