"""What waits for staff and was not posted yet, found by the worker (``post_staff_notifications``,
every minute): plans waiting for approval, refunds waiting for a second approver, open disputes.

The chat's ``notify_staff`` callback posts most of these at once; this is the path that does not
depend on it (an API call, a restart between commit and post). ``post_once`` claims each subject,
so whichever path comes first posts it and the other does nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlmodel import col

from bots.slack import notify
from bots.slack.seams import DisputeNotice
from bots.slack.services import plan_request, refund_view
from core.db import Database
from core.debtors.models import Debtor
from core.dunning.models import DunningState
from core.invoices.models import Invoice
from core.money import Money
from core.payments.models import RefundRequest, RefundStatus
from core.plans import service as plans
from core.staff import repository as posts

DISPUTE_WINDOW = timedelta(days=2)  # older disputes are not posted (no flood on first start)
LIMIT = 50


async def post_plan_approvals(client: AsyncWebClient, db: Database, channel: str, now: datetime) -> int:
    async with db.sessionmaker() as session:
        waiting = await plans.waiting_for_approval(session, limit=LIMIT)
        todo = []
        for view in waiting:
            if await posts.find(session, "plan", str(view.id)) is None:
                debtor = await session.get(Debtor, view.debtor_id)
                todo.append(plan_request(view, debtor.name if debtor else "?", now.date()))
    posted = 0
    for request in todo:
        posted += await notify.post_plan_approval(client, db, channel, request, now) is not None
    return posted


async def post_refund_requests(client: AsyncWebClient, db: Database, channel: str, now: datetime) -> int:
    async with db.sessionmaker() as session:
        stmt = (
            select(RefundRequest)
            .where(col(RefundRequest.status) == RefundStatus.requested.value)
            .order_by(col(RefundRequest.created_at))
            .limit(LIMIT)
        )
        todo = []
        for r in (await session.scalars(stmt)).all():
            if await posts.find(session, "refund", str(r.id)) is None:
                todo.append(await refund_view(session, r))
    posted = 0
    for request in todo:
        posted += await notify.post_refund_request(client, db, channel, request, now) is not None
    return posted


async def post_disputes(client: AsyncWebClient, db: Database, channel: str, now: datetime) -> int:
    async with db.sessionmaker() as session:
        stmt = (
            select(Invoice, col(Debtor.name), col(DunningState.dispute_reason))
            .join(DunningState, col(DunningState.invoice_id) == col(Invoice.id))
            .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
            .where(col(DunningState.disputed).is_(True), col(DunningState.updated_at) >= now - DISPUTE_WINDOW)
            .order_by(col(DunningState.updated_at))
            .limit(LIMIT)
        )
        todo = []
        for invoice, name, reason in (await session.execute(stmt)).all():
            if await posts.find(session, "dispute", invoice.external_id) is None:
                todo.append(
                    DisputeNotice(
                        invoice_external_id=invoice.external_id,
                        number=invoice.number,
                        debtor_name=name,
                        amount=Money(invoice.amount_minor, invoice.currency),
                        words=reason or "",
                    )
                )
    posted = 0
    for notice in todo:
        posted += await notify.post_dispute_thread(client, db, channel, notice, now) is not None
    return posted
