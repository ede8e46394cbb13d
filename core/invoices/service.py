"""Batch decisions (approve, reject) and invoice views."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import Actor
from core.base import utcnow
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.debtors.service import pause_state
from core.dunning import distribution
from core.dunning import service as dunning
from core.dunning.holds import hold_view
from core.dunning.models import DunningAction, DunningState
from core.errors import Conflict, NotFound
from core.invoices import repository as repo
from core.invoices.models import BatchStatus, Invoice, InvoiceBatch, InvoiceStatus
from core.ledger import credit
from core.ledger import repository as ledger_repo
from core.ledger import service as ledger
from core.ledger.models import EntryKind, LedgerEntry
from core.messaging.models import Message

DEFAULT_DISTRIBUTION_PER_HOUR = 1000


async def get_batch(session: AsyncSession, batch_id: uuid.UUID, *, for_update: bool = False) -> InvoiceBatch:
    batch = await repo.get_batch(session, batch_id, for_update=for_update)
    if batch is None:
        raise NotFound(f"batch {batch_id} does not exist", "batch_not_found")
    return batch


def _already_decided(batch: InvoiceBatch) -> Conflict:
    when = batch.decided_at.isoformat(timespec="seconds") if batch.decided_at else "earlier"
    return Conflict(f"batch was already {batch.status} by {batch.decided_by} at {when}", "already_decided")


async def approve(
    session: AsyncSession,
    batch_id: uuid.UUID,
    *,
    actor: Actor,
    note: str | None = None,
    distribution_per_hour: int = DEFAULT_DISTRIBUTION_PER_HOUR,
) -> InvoiceBatch:
    """Book every invoice of the batch on the ledger and queue its throttled distribution.

    Twice (or by two approvers at once) is one decision.
    """
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status != BatchStatus.pending_approval:
        raise _already_decided(batch)
    now = utcnow()
    rows = await repo.batch_rows(session, batch_id)
    await repo.set_batch_status(session, batch_id, InvoiceStatus.approved, now)
    await ledger.post(
        session,
        [
            ledger.entry_row(
                kind=EntryKind.invoice,
                debtor_id=r.debtor_id,
                amount_minor=int(r.amount_minor),
                currency=r.currency,
                effective_date=r.issue_date,
                created_by=actor.label,
                invoice_id=r.id,
            )
            for r in rows
        ],
    )
    _decide(batch, BatchStatus.approved, actor, note, now)
    await session.flush()
    await audit.record(
        session,
        actor,
        "batch.approved",
        "invoice_batch",
        batch.id,
        before={"status": BatchStatus.pending_approval.value},
        after={"status": batch.status, "note": note},
    )
    await audit.record_many(
        session,
        actor,
        "invoice.approved",
        "invoice",
        ((r.external_id, {"status": r.status}, {"status": InvoiceStatus.approved.value}) for r in rows),
    )
    await dunning.schedule_batch(session, batch_id, now)
    await distribution.schedule_delivery(session, batch_id, now, distribution_per_hour)
    # Money the debtors already have on account (overpayments) settles the new invoices.
    await credit.apply_credit(session, {r.debtor_id for r in rows}, actor=actor, today=now.date())
    return batch


async def reject(
    session: AsyncSession, batch_id: uuid.UUID, *, actor: Actor, note: str | None = None
) -> InvoiceBatch:
    """Drop the batch's invoices (never booked, never sent) so that corrected ones can be sent again.

    The audit trail keeps what they were.
    """
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status != BatchStatus.pending_approval:
        raise _already_decided(batch)
    now = utcnow()
    rows = await repo.batch_rows(session, batch_id)
    await session.execute(delete(Invoice).where(Invoice.batch_id == batch_id))  # type: ignore[arg-type]
    _decide(batch, BatchStatus.rejected, actor, note, now)
    await session.flush()
    await audit.record(
        session,
        actor,
        "batch.rejected",
        "invoice_batch",
        batch.id,
        before={"status": BatchStatus.pending_approval.value},
        after={"status": batch.status, "note": note},
    )
    await audit.record_many(
        session,
        actor,
        "invoice.rejected",
        "invoice",
        ((r.external_id, {"status": r.status, "batch_id": str(batch_id)}, None) for r in rows),
    )
    return batch


def _decide(batch: InvoiceBatch, status: BatchStatus, actor: Actor, note: str | None, now: object) -> None:
    batch.status = status
    batch.decided_by = actor.label
    batch.decided_at = now  # type: ignore[assignment]
    batch.decision_note = note


@dataclass
class InvoiceView:
    invoice: Invoice
    debtor: Debtor
    open_minor: int
    fees_minor: int
    entries: list[LedgerEntry]
    overdue: bool
    days_overdue: int
    pause: dict[str, object]
    dunning: dict[str, object] | None
    messages: list[dict[str, object]]


async def view(session: AsyncSession, external_id: str, today: date) -> InvoiceView:
    invoice = await repo.get_by_external_id(session, external_id)
    if invoice is None:
        raise NotFound(f"invoice {external_id!r} does not exist", "invoice_not_found")
    debtor = await debtor_repo.get_by_id(session, invoice.debtor_id)
    entries = list(await ledger_repo.entries_for_invoice(session, invoice.id))
    open_minor = sum(e.amount_minor for e in entries)
    fees = sum(e.amount_minor for e in entries if e.kind in (EntryKind.fee, EntryKind.interest))
    overdue = open_minor > 0 and invoice.due_date < today
    return InvoiceView(
        invoice=invoice,
        debtor=debtor,
        open_minor=open_minor,
        fees_minor=fees,
        entries=entries,
        overdue=overdue,
        days_overdue=(today - invoice.due_date).days if overdue else 0,
        pause=pause_state(debtor),
        dunning=await _dunning(session, invoice),
        messages=await _messages(session, invoice),
    )


async def _dunning(session: AsyncSession, invoice: Invoice) -> dict[str, object] | None:
    state = await session.get(DunningState, invoice.id)
    return hold_view(state) if state is not None else None


async def _messages(session: AsyncSession, invoice: Invoice) -> list[dict[str, object]]:
    """The outbox messages that carried this invoice, oldest first, with their delivery status."""
    stmt = (
        select(col(DunningAction.stage_key), Message)
        .join(Message, col(Message.id) == col(DunningAction.message_id))
        .where(col(DunningAction.due_date) == invoice.due_date, col(DunningAction.invoice_id) == invoice.id)
        .order_by(col(Message.created_at))
    )
    return [
        {
            "id": str(m.id),
            "stage": stage,
            "template": m.template,
            "channel": m.channel,
            "status": m.status,
            "attempts": m.attempts,
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            "error": m.error,
        }
        for stage, m in (await session.execute(stmt)).all()
    ]
