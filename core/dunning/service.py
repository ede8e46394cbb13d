"""Dunning set-up and read-outs: states for newly booked invoices, and the dry-run preview."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from core.base import table_of
from core.debtors.models import Debtor
from core.dunning.models import DunningPolicy, DunningStage, DunningState
from core.dunning.sweep import due_query
from core.invoices.models import Invoice
from core.sqlfuncs import add_days

DEFAULT_SEGMENT = "default"


async def schedule_batch(session: AsyncSession, batch_id: uuid.UUID, now: datetime) -> int:
    """Give each invoice of a just-approved batch its dunning state (one INSERT … SELECT).

    The policy is the one of the debtor's segment, else the default policy. The first action falls
    on the due date plus the first stage's offset; an invoice booked late catches up at the next sweep.
    """
    own = aliased(DunningPolicy)
    default = aliased(DunningPolicy)
    first = aliased(DunningStage)
    policy_id = func.coalesce(col(own.id), col(default.id))
    rows = (
        select(
            col(Invoice.id),
            col(Invoice.debtor_id),
            policy_id,
            col(Invoice.due_date),
            col(Invoice.currency),
            col(Invoice.external_id),
            col(Invoice.number),
            literal(-1),
            add_days(Invoice.due_date, first.offset_days),
            literal(now),
        )
        .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
        .outerjoin(own, col(own.segment) == col(Debtor.segment))
        .join(default, col(default.segment) == DEFAULT_SEGMENT)
        .join(first, and_(col(first.policy_id) == policy_id, col(first.position) == 0))
        .where(col(Invoice.batch_id) == batch_id)
    )
    columns = [
        "invoice_id",
        "debtor_id",
        "policy_id",
        "due_date",
        "currency",
        "invoice_external_id",
        "invoice_number",
        "stage_position",
        "next_action_on",
        "updated_at",
    ]
    result = await session.execute(insert(table_of(DunningState)).from_select(columns, rows))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class PreviewLine:
    debtor_external_id: str
    debtor_name: str
    invoice_external_id: str
    invoice_number: str
    stage: str
    template: str
    tone: str
    channels: list[str]


async def preview(session: AsyncSession, on: date) -> list[PreviewLine]:
    """What a sweep on ``on`` would decide, by the very query the sweep runs; nothing is written."""
    due = due_query(on).subquery("due")
    stg = aliased(DunningStage)
    stmt = (
        select(
            col(Debtor.external_id),
            col(Debtor.name),
            col(Invoice.external_id),
            col(Invoice.number),
            col(stg.key),
            col(stg.template),
            col(stg.tone),
            col(stg.channels),
        )
        .select_from(due)
        .join(stg, and_(col(stg.policy_id) == due.c.policy_id, col(stg.position) == due.c.position))
        .join(Invoice, col(Invoice.id) == due.c.invoice_id)
        .join(Debtor, col(Debtor.id) == due.c.debtor_id)
        .order_by(col(Debtor.external_id), col(Invoice.due_date), col(Invoice.number))
    )
    return [PreviewLine(*row) for row in (await session.execute(stmt)).all()]
