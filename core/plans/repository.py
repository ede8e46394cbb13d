"""Payment-plan queries: invoices a plan may cover, plans, their invoices and instalments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, cast, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.dunning.models import DunningState
from core.invoices.models import Invoice, InvoiceStatus
from core.ledger.models import LedgerEntry
from core.plans.models import PaymentPlan, PlanInstalment, PlanInvoice, PlanState

# A plan covers invoices the debtor still owes and that no collection agency holds.
PLANNABLE = (InvoiceStatus.approved.value, InvoiceStatus.open.value)


def _open_sums(invoice_filter: Any) -> Any:
    return (
        select(
            col(LedgerEntry.invoice_id).label("invoice_id"),
            cast(func.sum(col(LedgerEntry.amount_minor)), BigInteger).label("open_minor"),
        )
        .where(invoice_filter)
        .group_by(col(LedgerEntry.invoice_id))
        .subquery("sums")
    )


def in_active_plan(invoice_id: Any) -> Any:
    """True while an active plan covers the invoice (through the partial index on plan_invoices)."""
    return exists().where(col(PlanInvoice.invoice_id) == invoice_id, col(PlanInvoice.active))


async def candidates(
    session: AsyncSession,
    debtor_id: uuid.UUID,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    external_ids: Sequence[str] | None = None,
) -> list[Any]:
    """The debtor's invoices (the named ones, else all it still owes) with status, open amount,
    dispute and whether an active plan covers them; oldest due first."""
    inv = Invoice
    where = [col(inv.debtor_id) == debtor_id]
    if ids is not None:
        where.append(col(inv.id).in_(list(ids)))
    elif external_ids is not None:
        where.append(col(inv.external_id).in_(list(external_ids)))
    else:
        where.append(col(inv.status).in_(PLANNABLE))
    sums = _open_sums(col(LedgerEntry.debtor_id) == debtor_id)
    stmt = (
        select(
            col(inv.id),
            col(inv.external_id),
            col(inv.status),
            col(inv.currency),
            col(inv.due_date),
            func.coalesce(sums.c.open_minor, 0).label("open_minor"),
            func.coalesce(col(DunningState.disputed), False).label("disputed"),
            in_active_plan(inv.id).label("planned"),
        )
        .outerjoin(sums, sums.c.invoice_id == col(inv.id))
        .outerjoin(DunningState, col(DunningState.invoice_id) == col(inv.id))
        .where(*where)
        .order_by(col(inv.due_date), col(inv.number))
    )
    return list((await session.execute(stmt)).all())


async def covered_open(session: AsyncSession, plan_id: uuid.UUID) -> int:
    """What is still open on the invoices the plan covers."""
    covered = select(col(PlanInvoice.invoice_id)).where(col(PlanInvoice.plan_id) == plan_id)
    stmt = select(cast(func.coalesce(func.sum(col(LedgerEntry.amount_minor)), 0), BigInteger)).where(
        col(LedgerEntry.invoice_id).in_(covered)
    )
    return int((await session.execute(stmt)).scalar_one())


async def covered_invoices(session: AsyncSession, plan_id: uuid.UUID) -> list[Any]:
    """(id, external_id, number, status) of the plan's invoices, oldest due first."""
    stmt = (
        select(col(Invoice.id), col(Invoice.external_id), col(Invoice.number), col(Invoice.status))
        .join(PlanInvoice, col(PlanInvoice.invoice_id) == col(Invoice.id))
        .where(col(PlanInvoice.plan_id) == plan_id)
        .order_by(col(Invoice.due_date), col(Invoice.number))
    )
    return list((await session.execute(stmt)).all())


async def get_plan(
    session: AsyncSession, plan_id: uuid.UUID, *, for_update: bool = False
) -> PaymentPlan | None:
    stmt = select(PaymentPlan).where(col(PaymentPlan.id) == plan_id).execution_options(populate_existing=True)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def plans_of(session: AsyncSession, debtor_id: uuid.UUID, states: Sequence[str]) -> list[PaymentPlan]:
    stmt = (
        select(PaymentPlan)
        .where(col(PaymentPlan.debtor_id) == debtor_id, col(PaymentPlan.state).in_(list(states)))
        .order_by(col(PaymentPlan.created_at).desc())
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def plan_ids_in_state(session: AsyncSession, state: str, limit: int) -> list[uuid.UUID]:
    stmt = (
        select(col(PaymentPlan.id))
        .where(col(PaymentPlan.state) == state)
        .order_by(col(PaymentPlan.created_at))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())


async def instalments(session: AsyncSession, plan_id: uuid.UUID) -> list[PlanInstalment]:
    stmt = (
        select(PlanInstalment)
        .where(col(PlanInstalment.plan_id) == plan_id)
        .order_by(col(PlanInstalment.number))
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def set_covered_active(session: AsyncSession, plan_ids: Sequence[uuid.UUID], active: bool) -> None:
    if plan_ids:
        await session.execute(
            update(PlanInvoice)
            .where(col(PlanInvoice.plan_id).in_(list(plan_ids)))
            .values(active=active)
            .execution_options(synchronize_session=False)
        )


def in_plan_query(debtor_id: Any) -> Any:
    """(currency, sum) of the ledger entries of the invoices the debtor's active plan covers."""
    covered = (
        select(col(PlanInvoice.invoice_id))
        .join(PaymentPlan, col(PaymentPlan.id) == col(PlanInvoice.plan_id))
        .where(col(PaymentPlan.debtor_id) == debtor_id, col(PaymentPlan.state) == PlanState.active.value)
    )
    return (
        select(col(LedgerEntry.currency), cast(func.sum(col(LedgerEntry.amount_minor)), BigInteger))
        .where(col(LedgerEntry.debtor_id) == debtor_id, col(LedgerEntry.invoice_id).in_(covered))
        .group_by(col(LedgerEntry.currency))
    )


async def in_plan_by_currency(session: AsyncSession, debtor_id: uuid.UUID) -> dict[str, int]:
    """What is still open, per currency, on invoices the debtor's active plan covers."""
    rows = (await session.execute(in_plan_query(debtor_id))).all()
    return {cur: max(int(total or 0), 0) for cur, total in rows}
