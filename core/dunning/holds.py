"""What holds an invoice's dunning: a pause, a promise to pay, a dispute. Each change is audited.

- A pause has a reason and an optional last day; without one it lasts until resumed.
- A promise holds dunning until the promised date plus the policy's grace days. If the invoice is
  still open then, ``break_promises`` marks it broken and dunning resumes at the next stage.
- A dispute holds the invoice until it is resolved.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import SYSTEM, Actor
from core.base import utcnow
from core.bulk import among, chunk_size, chunks
from core.dunning.models import DunningPolicy, DunningState, Promise, PromiseStatus
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.events.models import EventType
from core.events.service import emit_many
from core.invoices import repository as invoice_repo
from core.invoices.models import PAYABLE_STATUSES, Invoice
from core.ledger import repository as ledger_repo
from core.money import Money
from core.sqlfuncs import add_days


async def state_of(session: AsyncSession, external_id: str) -> tuple[Invoice, DunningState]:
    invoice = await invoice_repo.get_by_external_id(session, external_id)
    if invoice is None:
        raise NotFound(f"invoice {external_id!r} does not exist", "invoice_not_found")
    stmt = select(DunningState).where(col(DunningState.invoice_id) == invoice.id).with_for_update()
    state = (await session.scalars(stmt)).first()
    if state is None:
        raise Conflict(f"invoice {external_id!r} is not booked yet, so it has no dunning", "not_in_dunning")
    return invoice, state


def hold_view(state: DunningState) -> dict[str, Any]:
    return {
        "stage": state.stage_key,
        "next_action_on": state.next_action_on.isoformat() if state.next_action_on else None,
        "paused": state.pause_reason is not None,
        "paused_until": state.paused_until.isoformat() if state.paused_until else None,
        "pause_reason": state.pause_reason,
        "disputed": state.disputed,
        "dispute_reason": state.dispute_reason,
        "promise_date": state.promise_date.isoformat() if state.promise_date else None,
    }


async def _audited(
    session: AsyncSession,
    actor: Actor,
    action: str,
    invoice: Invoice,
    state: DunningState,
    before: dict[str, Any],
) -> DunningState:
    state.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session, actor, action, "invoice", invoice.external_id, before=before, after=hold_view(state)
    )
    return state


async def pause(
    session: AsyncSession, external_id: str, *, reason: str, until: date | None, today: date, actor: Actor
) -> DunningState:
    if until is not None and until < today:
        raise InvalidInput(
            "a pause cannot end in the past",
            "invalid_pause",
            [FieldError(("until",), f"until must be {today.isoformat()} or later", "date_in_past")],
        )
    invoice, state = await state_of(session, external_id)
    before = hold_view(state)
    state.pause_reason, state.paused_until = reason, until
    return await _audited(session, actor, "invoice.paused", invoice, state, before)


async def resume(session: AsyncSession, external_id: str, *, actor: Actor) -> DunningState:
    invoice, state = await state_of(session, external_id)
    if state.pause_reason is None:
        return state
    before = hold_view(state)
    state.pause_reason, state.paused_until = None, None
    return await _audited(session, actor, "invoice.resumed", invoice, state, before)


async def promise(
    session: AsyncSession,
    external_id: str,
    *,
    on: date,
    amount_minor: int | None,
    today: date,
    actor: Actor,
    source: str,
) -> Promise:
    """Record a promise to pay on ``on``; it must fall within the policy's maximum."""
    invoice, state = await state_of(session, external_id)
    if invoice.status not in PAYABLE_STATUSES:
        raise Conflict(f"invoice {external_id!r} is {invoice.status}; nothing to promise", "not_payable")
    policy = await session.get(DunningPolicy, state.policy_id)
    assert policy is not None
    latest = date.fromordinal(today.toordinal() + policy.promise_max_days)
    if on < today or on > latest:
        raise InvalidInput(
            "the promised date is outside what the policy allows",
            "promise_out_of_range",
            [
                FieldError(
                    ("date",),
                    f"choose a date from {today.isoformat()} to {latest.isoformat()}",
                    "out_of_range",
                )
            ],
        )
    open_minor = await ledger_repo.open_amount(session, invoice.id)
    if amount_minor is not None and not 0 < amount_minor <= open_minor:
        raise InvalidInput(
            "the promised amount must be more than zero and at most the open amount",
            "promise_amount",
            [
                FieldError(
                    ("amount",), f"at most {Money(open_minor, invoice.currency).decimal_str}", "out_of_range"
                )
            ],
        )
    await session.execute(
        update(Promise)
        .where(col(Promise.invoice_id) == invoice.id, col(Promise.status) == PromiseStatus.active)
        .values(status=PromiseStatus.withdrawn, resolved_at=utcnow())
    )
    made = Promise(
        invoice_id=invoice.id,
        debtor_id=invoice.debtor_id,
        promised_on=on,
        amount_minor=amount_minor,
        source=source,
        created_by=actor.label,
    )
    session.add(made)
    before = hold_view(state)
    state.promise_date, state.promise_minor = on, amount_minor
    await _audited(session, actor, "invoice.promised", invoice, state, before)
    return made


async def dispute(session: AsyncSession, external_id: str, *, reason: str, actor: Actor) -> DunningState:
    invoice, state = await state_of(session, external_id)
    if state.disputed:
        raise Conflict(
            f"invoice {external_id!r} is already disputed: {state.dispute_reason}", "already_disputed"
        )
    before = hold_view(state)
    state.disputed, state.dispute_reason = True, reason
    return await _audited(session, actor, "invoice.disputed", invoice, state, before)


async def resolve_dispute(
    session: AsyncSession, external_id: str, *, note: str, actor: Actor
) -> DunningState:
    """End the dispute; dunning goes on where it stood (a credit note settles it instead, if due)."""
    invoice, state = await state_of(session, external_id)
    if not state.disputed:
        raise Conflict(f"invoice {external_id!r} is not disputed", "not_disputed")
    before = hold_view(state)
    state.disputed, state.dispute_reason = False, None
    await _audited(session, actor, "invoice.dispute_resolved", invoice, state, before)
    await audit.record(
        session, actor, "dispute.resolution", "invoice", invoice.external_id, after={"note": note}
    )
    return state


async def break_promises(session: AsyncSession, today: date) -> list[str]:
    """Mark promises broken whose date plus grace has passed on an invoice still open.

    Set-based; returns the invoice external ids, for the staff notification. Dunning resumes by
    itself: the sweep only holds invoices under a live promise.
    """
    s, pol, p = DunningState, DunningPolicy, Promise
    expired = (
        select(col(s.invoice_id))
        .join(pol, col(pol.id) == col(s.policy_id))
        .join(Invoice, col(Invoice.id) == col(s.invoice_id))
        .where(
            col(s.promise_date).is_not(None),
            add_days(s.promise_date, pol.promise_grace_days) < today,
            col(Invoice.status).in_([st.value for st in PAYABLE_STATUSES]),
        )
    )
    broken_ids = list((await session.execute(expired)).scalars().all())
    if not broken_ids:
        return []
    now = utcnow()
    await session.execute(
        update(p)
        .where(col(p.invoice_id).in_(broken_ids), col(p.status) == PromiseStatus.active)
        .values(status=PromiseStatus.broken, resolved_at=now)
    )
    await session.execute(
        update(s)
        .where(col(s.invoice_id).in_(broken_ids))
        .values(promise_date=None, promise_minor=None, updated_at=now)
    )
    rows = await session.execute(select(col(Invoice.external_id)).where(col(Invoice.id).in_(broken_ids)))
    external_ids = sorted(rows.scalars().all())
    await audit.record_many(
        session,
        SYSTEM,
        "promise.broken",
        "invoice",
        ((ext, None, {"on": today.isoformat()}) for ext in external_ids),
    )
    await emit_many(
        session,
        EventType.promise_broken,
        ((ext, {"invoice": ext, "broken_on": today.isoformat()}) for ext in external_ids),
    )
    return external_ids


async def keep_promises(session: AsyncSession, invoice_ids: Sequence[uuid.UUID]) -> None:
    """Paid invoices keep their active promises (in chunks: a bank statement can settle thousands)."""
    ids = list(invoice_ids)
    now = utcnow()
    for part in chunks(ids, chunk_size(session)):
        await session.execute(
            update(Promise)
            .where(
                and_(
                    among(session, col(Promise.invoice_id), part),
                    col(Promise.status) == PromiseStatus.active,
                )
            )
            .values(status=PromiseStatus.kept, resolved_at=now)
        )
