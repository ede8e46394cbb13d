"""Payment plans: propose within the segment's policy, staff decisions, acceptance, withdrawal.

Lifecycle::

    propose ─▶ proposed ──────────────accept──▶ active ─▶ completed
           └─▶ pending_approval ─decide(yes)─▶ approved_by_staff ─accept─▶ active ─▶ breached
                                └decide(no)──▶ declined
    withdraw: any open offer, or an active plan ─▶ withdrawn

Staff approval does not activate a plan: the debtor still says yes (``accept``), as with any offer.
A new proposal replaces the debtor's open offers (they become ``withdrawn``). A debtor has at most
one active plan. While a plan is active, the dunning sweep skips its invoices; when it ends
(breached, withdrawn), they come due again at the next stage. ``sweep_instalments``
(core/plans/sweep.py) marks payments, reminds, breaks and completes plans.

Services only flush; the caller commits. Every state change is audited; ``actor`` is an
``Actor`` or its label (``"debtor:D-1"``, ``"staff:U123"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import Actor
from core.base import table_of, utcnow
from core.bulk import insert_rows
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.dunning.models import DunningState, Promise, PromiseStatus
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.events.service import emit_many
from core.messaging.models import Message, MessageStatus
from core.money import Money
from core.plans import repository as repo
from core.plans import terms
from core.plans.models import (
    InstalmentStatus,
    PaymentPlan,
    PlanEvent,
    PlanInstalment,
    PlanInvoice,
    PlanState,
)
from core.plans.policy import limits_of, policy_for
from core.plans.schemas import Counter, Instalment, InstalmentView, PlanDecision, PlanView

ActorLike = Actor | str
CONFIRMATION_KIND = "plan_confirmation"


def as_actor(actor: ActorLike) -> Actor:
    if isinstance(actor, Actor):
        return actor
    kind, _, ident = actor.partition(":")
    return Actor(kind, ident) if ident else Actor("user", kind)


def _fields(*names: str, message: str, code: str) -> list[FieldError]:
    return [FieldError((n,), message, code) for n in names]


def _wanted(
    instalments: int | None, monthly_amount_minor: int | None, rest: int
) -> int:  # how many instalments the debtor asks for
    if monthly_amount_minor is not None:
        return terms.count_for_amount(rest, monthly_amount_minor)
    assert instalments is not None
    return instalments


def _check_terms(instalments: int | None, monthly_amount_minor: int | None) -> None:
    if (instalments is None) == (monthly_amount_minor is None):
        raise InvalidInput(
            "give exactly one of instalments and monthly_amount",
            "one_of",
            _fields("instalments", "monthly_amount", message="give exactly one of the two", code="one_of"),
        )
    if instalments is not None and not 1 <= instalments <= terms.MAX_INSTALMENTS:
        raise InvalidInput(
            "instalments out of range",
            "invalid_instalments",
            _fields("instalments", message=f"from 1 to {terms.MAX_INSTALMENTS}", code="out_of_range"),
        )
    if monthly_amount_minor is not None and monthly_amount_minor <= 0:
        raise InvalidInput(
            "the monthly amount must be more than zero",
            "invalid_amount",
            _fields("monthly_amount", message="must be more than zero", code="out_of_range"),
        )


def _schedule_json(items: Sequence[Instalment]) -> list[dict[str, Any]]:
    return [
        {"number": i.number, "due_on": i.due_on.isoformat(), "amount_minor": i.amount_minor} for i in items
    ]


def _schedule_of(plan: PaymentPlan) -> list[Instalment]:
    return [
        Instalment(int(i["number"]), date.fromisoformat(i["due_on"]), int(i["amount_minor"]))
        for i in plan.schedule
    ]


def _summary(plan: PaymentPlan) -> dict[str, Any]:
    return {
        "debtor_id": str(plan.debtor_id),
        "state": plan.state,
        "outcome": plan.outcome,
        "reason_code": plan.reason_code,
        "currency": plan.currency,
        "total": Money(plan.total_minor, plan.currency).decimal_str,
        "down_payment": Money(plan.down_payment_minor, plan.currency).decimal_str,
        "instalments": plan.instalment_count,
        "interval": plan.interval,
        "starts_on": plan.starts_on.isoformat(),
    }


async def _audit(
    session: AsyncSession, actor: Actor, action: str, plan: PaymentPlan, before: dict[str, Any] | None
) -> None:
    await audit.record(session, actor, action, "payment_plan", plan.id, before=before, after=_summary(plan))


async def _event(
    session: AsyncSession, event: PlanEvent, plan: PaymentPlan, debtor: Debtor | None = None, **extra: Any
) -> None:
    if debtor is None:
        debtor = await debtor_repo.get_by_id(session, plan.debtor_id)
    payload = {
        "plan_id": str(plan.id),
        "debtor": debtor.external_id,
        "state": plan.state,
        "total": Money(plan.total_minor, plan.currency).decimal_str,
        "currency": plan.currency,
        **extra,
    }
    await emit_many(session, event.value, [(str(plan.id), payload)])


# --------------------------------------------------------------------------- propose


async def propose(
    session: AsyncSession,
    *,
    debtor_id: uuid.UUID,
    invoice_ids: list[uuid.UUID] | None,
    instalments: int | None,
    monthly_amount_minor: int | None,
    actor: ActorLike,
    today: date,
    invoice_external_ids: list[str] | None = None,
    monthly_currency: str | None = None,
) -> PlanDecision:
    """Judge a debtor's request against the policy of their segment and record the offer.

    ``invoice_ids`` (or, from the API, ``invoice_external_ids``) names the invoices; None: every
    invoice the debtor still owes, in the currency of the oldest. ``monthly_amount_minor`` is in that
    currency (``monthly_currency``, when given, must be it). Exactly one of ``instalments`` and
    ``monthly_amount_minor``.
    """
    who = as_actor(actor)
    _check_terms(instalments, monthly_amount_minor)
    await debtor_repo.lock(session, debtor_id)  # one proposal at a time per debtor
    debtor = await session.get(Debtor, debtor_id)
    if debtor is None:
        raise NotFound(f"debtor {debtor_id} does not exist", "debtor_not_found")
    rows = await _choose_invoices(session, debtor_id, invoice_ids, invoice_external_ids)

    if await repo.plans_of(session, debtor_id, [PlanState.active.value]):
        raise Conflict("this debtor already has an active payment plan", "plan_active")
    await _withdraw_offers(session, debtor_id, who)

    policy = await policy_for(session, debtor.segment)
    currency = rows[0].currency if rows else policy.currency
    if monthly_currency is not None and monthly_amount_minor is not None and monthly_currency != currency:
        raise InvalidInput(
            f"the invoices are in {currency}",
            "currency_mismatch",
            _fields(
                "currency", message=f"the monthly amount must be in {currency}", code="currency_mismatch"
            ),
        )
    total = sum(int(r.open_minor) for r in rows)
    down = terms.down_payment(policy, total, currency)
    rest = total - down
    if total <= 0 or rest <= 0:
        reason = "nothing_to_plan" if total <= 0 else "down_payment_covers_all"
        await audit.record(
            session, who, "plan.refused", "debtor", debtor.external_id, after={"reason": reason}
        )
        return PlanDecision("refused", None, currency, total, down, [], reason)

    wanted = _wanted(instalments, monthly_amount_minor, rest)
    verdict = terms.judge(policy, today, total, rest, currency, wanted)
    schedule = terms.schedule(today, policy.interval, down, rest, verdict.instalments)
    if verdict.outcome == "refused":
        await audit.record(
            session,
            who,
            "plan.refused",
            "debtor",
            debtor.external_id,
            after={
                "reason": verdict.reason_code,
                "instalments": wanted,
                "total": Money(total, currency).decimal_str,
            },
        )
        return PlanDecision("refused", None, currency, total, down, schedule, verdict.reason_code)

    state = PlanState.pending_approval if verdict.outcome == "needs_approval" else PlanState.proposed
    plan = PaymentPlan(
        debtor_id=debtor_id,
        segment=policy.segment,
        state=state.value,
        outcome=verdict.outcome,
        reason_code=verdict.reason_code,
        currency=currency,
        total_minor=total,
        down_payment_minor=down,
        instalment_count=verdict.instalments,
        interval=policy.interval,
        starts_on=today,
        reminder_days_before=policy.reminder_days_before,
        grace_days=policy.grace_days,
        schedule=_schedule_json(schedule),
        requested={"instalments": instalments, "monthly_amount_minor": monthly_amount_minor},
        limits=limits_of(policy),
        created_by=who.label,
    )
    session.add(plan)
    await session.flush()
    await insert_rows(
        session,
        table_of(PlanInvoice),
        [
            {"plan_id": plan.id, "invoice_id": r.id, "open_minor": int(r.open_minor), "active": False}
            for r in rows
        ],
    )
    action = "plan.approval_requested" if state == PlanState.pending_approval else "plan.proposed"
    await _audit(session, who, action, plan, None)
    if state == PlanState.pending_approval:
        await _event(session, PlanEvent.approval_requested, plan, debtor, reason_code=verdict.reason_code)
    return PlanDecision(
        verdict.outcome, plan.id, currency, total, down, schedule, verdict.reason_code, plan.state
    )


async def _choose_invoices(
    session: AsyncSession,
    debtor_id: uuid.UUID,
    invoice_ids: list[uuid.UUID] | None,
    invoice_external_ids: list[str] | None,
) -> list[Any]:
    """The named invoices, checked (each the debtor's, open, undisputed, in no active plan, one
    currency); or, when none are named, every such invoice in the currency of the oldest."""
    named: list[Any] | None = invoice_ids if invoice_ids is not None else invoice_external_ids
    rows = await repo.candidates(session, debtor_id, ids=invoice_ids, external_ids=invoice_external_ids)
    if named is None:
        rows = [r for r in rows if r.open_minor > 0 and not r.disputed and not r.planned]
        return [r for r in rows if r.currency == rows[0].currency]

    def refuse(kind: type[InvalidInput | Conflict], message: str, code: str, detail: str) -> None:
        raise kind(message, code, _fields("invoices", message=detail, code=code))

    unknown = sorted(str(n) for n in set(named) - ({r.id for r in rows} | {r.external_id for r in rows}))
    if unknown:
        refuse(
            InvalidInput,
            "some invoices do not exist for this debtor",
            "unknown_invoice",
            f"unknown: {', '.join(unknown)}",
        )
    bad = [r.external_id for r in rows if r.status not in repo.PLANNABLE or r.open_minor <= 0 or r.disputed]
    if bad:
        refuse(
            InvalidInput,
            "a plan can only cover open, undisputed invoices",
            "invoice_not_plannable",
            f"not open or disputed: {', '.join(bad)}",
        )
    planned = [r.external_id for r in rows if r.planned]
    if planned:
        refuse(
            Conflict,
            "some invoices are already in an active plan",
            "invoice_in_plan",
            f"in a plan: {', '.join(planned)}",
        )
    currencies = sorted({r.currency for r in rows})
    if len(currencies) > 1:
        refuse(
            InvalidInput, "a plan is in one currency", "currency_mismatch", f"mixed: {', '.join(currencies)}"
        )
    return rows


async def _withdraw_offers(session: AsyncSession, debtor_id: uuid.UUID, actor: Actor) -> None:
    for old in await repo.plans_of(session, debtor_id, PlanState.open_offers()):
        before = _summary(old)
        old.state = PlanState.withdrawn.value
        old.ended_at = old.updated_at = utcnow()
        await session.flush()
        await _audit(session, actor, "plan.superseded", old, before)


async def _plan(session: AsyncSession, plan_id: uuid.UUID) -> PaymentPlan:
    plan = await repo.get_plan(session, plan_id, for_update=True)
    if plan is None:
        raise NotFound(f"payment plan {plan_id} does not exist", "plan_not_found")
    return plan


# --------------------------------------------------------------------------- accept, decide, withdraw


async def accept(
    session: AsyncSession,
    plan_id: uuid.UUID,
    *,
    actor: ActorLike,
    today: date,
    confirm: bool = True,
    now: datetime | None = None,
) -> PlanView:
    """The debtor's yes to a ``proposed`` or ``approved_by_staff`` plan: it becomes ``active``.

    The schedule starts on ``today`` (dates move with a late yes; amounts stay). Its instalments are
    created, its invoices leave dunning, live promises on them end (the plan replaces them), and,
    with ``confirm``, a written confirmation with the schedule goes on the outbox, due at ``now``
    (the caller's clock; the wall clock when not given).
    """
    who = as_actor(actor)
    # The debtor first, then the plan: the order propose takes them in (no deadlock between the two).
    found = await repo.get_plan(session, plan_id)
    if found is not None:
        await debtor_repo.lock(session, found.debtor_id)
    plan = await _plan(session, plan_id)
    if plan.state not in (PlanState.proposed.value, PlanState.approved_by_staff.value):
        raise Conflict(f"the plan is {plan.state}; only an offer can be accepted", "plan_not_acceptable")
    covered = await repo.covered_invoices(session, plan.id)
    if (
        any(r.status not in repo.PLANNABLE for r in covered)
        or await repo.covered_open(session, plan.id) != plan.total_minor
    ):
        raise Conflict("what is owed changed since this offer was made; propose the plan again", "plan_stale")
    before = _summary(plan)
    schedule = [
        Instalment(i.number, terms.add_intervals(today, plan.interval, i.number), i.amount_minor)
        for i in _schedule_of(plan)
    ]
    start = 0
    rows = []
    for i in schedule:
        rows.append(
            {
                "plan_id": plan.id,
                "number": i.number,
                "due_on": i.due_on,
                "amount_minor": i.amount_minor,
                "start_minor": start,
                "paid_minor": 0,
                "status": InstalmentStatus.open.value,
            }
        )
        start += i.amount_minor
    now = now or utcnow()
    plan.state = PlanState.active.value
    plan.starts_on = today
    plan.schedule = _schedule_json(schedule)
    plan.accepted_at = plan.updated_at = now
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("this debtor already has an active payment plan", "plan_active") from None
    await insert_rows(session, table_of(PlanInstalment), rows)
    await repo.set_covered_active(session, [plan.id], True)
    ids = [r.id for r in covered]
    await session.execute(
        update(Promise)
        .where(col(Promise.invoice_id).in_(ids), col(Promise.status) == PromiseStatus.active.value)
        .values(status=PromiseStatus.withdrawn.value, resolved_at=now)
    )
    await session.execute(
        update(DunningState)
        .where(col(DunningState.invoice_id).in_(ids), col(DunningState.promise_date).is_not(None))
        .values(promise_date=None, promise_minor=None, updated_at=now)
    )
    await _audit(session, who, "plan.accepted", plan, before)
    debtor = await debtor_repo.get_by_id(session, plan.debtor_id)
    await _event(session, PlanEvent.accepted, plan, debtor)
    if confirm:
        session.add(
            Message(
                debtor_id=plan.debtor_id,
                kind=CONFIRMATION_KIND,
                template="plan_confirmed",
                tone="friendly",
                channels=list(debtor.channel_order),
                status=MessageStatus.queued.value,
                next_attempt_at=now,
                payload={"kind": CONFIRMATION_KIND, "plan_id": str(plan.id)},
            )
        )
        await session.flush()
    return await plan_view(session, plan.id)


async def decide(
    session: AsyncSession,
    plan_id: uuid.UUID,
    *,
    approve: bool,
    actor: ActorLike,
    counter: Counter | Mapping[str, int] | None = None,
    today: date,
    note: str | None = None,
) -> PlanView:
    """Staff's answer to a ``pending_approval`` plan.

    Yes: ``approved_by_staff`` (on the ``counter`` terms when given, past the policy's limits as staff
    see fit); the debtor then accepts. No: ``declined``. Either way an event ``plan.decided`` lets the
    chat tell the debtor.
    """
    who = as_actor(actor)
    if isinstance(counter, Mapping):  # {"instalments": 8} or {"monthly_amount_minor": 5000}
        counter = Counter(counter.get("instalments"), counter.get("monthly_amount_minor"))
    plan = await _plan(session, plan_id)
    if plan.state != PlanState.pending_approval.value:
        raise Conflict(
            f"the plan is {plan.state}; only a plan waiting for approval can be decided", "plan_not_pending"
        )
    if counter is not None and not approve:
        raise InvalidInput(
            "counter terms come with an approval",
            "counter_without_approval",
            _fields("counter", message="leave out, or approve", code="counter_without_approval"),
        )
    before = _summary(plan)
    if approve:
        if counter is not None:
            _check_terms(counter.instalments, counter.monthly_amount_minor)
            rest = plan.total_minor - plan.down_payment_minor
            n = _wanted(counter.instalments, counter.monthly_amount_minor, rest)
            schedule = terms.schedule(today, plan.interval, plan.down_payment_minor, rest, n)
            plan.schedule = _schedule_json(schedule)
            plan.instalment_count = n
            plan.starts_on = today
        plan.state = PlanState.approved_by_staff.value
    else:
        plan.state = PlanState.declined.value
        plan.ended_at = utcnow()
    plan.decided_by = who.label
    plan.updated_at = utcnow()
    await session.flush()
    await _audit(
        session, who, "plan.approved" if approve else "plan.declined", plan, {**before, "note": note}
    )
    await emit_many(
        session,
        PlanEvent.decided.value,
        [(str(plan.id), {"plan_id": str(plan.id), "approved": approve, "state": plan.state, "note": note})],
    )
    return await plan_view(session, plan.id)


async def withdraw(
    session: AsyncSession, plan_id: uuid.UUID, *, actor: ActorLike, today: date, reason: str | None = None
) -> PlanView:
    """Withdraw an offer, or end an active plan: its invoices come back into dunning."""
    who = as_actor(actor)
    plan = await _plan(session, plan_id)
    if plan.state not in (*PlanState.open_offers(), PlanState.active.value):
        raise Conflict(f"the plan is {plan.state}; there is nothing to withdraw", "plan_closed")
    before = _summary(plan)
    was_active = plan.state == PlanState.active.value
    plan.state = PlanState.withdrawn.value
    plan.ended_at = plan.updated_at = utcnow()
    await session.flush()
    if was_active:
        await repo.set_covered_active(session, [plan.id], False)
    await audit.record(
        session,
        who,
        "plan.withdrawn",
        "payment_plan",
        plan.id,
        before=before,
        after={**_summary(plan), "reason": reason, "on": today.isoformat()},
    )
    return await plan_view(session, plan.id)


# --------------------------------------------------------------------------- reading


async def get_active_plan(session: AsyncSession, debtor_id: uuid.UUID) -> PlanView | None:
    found = await repo.plans_of(session, debtor_id, [PlanState.active.value])
    return await plan_view(session, found[0].id) if found else None


async def latest_offer(session: AsyncSession, debtor_id: uuid.UUID) -> PlanView | None:
    """The debtor's open offer (proposed, pending approval or approved by staff), if any."""
    found = await repo.plans_of(session, debtor_id, PlanState.open_offers())
    return await plan_view(session, found[0].id) if found else None


async def waiting_for_approval(session: AsyncSession, *, limit: int = 100) -> list[PlanView]:
    """Plans staff still have to decide, oldest first."""
    ids = await repo.plan_ids_in_state(session, PlanState.pending_approval.value, limit)
    return [await plan_view(session, plan_id) for plan_id in ids]


async def plan_view(session: AsyncSession, plan_id: uuid.UUID) -> PlanView:
    plan = await repo.get_plan(session, plan_id)
    if plan is None:
        raise NotFound(f"payment plan {plan_id} does not exist", "plan_not_found")
    debtor = await debtor_repo.get_by_id(session, plan.debtor_id)
    rows = await repo.instalments(session, plan.id)
    if rows:
        items = [InstalmentView(r.number, r.due_on, r.amount_minor, r.paid_minor, r.status) for r in rows]
    else:
        items = [
            InstalmentView(i.number, i.due_on, i.amount_minor, 0, "proposed") for i in _schedule_of(plan)
        ]
    return PlanView(
        id=plan.id,
        debtor_id=plan.debtor_id,
        debtor_external_id=debtor.external_id,
        state=plan.state,
        outcome=plan.outcome,
        reason_code=plan.reason_code,
        currency=plan.currency,
        total_minor=plan.total_minor,
        down_payment_minor=plan.down_payment_minor,
        paid_minor=sum(i.paid_minor for i in items),
        interval=plan.interval,
        invoices=[r.external_id for r in await repo.covered_invoices(session, plan.id)],
        instalments=items,
        created_by=plan.created_by,
        decided_by=plan.decided_by,
    )
