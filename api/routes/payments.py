"""REST v1: pay options, refunds and personal payment requests.

Pay options answer the images inline as base64 PNG (``qr_png_base64``), so that one call gives an
ERP or a portal everything it needs to show.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.deps import Services, ServicesDep, actor_of, require
from core.access.models import ApiKey
from core.audit import Actor
from core.debtors import repository as debtor_repo
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.money import Money
from core.payments import options as pay_options
from core.payments import refunds
from core.payments import requests as payment_requests
from core.payments.models import PspPayment, RefundRequest, RefundStatus
from core.payments.options import PayOptions
from core.payments.schemas import PaymentRequestIn, RefundDecisionIn, RefundIn
from core.validation import Currency

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


@router.get(
    "/debtors/{external_id}/pay-options",
    summary="How to pay all of a debtor's open invoices in one currency, together",
)
async def debtor_pay_options(
    external_id: Annotated[str, Path(max_length=128)],
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("debtors:read"))],
    currency: Annotated[Currency | None, Query(description="default: that of the oldest due invoice")] = None,
) -> dict[str, Any]:
    async with services.db.session_scope() as session:
        found = await pay_options.for_debtor(
            session,
            external_id,
            currency,
            settings=services.settings,
            provider=services.payments,
            actor=actor_of(key),
            now=services.clock.now(),
        )
    return pay_options_view(found)


# --------------------------------------------------------------------------- refunds


def refund_view(r: RefundRequest, payment: str) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "payment_id": payment,
        "amount": Money(r.amount_minor, r.currency).as_api(),
        "reason": r.reason,
        "status": r.status,
        "needs_second_approval": r.needs_second_approval and r.status == RefundStatus.requested,
        "requested_by": r.requested_by,
        "approved_by": r.approved_by,
        "provider_refund_id": r.provider_refund_id,
        "error": r.error,
    }


def _status_code(r: RefundRequest) -> int:
    """201: executed (or declined/failed: settled); 202: still to happen (approval or a PSP retry)."""
    return 202 if r.status in (RefundStatus.requested, RefundStatus.approved) else 201


async def _execute(
    session: AsyncSession, services: Services, r: RefundRequest, actor: Actor
) -> RefundRequest:
    if r.status != RefundStatus.approved:
        return r
    if services.payments is None:
        raise Conflict("no payment provider is configured to execute refunds (MOLLIE_API_KEY)", "no_provider")
    return await refunds.execute_refund(
        session, services.payments, r.id, now=services.clock.now(), actor=actor
    )


async def _payment_ref(session: AsyncSession, r: RefundRequest) -> str:
    psp = await session.get(PspPayment, r.psp_payment_id)
    return psp.provider_id if psp is not None else str(r.psp_payment_id)


@router.post("/refunds", status_code=201, summary="Request (and, within the policy, execute) a refund")
async def request_refund(
    body: RefundIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("payments:write"))],
) -> Response:
    """201 with status ``executed``; 202 with ``requested`` and ``needs_second_approval`` when the
    amount is above the second-approval threshold, or ``approved`` with the error when the PSP
    could not be reached (the worker retries). Over a limit or the refundable amount: 422."""
    actor = Actor("staff", body.requested_by, f"via API key {key.prefix}")

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        amount = Money.parse(body.amount, body.currency) if body.amount is not None else None
        r = await refunds.request_refund(
            session,
            body.payment_id,
            amount,
            body.reason,
            actor,
            policy=refunds.RefundPolicy.from_settings(services.settings),
            now=services.clock.now(),
        )
        r = await _execute(session, services, r, actor)
        return _status_code(r), refund_view(r, await _payment_ref(session, r))

    return await idempotency.run(request, services, key, work)


def _refund_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no refund {value!r}", "unknown_refund") from None


@router.post("/refunds/{refund_id}/approve", summary="Second approval of a refund; executes it")
async def approve_refund(
    refund_id: Annotated[str, Path(max_length=64)],
    body: RefundDecisionIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("payments:write"))],
) -> Response:
    actor = Actor("staff", body.by, f"via API key {key.prefix}")

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        r = await refunds.approve_refund(session, _refund_id(refund_id), actor, now=services.clock.now())
        r = await _execute(session, services, r, actor)
        return (200 if r.status != RefundStatus.approved else 202), refund_view(
            r, await _payment_ref(session, r)
        )

    return await idempotency.run(request, services, key, work)


@router.post("/refunds/{refund_id}/decline", summary="Decline a refund that was not executed")
async def decline_refund(
    refund_id: Annotated[str, Path(max_length=64)],
    body: RefundDecisionIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("payments:write"))],
) -> Response:
    actor = Actor("staff", body.by, f"via API key {key.prefix}")

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        r = await refunds.decline_refund(
            session, _refund_id(refund_id), actor, reason=body.reason, now=services.clock.now()
        )
        return 200, refund_view(r, await _payment_ref(session, r))

    return await idempotency.run(request, services, key, work)


# --------------------------------------------------------------------------- payment requests


@router.post("/payment-requests", status_code=201, summary="Ask a debtor for an amount, with pay options")
async def request_payment(
    body: PaymentRequestIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("payments:write"))],
) -> Response:
    """Queues one message on the debtor's channels with the checkout link, the RF reference and,
    by e-mail, the QR images. Answers the message id and the pay options."""

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        debtor = await debtor_repo.get_by_external_id(session, body.debtor_external_id)
        if debtor is None:
            raise InvalidInput(
                f"unknown debtor {body.debtor_external_id!r}",
                "unknown_debtor",
                [FieldError(("debtor_external_id",), "unknown debtor", "unknown_debtor")],
            )
        made = await payment_requests.request_payment(
            session,
            debtor.id,
            Money.parse(body.amount, body.currency),
            body.reason,
            actor_of(key),
            settings=services.settings,
            provider=services.payments,
            now=services.clock.now(),
            tone=body.tone,
        )
        return 201, {
            "id": str(made.id),
            "message_id": str(made.message.id),
            "status": made.message.status,
            "debtor_external_id": debtor.external_id,
            "reason": body.reason,
            **pay_options_view(made.options),
        }

    return await idempotency.run(request, services, key, work)
