"""REST v1: pay options, refunds and personal payment requests.

Pay options answer the images inline as base64 PNG (``qr_png_base64``), so that one call gives an
ERP or a portal everything it needs to show.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from api.deps import ServicesDep, actor_of, require
from core.access.models import ApiKey
from core.payments import options as pay_options
from core.payments.options import PayOptions

router = APIRouter(tags=["payments"])


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data else None


def pay_options_view(o: PayOptions) -> dict[str, Any]:
    return {
        "invoices": o.invoices,
        "amount": o.amount.as_api(),
        "reference": o.reference,
        "reference_printable": o.reference_printable,
        "checkout": (
            {
                "url": o.checkout_url,
                "provider_id": o.psp_payment_id,
                "expires_at": o.checkout_expires_at.isoformat() if o.checkout_expires_at else None,
                "qr_png_base64": _b64(o.checkout_qr_png),
            }
            if o.checkout_url
            else None
        ),
        "checkout_unavailable": o.checkout_unavailable,
        "epc": {"payload": o.epc_payload, "qr_png_base64": _b64(o.epc_qr_png)} if o.epc_payload else None,
        "epc_unavailable": o.epc_unavailable,
    }


@router.get(
    "/invoices/{external_id}/pay-options",
    summary="How to pay an invoice: amount, checkout link, RF reference, QR images (base64 PNG)",
)
async def invoice_pay_options(
    external_id: Annotated[str, Path(max_length=128)],
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:read"))],
) -> dict[str, Any]:
    """The open checkout is reused while it is open and the amount is unchanged. Without a PSP,
    or for a currency other than EUR, the missing part is null and its reason is given."""
    async with services.db.session_scope() as session:
        found = await pay_options.for_invoice(
            session,
            external_id,
            settings=services.settings,
            provider=services.payments,
            actor=actor_of(key),
            now=services.clock.now(),
        )
    return pay_options_view(found)
