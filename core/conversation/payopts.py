"""Pay options shown in the chat: a payment link and its QR, an EPC SEPA QR with an RF reference.

``ConversationDeps.pay_options(session, debtor_id, invoice_ids)`` is the seam to the payments
module (core/payments/service + qr: Mollie payment links). Until it is wired, or when it answers
None, :func:`fallback` builds what needs no PSP: the RF reference (core.payments.reference), the
creditor's IBAN from settings and an EPC069-12 QR code ("GiroCode") for EUR amounts.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.money import Money
from core.payments import reference as references


@dataclass(frozen=True)
class PayOptions:
    amount: Money
    reference: str | None = None  # RF creditor reference
    url: str | None = None  # PSP checkout / payment link
    url_qr_png: bytes | None = None
    epc_qr_png: bytes | None = None
    iban: str | None = None
    creditor_name: str | None = None


PayOptionsFn = Callable[[AsyncSession, uuid.UUID, list[uuid.UUID]], Awaitable[PayOptions | None]]


def epc_payload(
    *, name: str, iban: str, bic: str | None, amount: Money, reference: str | None, text: str
) -> str:
    """EPC069-12 version 002, UTF-8, SCT; a structured RF reference or else unstructured text."""
    if amount.currency != "EUR":
        raise ValueError("an EPC QR code carries euro amounts only")
    value = f"EUR{amount.decimal_str}"
    lines = [
        "BCD",
        "002",
        "1",
        "SCT",
        (bic or "").strip(),
        name.strip()[:70],
        iban.replace(" ", "").upper(),
        value,
        "",  # purpose
        reference or "",
        "" if reference else text[:140],
        "",
    ]
    return "\n".join(lines).rstrip("\n")


def qr_png(data: str, *, box_size: int = 6) -> bytes:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    qr.add_data(data.encode("utf-8"))
    qr.make(fit=True)
    image = qr.make_image()
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


async def fallback(
    session: AsyncSession,
    settings: Settings,
    *,
    debtor_id: uuid.UUID,
    invoice_ids: Sequence[uuid.UUID],
    amount: Money,
    invoice_numbers: Sequence[str],
) -> PayOptions:
    """RF reference + IBAN + EPC QR (EUR, when an IBAN is configured); no payment link."""
    if len(invoice_ids) == 1:
        ref = await references.for_invoice(session, invoice_id=invoice_ids[0], debtor_id=debtor_id)
    else:
        ref = await references.for_debtor(session, debtor_id=debtor_id)
    epc: bytes | None = None
    iban = settings.creditor_iban
    name = settings.creditor_name or "duebot"
    if iban and amount.currency == "EUR" and amount.minor > 0:
        payload = epc_payload(
            name=name,
            iban=iban,
            bic=settings.creditor_bic,
            amount=amount,
            reference=ref,
            text=" ".join(invoice_numbers),
        )
        epc = qr_png(payload)
    return PayOptions(
        amount=amount,
        reference=ref,
        epc_qr_png=epc,
        iban=iban,
        creditor_name=settings.creditor_name,
    )
