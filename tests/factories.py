"""Plain async factory functions. Each commits its own unit inside the test's outer transaction."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.access import service as access
from core.audit import Actor
from core.db import Database
from core.debtors import service as debtors
from core.debtors.schemas import DebtorIn
from core.dunning import distribution
from core.dunning.models import DunningAction
from core.invoices import intake
from core.invoices import service as invoices
from core.invoices.intake import NewInvoice
from core.invoices.models import InvoiceBatch
from core.messaging.models import Message, MessageStatus

TEST_ACTOR = Actor("test", "factory")
_seq = itertools.count(1)


async def api_key(db: Database, scopes: list[str], name: str = "test") -> str:
    async with db.session_scope() as s:
        token, _ = await access.create_key(s, name, scopes, TEST_ACTOR)
    return token


async def debtor(db: Database, external_id: str | None = None, **fields: Any) -> str:
    external_id = external_id or f"D-{next(_seq)}"
    data = {"name": f"Debtor {external_id}", "email": f"{external_id.lower()}@example.com", **fields}
    async with db.session_scope() as s:
        await debtors.upsert(s, external_id, DebtorIn(**data), TEST_ACTOR)
    return external_id


def invoice_row(debtor_external_id: str, **over: Any) -> NewInvoice:
    n = next(_seq)
    values: dict[str, Any] = {
        "external_id": f"INV-{n}",
        "debtor_external_id": debtor_external_id,
        "number": f"2026-{n:05d}",
        "issue_date": date(2026, 10, 1),
        "due_date": date(2026, 10, 31),
        "currency": "EUR",
        "amount_minor": 10_000,
        **over,
    }
    return NewInvoice(**values)


async def batch(
    db: Database, rows: list[NewInvoice], *, approve: bool = True, delivered: bool = True
) -> InvoiceBatch:
    """A batch; approved by default, and then its invoices already delivered to the debtors (their
    "issued" messages sent, the invoices open), as most tests want. ``delivered=False`` leaves the
    deliveries queued on the outbox."""
    async with db.session_scope() as s:
        result = await intake.create_batch(s, rows, actor=TEST_ACTOR, source="test", max_items=10_000)
        if approve:
            await invoices.approve(s, result.batch.id, actor=TEST_ACTOR)
            if delivered:
                await _mark_delivered(s, result.batch.id)
    return result.batch


async def _mark_delivered(session: AsyncSession, batch_id: uuid.UUID) -> None:
    issued = select(col(DunningAction.message_id)).where(
        col(DunningAction.sweep_id) == batch_id, col(DunningAction.stage_key) == distribution.ISSUED
    )
    sent_at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    await session.execute(
        update(Message)
        .where(col(Message.id).in_(issued))
        .values(status=MessageStatus.sent.value, channel="email", sent_at=sent_at, attempts=1)
    )
    await distribution.mark_issued(session, sent_at)


async def invoice(db: Database, debtor_external_id: str, *, approve: bool = True, **over: Any) -> str:
    row = invoice_row(debtor_external_id, **over)
    await batch(db, [row], approve=approve)
    return row.external_id


async def pay_each(db: Database, debtor: str, invoices: list[str], day: date, amount: str) -> None:
    """Book one payment of ``amount`` (EUR) per invoice, each in its own unit of work, on ``day``."""
    from core.ledger import service as ledger
    from core.ledger.schemas import PaymentIn

    for inv in invoices:
        async with db.session_scope() as s:
            data = PaymentIn(
                debtor_external_id=debtor, invoice_external_id=inv, currency="EUR", amount=amount
            )
            await ledger.record_payment(s, data, actor=TEST_ACTOR, today=day)


def days(n: int) -> timedelta:
    return timedelta(days=n)


def at(day: str) -> datetime:
    """06:00 UTC on an ISO date: when the morning sweep runs."""
    return datetime.fromisoformat(day).replace(hour=6, tzinfo=UTC)
