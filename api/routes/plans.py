"""REST v1: payment plans (propose for a debtor, accept, staff decision, withdraw) and plan policies."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.deps import ServicesDep, actor_of, require
from api.routes.debtors import ExternalIdPath
from core.access.models import ApiKey
from core.conversation.decisions import tell_plan_decision
from core.debtors import service as debtors
from core.dunning.schemas import SEGMENT_PATTERN
from core.money import Money, parse_minor
from core.plans import policy as plan_policy
from core.plans import service as plans
from core.plans.schemas import (
    Counter,
    DecideIn,
    PlanDecision,
    PlanPolicyIn,
    PlanProposalIn,
    PlanView,
)

router = APIRouter(tags=["payment plans"])
SegmentPath = Annotated[str, Path(min_length=1, max_length=64, pattern=SEGMENT_PATTERN)]


def _money(minor: int, currency: str) -> dict[str, str]:
    return Money(minor, currency).as_api()


def plan_json(view: PlanView) -> dict[str, Any]:
    return {
        "id": str(view.id),
        "debtor_external_id": view.debtor_external_id,
        "state": view.state,
        "outcome": view.outcome,
        "reason_code": view.reason_code,
        "total": _money(view.total_minor, view.currency),
        "down_payment": _money(view.down_payment_minor, view.currency),
        "paid": _money(view.paid_minor, view.currency),
        "interval": view.interval,
        "invoices": view.invoices,
        "instalments": [
            {
                "number": i.number,
                "due_on": i.due_on.isoformat(),
                "amount": _money(i.amount_minor, view.currency),
                "paid": _money(i.paid_minor, view.currency),
                "status": i.status,
            }
            for i in view.instalments
        ],
        "created_by": view.created_by,
        "decided_by": view.decided_by,
    }


def decision_json(d: PlanDecision) -> dict[str, Any]:
    return {
        "outcome": d.outcome,
        "plan_id": str(d.plan_id) if d.plan_id else None,
        "state": d.state,
        "reason_code": d.reason_code,
        "total": _money(d.total_minor, d.currency),
        "down_payment": _money(d.down_payment_minor, d.currency),
        "schedule": [
            {"number": i.number, "due_on": i.due_on.isoformat(), "amount": _money(i.amount_minor, d.currency)}
            for i in d.schedule
        ],
    }


@router.post("/debtors/{external_id}/plans", summary="Propose a payment plan on behalf of a debtor")
async def propose_plan(
    external_id: ExternalIdPath,
    body: PlanProposalIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("plans:write"))],
) -> Response:
    """Judged against the plan policy of the debtor's segment: ``accepted`` (within policy),
    ``counter`` (the nearest plan within it), ``needs_approval`` (to staff) or ``refused``. Either
    of the first two is an offer (state ``proposed``) that ``/plans/{id}/accept`` turns active."""

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        debtor = await debtors.get(session, external_id, for_update=True)
        monthly = (
            parse_minor(body.monthly_amount, body.currency)
            if body.monthly_amount is not None and body.currency
            else None
        )
        decision = await plans.propose(
            session,
            debtor_id=debtor.id,
            invoice_ids=None,
            invoice_external_ids=body.invoices,
            instalments=body.instalments,
            monthly_amount_minor=monthly,
            monthly_currency=body.currency if monthly is not None else None,
            actor=actor_of(key),
            today=services.clock.today(),
        )
        return (201 if decision.plan_id else 200), decision_json(decision)

    return await idempotency.run(request, services, key, work)


PlanIdPath = Annotated[uuid.UUID, Path(description="the plan's id")]


@router.get("/plans", summary="Payment plans waiting for a staff decision, oldest first")
async def pending_plans(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("plans:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        found = await plans.waiting_for_approval(session)
    return {"plans": [plan_json(v) for v in found]}


@router.get("/plans/{plan_id}", summary="A payment plan with its instalments and their status")
async def get_plan(
    plan_id: PlanIdPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("plans:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        return plan_json(await plans.plan_view(session, plan_id))


@router.post("/plans/{plan_id}/accept", summary="The debtor's yes: the plan becomes active")
async def accept_plan(
    plan_id: PlanIdPath,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("plans:write"))],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        clock = services.clock
        view = await plans.accept(session, plan_id, actor=actor_of(key), today=clock.today(), now=clock.now())
        return 200, plan_json(view)

    return await idempotency.run(request, services, key, work)


@router.post("/plans/{plan_id}/decide", summary="Staff approve or decline a plan outside policy")
async def decide_plan(
    plan_id: PlanIdPath,
    body: DecideIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("plans:approve"))],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        counter = None
        if body.counter is not None:
            c = body.counter
            monthly = parse_minor(c.monthly_amount, c.currency) if c.monthly_amount and c.currency else None
            counter = Counter(instalments=c.instalments, monthly_amount_minor=monthly)
        view = await plans.decide(
            session,
            plan_id,
            approve=body.approve,
            actor=actor_of(key),
            counter=counter,
            today=services.clock.today(),
            note=body.note,
        )
        await tell_plan_decision(session, plan_id, staff=actor_of(key), now=services.clock.now())
        return 200, plan_json(view)

    return await idempotency.run(request, services, key, work)


@router.post("/plans/{plan_id}/withdraw", summary="Withdraw an offer or end an active plan")
async def withdraw_plan(
    plan_id: PlanIdPath,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("plans:write"))],
) -> Response:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        view = await plans.withdraw(session, plan_id, actor=actor_of(key), today=services.clock.today())
        return 200, plan_json(view)

    return await idempotency.run(request, services, key, work)


@router.get("/plan-policies", summary="All plan policies, by segment")
async def list_plan_policies(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("plans:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        found = await plan_policy.list_policies(session)
    return {"policies": [plan_policy.policy_view(p) for p in found]}


@router.get("/plan-policies/{segment}", summary="The plan policy of one segment")
async def get_plan_policy(
    segment: SegmentPath,
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("plans:read"))],
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        return plan_policy.policy_view(await plan_policy.get_policy(session, segment))


@router.put("/plan-policies/{segment}", summary="Create or replace the plan policy of a segment")
async def put_plan_policy(
    segment: SegmentPath,
    body: PlanPolicyIn,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("plans:approve"))],
) -> JSONResponse:
    """A full replacement (201 when created, 200 when replaced). Plans already made keep their terms."""
    async with services.db.session_scope() as session:
        policy, created = await plan_policy.upsert_policy(session, segment, body, actor_of(key))
        payload = plan_policy.policy_view(policy)
    return JSONResponse(payload, status_code=201 if created else 200)
