"""REST v1: debtors, their balances, pause and resume."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency, views
from api.deps import ServicesDep, actor_of, require
from core.access.models import ApiKey
from core.debtors import repository as debtor_repo
from core.debtors import service as debtors
from core.debtors.models import Debtor
from core.debtors.schemas import DebtorIn, PauseIn
from core.dunning import agency
from core.ledger import service as ledger

router = APIRouter(prefix="/debtors", tags=["debtors"])
ExternalIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@-]+$")]


async def _view(session: AsyncSession, debtor: Debtor, services: Any) -> dict[str, Any]:
    points = await debtor_repo.contact_points(session, debtor.id)
    balance = await ledger.debtor_balance(session, debtor.id, services.clock.today())
    return views.debtor(debtor, points, balance)


@router.put("/{external_id}", summary="Create or update a debtor")
async def upsert_debtor(
    external_id: ExternalIdPath,
    body: DebtorIn,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("debtors:write"))],
) -> JSONResponse:
    async with services.db.session_scope() as session:
        result = await debtors.upsert(session, external_id, body, actor_of(key))
        payload = await _view(session, result.debtor, services)
    return JSONResponse(payload, status_code=201 if result.created else 200)


@router.get("/{external_id}", summary="A debtor with balances per currency and per invoice")
async def get_debtor(
    external_id: ExternalIdPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("debtors:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        debtor = await debtors.get(session, external_id)
        return await _view(session, debtor, services)


@router.post("/{external_id}/pause", summary="Pause dunning for a debtor")
async def pause_debtor(
    external_id: ExternalIdPath,
    body: PauseIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("debtors:write"))],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        debtor = await debtors.pause(
            session,
            external_id,
            reason=body.reason,
            until=body.until,
            today=services.clock.today(),
            actor=actor_of(key),
        )
        return 200, {"external_id": debtor.external_id, "dunning": debtors.pause_state(debtor)}

    return await idempotency.run(request, services, key, work)


@router.post("/{external_id}/resume", summary="Lift a debtor's dunning pause")
async def resume_debtor(
    external_id: ExternalIdPath,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("debtors:write"))],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        debtor = await debtors.resume(session, external_id, actor=actor_of(key))
        return 200, {"external_id": debtor.external_id, "dunning": debtors.pause_state(debtor)}

    return await idempotency.run(request, services, key, work)


@router.get(
    "/{external_id}/evidence",
    summary="The evidence file for a collection agency: invoices, entries, messages, promises, disputes",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def debtor_evidence(
    external_id: ExternalIdPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("debtors:read"))],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    async with services.db.sessionmaker() as session:
        debtor = await debtors.get(session, external_id)
        file = await agency.evidence(session, debtor.id)
    if format == "csv":
        return Response(
            agency.evidence_csv(file),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="evidence-{external_id}.csv"'},
        )
    return JSONResponse(file)
