"""REST v1: invoice batches (create, approve, reject) and invoices."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency, views
from api.deps import ServicesDep, actor_of, require
from api.routes.debtors import ExternalIdPath
from core.access.models import ApiKey
from core.errors import NotFound
from core.invoices import intake
from core.invoices import repository as invoice_repo
from core.invoices import service as invoices
from core.invoices.models import BatchStatus, InvoiceDocument
from core.invoices.schemas import BatchIn, DecisionIn

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

    return await idempotency.run(request, services, key, work)


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
        fn = invoices.approve if action == "approve" else invoices.reject
        note = body.note if body else None

        async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
            return 200, views.batch(await fn(session, batch_id, actor=actor_of(key), note=note))

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
