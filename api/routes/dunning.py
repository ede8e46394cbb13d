"""REST v1: dunning policies per segment, and the dry-run preview of a sweep."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from api.deps import ServicesDep, actor_of, require
from core.access.models import ApiKey
from core.dunning import policies
from core.dunning import service as dunning
from core.dunning.schemas import SEGMENT_PATTERN, PolicyIn

router = APIRouter(prefix="/dunning", tags=["dunning"])
SegmentPath = Annotated[str, Path(min_length=1, max_length=64, pattern=SEGMENT_PATTERN)]


@router.get("/policies", summary="All dunning policies, by segment")
async def list_policies(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("dunning:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        found = await policies.list_policies(session)
    return {"policies": [policies.policy_view(p, stages) for p, stages in found]}


@router.get("/policies/{segment}", summary="The dunning policy of one segment")
async def get_policy(
    segment: SegmentPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("dunning:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        policy, stages = await policies.get_policy(session, segment)
    return policies.policy_view(policy, stages)


@router.put("/policies/{segment}", summary="Create or replace the dunning policy of a segment")
async def put_policy(
    segment: SegmentPath,
    body: PolicyIn,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("dunning:write"))],
) -> JSONResponse:
    """A full replacement, stages included (201 when created, 200 when replaced).

    Invoices already in dunning keep their place: each goes after the last stage of the new list it
    was already sent, and its next action date is recomputed from the new stages.
    """
    async with services.db.session_scope() as session:
        result = await policies.upsert_policy(session, segment, body, actor_of(key))
        payload = policies.policy_view(result.policy, result.stages)
    return JSONResponse(payload, status_code=201 if result.created else 200)


@router.get("/preview", summary="What a sweep would send on a date; nothing is written")
async def preview(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("dunning:read"))],
    on: Annotated[date | None, Query(alias="date", description="YYYY-MM-DD; default today (UTC)")] = None,
) -> dict[str, Any]:
    """Per invoice that would reach a stage: its stage, template, tone and channel order.

    The sweep sends one message per debtor (``messages``), listing all of the debtor's due invoices.
    ``by_channel`` counts invoices by the first channel of their stage; delivery may still fall back.
    """
    day = on or services.clock.today()
    async with services.db.sessionmaker() as session:
        lines = await dunning.preview(session, day)
    return preview_view(day, lines)


def preview_view(day: date, lines: list[dunning.PreviewLine]) -> dict[str, Any]:
    debtors: dict[str, dict[str, Any]] = {}
    for line in lines:
        entry = debtors.setdefault(
            line.debtor_external_id,
            {"external_id": line.debtor_external_id, "name": line.debtor_name, "invoices": []},
        )
        entry["invoices"].append(
            {
                "external_id": line.invoice_external_id,
                "number": line.invoice_number,
                "stage": line.stage,
                "template": line.template,
                "tone": line.tone,
                "channels": list(line.channels),
            }
        )
    return {
        "date": day.isoformat(),
        "count": len(lines),
        "messages": len(debtors),
        "by_stage": dict(Counter(line.stage for line in lines)),
        "by_channel": dict(Counter(line.channels[0] for line in lines if line.channels)),
        "debtors": list(debtors.values()),
    }
