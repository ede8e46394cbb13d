"""Payment plans: offers within policy, counter-offers, staff approval, exact schedules, and the life
of an active plan (dunning skips it, reminders once, breach resumes dunning, full payment completes)."""

from __future__ import annotations

import asyncio
import random
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bots.email.sender import EmailSender, parse_smtp_url
from core.audit import AuditEvent
from core.db import Database
from core.debtors import service as debtors
from core.dunning.models import DunningAction
from core.dunning.sweep import sweep
from core.errors import Conflict, InvalidInput
from core.events.models import Event
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from core.messaging.delivery import deliver
from core.messaging.models import Message
from core.plans import service as plans
from core.plans import terms
from core.plans.models import PlanState
from core.plans.policy import upsert_policy
from core.plans.schemas import MoneyIn, PlanDecision, PlanPolicyIn
from core.plans.sweep import sweep_instalments
from core.ports import FixedClock
from tests import factories
from tests.conftest import NOW
from tests.fakes.smtp import smtp_server

TODAY = date(2026, 11, 24)  # the suite's NOW
DEBTOR = "debtor:chat"
STAFF = "staff:U42"


async def debtor_with(db: Database, *amounts: int, **fields: Any) -> tuple[str, Any, list[str]]:
    d = await factories.debtor(db, **fields)
    rows = [factories.invoice_row(d, amount_minor=a, due_date=date(2026, 11, 30)) for a in amounts]
    await factories.batch(db, rows)
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, d)
    return d, debtor.id, [r.external_id for r in rows]


async def propose(db: Database, debtor_id: Any, today: date = TODAY, **kw: Any) -> PlanDecision:
    args: dict[str, Any] = {"invoice_ids": None, "instalments": None, "monthly_amount_minor": None, **kw}
    async with db.session_scope() as s:
        return await plans.propose(s, debtor_id=debtor_id, actor=DEBTOR, today=today, **args)


async def accept(db: Database, plan_id: Any, today: date = TODAY) -> plans.PlanView:
    async with db.session_scope() as s:
        now = datetime.combine(today, NOW.timetz())  # the suite's clock on that day
        return await plans.accept(s, plan_id, actor=DEBTOR, today=today, now=now)


async def plan_sweep(db: Database, day: str) -> Any:
    async with db.session_scope() as s:
        return await sweep_instalments(s, now=factories.at(day))


async def dunning_actions(db: Database, invoice_external_id: str) -> list[str]:
    from core.invoices.models import Invoice

    async with db.sessionmaker() as s:
        rows = await s.execute(
            select(col(DunningAction.stage_key))
            .join(Invoice, col(Invoice.id) == col(DunningAction.invoice_id))
            .where(col(Invoice.external_id) == invoice_external_id, col(DunningAction.stage_key) != "issued")
            .order_by(col(DunningAction.created_at))
        )
        return list(rows.scalars().all())


async def events(db: Database, type_: str) -> list[Event]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(Event).where(col(Event.type) == type_))).all())


async def set_policy(db: Database, segment: str, **over: Any) -> None:
    data: dict[str, Any] = {"min_instalment": MoneyIn(currency="EUR", amount="25.00"), **over}
    async with db.session_scope() as s:
        await upsert_policy(s, segment, PlanPolicyIn(**data), factories.TEST_ACTOR)


def amounts(decision: PlanDecision) -> list[int]:
    return [i.amount_minor for i in decision.schedule]


# --------------------------------------------------------------------------- the policy's verdict


async def test_a_request_within_policy_is_offered_as_asked(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 30_000, 10_000)

    d = await propose(db, debtor_id, instalments=4)

    assert (d.outcome, d.state, d.currency, d.total_minor, d.reason_code) == (
        "accepted",
        "proposed",
        "EUR",
        40_000,
        None,
    )
    assert [(i.number, i.due_on, i.amount_minor) for i in d.schedule] == [
        (1, date(2026, 12, 24), 10_000),
        (2, date(2027, 1, 24), 10_000),
        (3, date(2027, 2, 24), 10_000),
        (4, date(2027, 3, 24), 10_000),
    ]
    async with db.sessionmaker() as s:
        view = await plans.plan_view(s, d.plan_id)  # type: ignore[arg-type]
    assert view.state == "proposed" and [i.status for i in view.instalments] == ["proposed"] * 4


async def test_too_many_instalments_get_a_counter_offer_of_the_most_allowed(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 40_000)

    d = await propose(db, debtor_id, instalments=10)  # the default allows 6

    assert (d.outcome, d.state, d.reason_code) == ("counter", "proposed", "too_many_instalments")
    assert len(d.schedule) == 6 and sum(amounts(d)) == 40_000


async def test_a_monthly_amount_below_the_smallest_instalment_is_countered(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 10_000)

    d = await propose(db, debtor_id, monthly_amount_minor=2_000)  # 5 x 20.00; at least 25.00 allows 4

    assert (d.outcome, d.reason_code, amounts(d)) == ("counter", "instalment_too_small", [2_500] * 4)


async def test_far_outside_policy_goes_to_staff_and_they_are_told(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 40_000)

    d = await propose(db, debtor_id, instalments=20)

    assert (d.outcome, d.state, d.reason_code) == (
        "needs_approval",
        "pending_approval",
        "too_many_instalments",
    )
    assert len(d.schedule) == 20 and sum(amounts(d)) == 40_000  # the request as asked, for staff to judge
    [event] = await events(db, "plan.approval_requested")
    assert event.payload["plan_id"] == str(d.plan_id) and event.payload["total"] == "400.00"
    async with db.sessionmaker() as s:
        trail = (await s.scalars(select(AuditEvent).where(col(AuditEvent.entity_id) == str(d.plan_id)))).all()
    assert [a.action for a in trail] == ["plan.approval_requested"]


async def test_without_staff_approval_the_policy_refuses(db: Database) -> None:
    await set_policy(db, "strict", staff_approval=False)
    _, debtor_id, _ = await debtor_with(db, 40_000, segment="strict")

    d = await propose(db, debtor_id, instalments=20)

    assert (d.outcome, d.plan_id, d.reason_code) == ("refused", None, "too_many_instalments")


async def test_a_plan_above_the_largest_total_needs_staff(db: Database) -> None:
    await set_policy(db, "small", max_total=MoneyIn(currency="EUR", amount="300.00"))
    _, debtor_id, _ = await debtor_with(db, 40_000, segment="small")

    d = await propose(db, debtor_id, instalments=2)

    assert (d.outcome, d.reason_code) == ("needs_approval", "total_above_limit")


async def test_the_down_payment_is_due_at_once_and_the_rest_is_split(db: Database) -> None:
    await set_policy(
        db, "down", down_payment_percent="10", down_payment_minimum=MoneyIn(currency="EUR", amount="50.00")
    )
    _, debtor_id, _ = await debtor_with(db, 40_000, segment="down")

    d = await propose(db, debtor_id, instalments=4)

    assert d.down_payment_minor == 5_000  # 10 % is 40.00, less than the 50.00 minimum
    assert [(i.number, i.due_on, i.amount_minor) for i in d.schedule][:2] == [
        (0, TODAY, 5_000),
        (1, date(2026, 12, 24), 8_750),
    ]
    assert sum(amounts(d)) == 40_000


async def test_paying_the_down_payment_settles_instalment_zero(db: Database) -> None:
    await set_policy(db, "down", down_payment_percent="25")
    d, debtor_id, _ = await debtor_with(db, 40_000, segment="down")
    offer = await propose(db, debtor_id, instalments=3)
    await accept(db, offer.plan_id)
    assert (await plan_sweep(db, "2026-11-24")).reminders == 0  # the confirmation asks for it

    async with db.session_scope() as s:
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=d, currency="EUR", amount="100.00"),
            actor=factories.TEST_ACTOR,
            today=TODAY,
        )
    await plan_sweep(db, "2026-11-25")
    async with db.sessionmaker() as s:
        view = await plans.plan_view(s, offer.plan_id)  # type: ignore[arg-type]
    assert [(i.number, i.amount_minor, i.status) for i in view.instalments] == [
        (0, 10_000, "paid"),
        (1, 10_000, "open"),
        (2, 10_000, "open"),
        (3, 10_000, "open"),
    ]


def test_schedules_add_up_exactly_and_differ_by_at_most_one_cent() -> None:
    rng = random.Random(5)
    for _ in range(500):
        rest, n = rng.randint(1, 10**9), rng.randint(1, 60)
        parts = terms.split(rest, n)
        assert sum(parts) == rest and max(parts) - min(parts) <= 1 and parts == sorted(parts, reverse=True)
    assert terms.split(10_001, 3) == [3_334, 3_334, 3_333]
    assert terms.split(100_000, 3) == [33_334, 33_333, 33_333]


async def test_a_monthly_amount_is_never_exceeded(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 100_001)

    d = await propose(db, debtor_id, monthly_amount_minor=30_000)

    assert d.outcome == "accepted" and amounts(d) == [25_001, 25_000, 25_000, 25_000]


async def test_bad_requests_are_refused_with_the_field(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 10_000)
    with pytest.raises(InvalidInput) as both:
        await propose(db, debtor_id, instalments=3, monthly_amount_minor=1_000)
    assert both.value.errors[0].loc == ("instalments",)
    with pytest.raises(InvalidInput) as unknown:
        await propose(db, debtor_id, invoice_external_ids=["NOPE"], instalments=2)
    assert unknown.value.code == "unknown_invoice"


async def test_a_plan_covers_only_the_invoices_named_and_not_disputed_ones(db: Database) -> None:
    from core.dunning import holds

    _, debtor_id, (first, second, third) = await debtor_with(db, 10_000, 20_000, 30_000)
    async with db.session_scope() as s:
        await holds.dispute(s, third, reason="not delivered", actor=factories.TEST_ACTOR)

    d = await propose(db, debtor_id, invoice_external_ids=[second], instalments=2)
    assert (d.total_minor, amounts(d)) == (20_000, [10_000, 10_000])
    with pytest.raises(InvalidInput) as disputed:
        await propose(db, debtor_id, invoice_external_ids=[third], instalments=2)
    assert disputed.value.code == "invoice_not_plannable"
    everything = await propose(db, debtor_id, instalments=2)  # the disputed one stays out
    assert everything.total_minor == 30_000
    async with db.sessionmaker() as s:
        view = await plans.plan_view(s, everything.plan_id)  # type: ignore[arg-type]
    assert view.invoices == [first, second]


# --------------------------------------------------------------------------- staff


async def test_staff_approval_on_their_terms_then_the_debtor_accepts(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 40_000)
    d = await propose(db, debtor_id, instalments=20)

    async with db.session_scope() as s:
        assert d.plan_id is not None
        view = await plans.decide(
            s, d.plan_id, approve=True, actor=STAFF, counter={"monthly_amount_minor": 4_000}, today=TODAY
        )
    assert (view.state, view.decided_by, len(view.instalments)) == ("approved_by_staff", STAFF, 10)
    active = await accept(db, d.plan_id)
    assert active.state == "active" and [i.amount_minor for i in active.instalments] == [4_000] * 10
    [decided] = await events(db, "plan.decided")
    assert decided.payload["approved"] is True


async def test_staff_decline_ends_the_request(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 40_000)
    d = await propose(db, debtor_id, instalments=20)

    async with db.session_scope() as s:
        assert [p.id for p in await plans.waiting_for_approval(s)] == [d.plan_id]
        view = await plans.decide(s, d.plan_id, approve=False, actor=STAFF, today=TODAY)  # type: ignore[arg-type]
        assert await plans.waiting_for_approval(s) == []
    assert view.state == "declined"
    with pytest.raises(Conflict):
        await accept(db, d.plan_id)


async def test_a_new_proposal_replaces_the_open_offer(db: Database) -> None:
    _, debtor_id, _ = await debtor_with(db, 40_000)
    first = await propose(db, debtor_id, instalments=4)
    second = await propose(db, debtor_id, instalments=2)

    async with db.sessionmaker() as s:
        assert (await plans.plan_view(s, first.plan_id)).state == "withdrawn"  # type: ignore[arg-type]
        offer = await plans.latest_offer(s, debtor_id)
    assert offer is not None and offer.id == second.plan_id


# --------------------------------------------------------------------------- an active plan


async def test_accepting_takes_the_invoices_out_of_dunning(db: Database) -> None:
    _d, debtor_id, (inv,) = await debtor_with(db, 40_000)
    _other, _, (other_inv,) = await debtor_with(db, 40_000)
    offer = await propose(db, debtor_id, instalments=4)

    view = await accept(db, offer.plan_id)

    assert view.state == "active" and view.invoices == [inv]
    assert [(i.number, i.status) for i in view.instalments] == [(n, "open") for n in range(1, 5)]
    for day in ("2026-11-27", "2026-11-30", "2026-12-07"):
        async with db.session_scope() as s:
            await sweep(s, now=factories.at(day))
    assert await dunning_actions(db, inv) == []
    assert await dunning_actions(db, other_inv) == ["before_due", "due_today", "first_reminder"]
    async with db.sessionmaker() as s:
        balance = await ledger.debtor_balance(s, debtor_id, TODAY)
        assert (await plans.get_active_plan(s, debtor_id)) is not None
        confirmation = (
            await s.scalars(select(Message).where(col(Message.kind) == "plan_confirmation"))
        ).one()
    assert balance.currencies["EUR"].in_plan == 40_000
    assert confirmation.debtor_id == debtor_id and confirmation.template == "plan_confirmed"
    with pytest.raises(Conflict):
        await propose(db, debtor_id, instalments=2)  # one active plan per debtor


async def test_each_instalment_is_reminded_once_and_the_reminder_is_delivered(
    db: Database, clock: FixedClock
) -> None:
    _d, debtor_id, _ = await debtor_with(db, 40_000)
    offer = await propose(db, debtor_id, instalments=4)
    await accept(db, offer.plan_id)

    async with smtp_server() as smtp:
        email = EmailSender(parse_smtp_url(smtp.url()), sender="Acme <billing@acme.test>")
        assert (
            await deliver(db, {"email": email}, clock=clock, limiter=None, creditor_name="Acme")
        ).sent == 1

        assert (await plan_sweep(db, "2026-12-20")).reminders == 0
        assert (await plan_sweep(db, "2026-12-21")).reminders == 1  # three days before 24 December
        assert (await plan_sweep(db, "2026-12-21")).reminders == 0
        assert (await plan_sweep(db, "2026-12-23")).reminders == 0
        async with db.sessionmaker() as s:
            reminder = (
                await s.scalars(select(Message).where(col(Message.kind) == "instalment_reminder"))
            ).one()
        assert reminder.debtor_id == debtor_id and reminder.payload["number"] == 1

        clock.current = factories.at("2026-12-21").replace(hour=10)
        assert (
            await deliver(db, {"email": email}, clock=clock, limiter=None, creditor_name="Acme")
        ).sent == 1
        confirmation, reminded = smtp.received
    assert confirmation.message["Subject"] == "Your payment plan for €400.00 is confirmed"
    assert (
        "Instalment 4: €100.00, due March 24, 2027" in confirmation.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    )
    assert (
        reminded.message["Subject"] == "Instalment 1 of 4 of your payment plan: €100.00 due December 24, 2026"
    )


async def test_a_missed_instalment_breaks_the_plan_and_dunning_resumes(db: Database) -> None:
    d, debtor_id, (inv,) = await debtor_with(db, 40_000)
    offer = await propose(db, debtor_id, instalments=4)
    await accept(db, offer.plan_id)

    assert (await plan_sweep(db, "2026-12-29")).breached == []  # due 24 December, five days' grace
    result = await plan_sweep(db, "2026-12-30")

    assert result.breached == [offer.plan_id]
    async with db.sessionmaker() as s:
        view = await plans.plan_view(s, offer.plan_id)  # type: ignore[arg-type]
        assert await plans.get_active_plan(s, debtor_id) is None
    assert view.state == "breached" and view.instalments[0].status == "missed"
    [event] = await events(db, "plan.breached")
    assert event.payload["debtor"] == d
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-12-30"))
    assert await dunning_actions(db, inv) == ["final_notice"]  # due +30: the latest stage only, no burst


async def test_payments_count_toward_instalments_in_order_until_completed(db: Database) -> None:
    d, debtor_id, _ = await debtor_with(db, 40_000)
    offer = await propose(db, debtor_id, instalments=4)
    await accept(db, offer.plan_id)

    async def pay(amount: str) -> None:
        async with db.session_scope() as s:
            await ledger.record_payment(
                s,
                PaymentIn(debtor_external_id=d, currency="EUR", amount=amount),
                actor=factories.TEST_ACTOR,
                today=TODAY,
            )

    await pay("150.00")
    assert (await plan_sweep(db, "2026-12-01")).instalments_paid == 1
    async with db.sessionmaker() as s:
        view = await plans.plan_view(s, offer.plan_id)  # type: ignore[arg-type]
    assert [(i.status, i.paid_minor) for i in view.instalments] == [
        ("paid", 10_000),
        ("open", 5_000),
        ("open", 0),
        ("open", 0),
    ]
    await pay("250.00")
    result = await plan_sweep(db, "2027-01-02")
    assert result.completed == [offer.plan_id]
    async with db.sessionmaker() as s:
        view = await plans.plan_view(s, offer.plan_id)  # type: ignore[arg-type]
    assert view.state == PlanState.completed and view.paid_minor == 40_000
    assert len(await events(db, "plan.completed")) == 1


async def test_withdrawing_an_active_plan_brings_dunning_back(db: Database) -> None:
    _d, debtor_id, (inv,) = await debtor_with(db, 40_000)
    offer = await propose(db, debtor_id, instalments=4)
    await accept(db, offer.plan_id)
    async with db.session_scope() as s:
        view = await plans.withdraw(s, offer.plan_id, actor=STAFF, today=TODAY)  # type: ignore[arg-type]
    assert view.state == "withdrawn"
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-11-27"))
    assert await dunning_actions(db, inv) == ["before_due"]


async def test_two_yeses_at_once_activate_the_plan_once(committed: Database) -> None:
    _, debtor_id, _ = await debtor_with(committed, 40_000)
    offer = await propose(committed, debtor_id, instalments=4)

    async def yes() -> str:
        try:
            return (await accept(committed, offer.plan_id)).state
        except Conflict as exc:
            return exc.code

    assert sorted(await asyncio.gather(yes(), yes())) == ["active", "plan_not_acceptable"]
    async with committed.sessionmaker() as s:
        view = await plans.plan_view(s, offer.plan_id)  # type: ignore[arg-type]
        confirmations = (
            await s.scalars(select(Message).where(col(Message.kind) == "plan_confirmation"))
        ).all()
    assert len(view.instalments) == 4 and len(confirmations) == 1
