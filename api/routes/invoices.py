"""REST v1: invoice batches (create, approve, reject) and invoices."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency, jobs, views
from api.deps import Services, ServicesDep, actor_of, require
from api.routes.debtors import ExternalIdPath
from core.access.models import ApiKey
from core.dunning import holds
from core.dunning.hold_schemas import DisputeIn, InvoicePauseIn, PromiseIn, ResolveIn
from core.errors import FieldError, InvalidInput, NotFound
from core.invoices import intake
from core.invoices import repository as invoice_repo
from core.invoices import service as invoices
from core.invoices.models import BatchStatus, InvoiceDocument
from core.invoices.schemas import BatchIn, DecisionIn
from core.money import parse_minor

router = APIRouter(tags=["invoices"])


@router.post("/invoice-batches", status_code=201, summary="Submit a batch of invoices for approval")
async def create_batch(
    body: BatchIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:write"))],
) -> Response:
    """All or nothing. Sending the same invoices again returns the existing batch (200)."""
    items = [intake.NewInvoice.from_input(i) for i in body.invoices]

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        result = await intake.create_batch(
            session, items, actor=actor_of(key), source="api", max_items=services.settings.batch_max_invoices
        )
        return (201 if result.created else 200), views.batch(result.batch)

    response = await idempotency.run(request, services, key, work)
    if response.status_code == 201:  # committed: post it for approval now
        await jobs.post_batch_for_approval(services.redis, json.loads(bytes(response.body))["id"])
    return response


@router.get("/invoice-batches", summary="List batches, newest first")
async def list_batches(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("invoices:read"))],
    status: Annotated[BatchStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        batches = await invoice_repo.list_batches(session, status, limit)
    return {"batches": [views.batch(b) for b in batches]}


@router.get("/invoice-batches/{batch_id}", summary="One batch")
async def get_batch(
    batch_id: uuid.UUID,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("invoices:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        return views.batch(await invoices.get_batch(session, batch_id))


def _decision(action: str) -> Any:
    async def decide(
        batch_id: uuid.UUID,
        request: Request,
        services: ServicesDep,
        key: Annotated[ApiKey, Depends(require("invoices:approve"))],
        body: DecisionIn | None = None,
    ) -> Response:
        note = body.note if body else None

        async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
            if action == "approve":
                batch = await invoices.approve(
                    session,
                    batch_id,
                    actor=actor_of(key),
                    note=note,
                    distribution_per_hour=services.settings.distribution_per_hour,
                )
            else:
                batch = await invoices.reject(session, batch_id, actor=actor_of(key), note=note)
            return 200, views.batch(batch)

        return await idempotency.run(request, services, key, work)

    decide.__name__ = f"{action}_batch"
    return decide


router.post("/invoice-batches/{batch_id}/approve", summary="Approve a batch: its invoices are booked")(
    _decision("approve")
)
router.post("/invoice-batches/{batch_id}/reject", summary="Reject a batch: its invoices are dropped")(
    _decision("reject")
)


@router.get("/invoices/{external_id}", summary="An invoice with its open amount, dunning state and ledger")
async def get_invoice(
    external_id: ExternalIdPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("invoices:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        return views.invoice(await invoices.view(session, external_id, services.clock.today()))


@router.get("/invoices/{external_id}/document", summary="The invoice PDF", response_class=Response)
async def get_document(
    external_id: ExternalIdPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("invoices:read"))],
) -> Response:
    async with services.db.sessionmaker() as session:
        invoice = await invoice_repo.get_by_external_id(session, external_id)
        doc = await session.get(InvoiceDocument, invoice.id) if invoice else None
    if doc is None:
        raise NotFound(f"invoice {external_id!r} has no document", "document_not_found")
    return Response(
        doc.content,
        media_type=doc.content_type,
        headers={"Content-Disposition": f'attachment; filename="{doc.filename}"'},
    )


# --------------------------------------------------------------------------- dunning holds


async def _hold(
    request: Request,
    services: Services,
    key: ApiKey,
    external_id: str,
    change: Callable[[AsyncSession], Awaitable[object]],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        await change(session)
        _, state = await holds.state_of(session, external_id)
        return 200, {"external_id": external_id, "dunning": holds.hold_view(state)}

    return await idempotency.run(request, services, key, work)


@router.post("/invoices/{external_id}/pause", summary="Pause dunning for one invoice")
async def pause_invoice(
    external_id: ExternalIdPath,
    body: InvoicePauseIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:write"))],
) -> Response:
    today = services.clock.today()
    return await _hold(
        request,
        services,
        key,
        external_id,
        lambda s: holds.pause(
            s, external_id, reason=body.reason, until=body.until, today=today, actor=actor_of(key)
        ),
    )


@router.post("/invoices/{external_id}/resume", summary="Lift an invoice's pause")
async def resume_invoice(
    external_id: ExternalIdPath,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:write"))],
) -> Response:
    return await _hold(
        request, services, key, external_id, lambda s: holds.resume(s, external_id, actor=actor_of(key))
    )


@router.post("/invoices/{external_id}/promise", summary="Record a promise to pay by a date")
async def promise_invoice(
    external_id: ExternalIdPath,
    body: PromiseIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:write"))],
) -> Response:
    """Dunning holds until the date plus the policy's grace days; unpaid then, the promise is broken."""
    amount = parse_minor(body.amount, body.currency) if body.amount and body.currency else None
    if body.amount and not body.currency:
        raise InvalidInput(
            "an amount needs its currency",
            "currency_missing",
            [FieldError(("currency",), "give the currency of the amount", "missing")],
        )
    today = services.clock.today()
    return await _hold(
        request,
        services,
        key,
        external_id,
        lambda s: holds.promise(
            s, external_id, on=body.date, amount_minor=amount, today=today, actor=actor_of(key), source="api"
        ),
    )


@router.post("/invoices/{external_id}/dispute", summary="Dispute an invoice: dunning holds until resolved")
async def dispute_invoice(
    external_id: ExternalIdPath,
    body: DisputeIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:write"))],
) -> Response:
    return await _hold(
        request,
        services,
        key,
        external_id,
        lambda s: holds.dispute(s, external_id, reason=body.reason, actor=actor_of(key)),
    )


@router.post("/invoices/{external_id}/dispute/resolve", summary="Resolve a dispute: dunning goes on")
async def resolve_dispute(
    external_id: ExternalIdPath,
    body: ResolveIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("invoices:write"))],
) -> Response:
    return await _hold(
        request,
        services,
        key,
        external_id,
        lambda s: holds.resolve_dispute(s, external_id, note=body.note, actor=actor_of(key)),
    )
