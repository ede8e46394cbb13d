"""REST v1: manual payments, credit notes and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency, views
from api.deps import ServicesDep, actor_of, require
from core import audit
from core.access.models import ApiKey
from core.ledger import service as ledger
from core.ledger.schemas import CreditNoteIn, PaymentIn
from core.money import Money

router = APIRouter(tags=["ledger"])


@router.post("/payments", status_code=201, summary="Record a payment received outside the PSP")
async def record_payment(
    body: PaymentIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("payments:write"))],
) -> Response:
    """Allocated to the named invoice, or to the oldest due invoices first; any rest is a credit."""

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        result = await ledger.record_payment(session, body, actor=actor_of(key), today=services.clock.today())
        return 201, views.payment(result, body.debtor_external_id)

    return await idempotency.run(request, services, key, work)


@router.post("/credit-notes", status_code=201, summary="Credit (part of) an invoice")
async def record_credit_note(
    body: CreditNoteIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("payments:write"))],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        note = await ledger.record_credit_note(
            session, body, actor=actor_of(key), today=services.clock.today()
        )
        return 201, {
            "id": str(note.id),
            "number": note.number,
            "invoice_external_id": body.invoice_external_id,
            "amount": Money(note.amount_minor, note.currency).as_api(),
            "reason": note.reason,
            "issued_on": note.issued_on.isoformat(),
        }

    return await idempotency.run(request, services, key, work)


@router.get("/audit", summary="The audit trail, newest first")
async def audit_trail(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("audit:read"))],
    entity: Annotated[str | None, Query(max_length=64)] = None,
    id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        events = await audit.trail(session, entity=entity, entity_id=id, limit=limit)
    return {"events": [views.audit_event(e) for e in events]}
