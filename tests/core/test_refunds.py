"""Refunds: the monthly policy, the second approver, and execution at Mollie exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from core.audit import Actor
from core.db import Database
from core.errors import Conflict, Forbidden, PolicyViolation
from core.ledger.models import LedgerEntry
from core.money import Money
from core.payments import refunds
from core.payments.models import RefundRequest
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests import factories
from tests.core.test_psp_payments import balance, checkout_for, webhook
from tests.fakes.mollie import FakeMollie

ANNA, BOB = Actor("staff", "U-ANNA"), Actor("staff", "U-BOB")
POLICY = refunds.RefundPolicy(
    max_count=3,
    max_total="300.00",
    staff_max_count=2,
    staff_max_total="200.00",
    second_approval_above="50.00",
)


async def paid(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock, minor: int
) -> tuple[str, str]:
    """A debtor whose invoice was paid through Mollie: (debtor, tr_ id)."""
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=minor)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    await webhook(db, provider, psp.provider_id, clock)
    return d, psp.provider_id


async def ask(
    db: Database,
    payment: str,
    amount: str | None,
    actor: Actor,
    clock: FixedClock,
    policy: refunds.RefundPolicy = POLICY,
) -> RefundRequest:
    async with db.session_scope() as s:
        return await refunds.request_refund(
            s,
            payment,
            Money.parse(amount, "EUR") if amount else None,
            "goodwill",
            actor,
            policy=policy,
            now=clock.now(),
        )


async def execute(
    db: Database, provider: MollieProvider, refund: RefundRequest, clock: FixedClock
) -> RefundRequest:
    async with db.session_scope() as s:
        return await refunds.execute_refund(s, provider, refund.id, now=clock.now(), actor=ANNA)


async def refund_entries(db: Database) -> int:
    async with db.sessionmaker() as s:
        stmt = select(func.count()).select_from(LedgerEntry).where(col(LedgerEntry.kind) == "refund")
        return int((await s.execute(stmt)).scalar_one())


async def test_a_small_refund_is_executed_once_and_mollie_reporting_it_posts_nothing_more(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await ask(db, tr, "20.00", ANNA, clock)
    assert r.status == "approved" and not r.needs_second_approval
    done = await execute(db, provider, r, clock)
    assert done.status == "executed" and done.provider_refund_id and done.provider_refund_id.startswith("re_")
    again = await execute(db, provider, r, clock)  # a double execution changes nothing
    assert again.status == "executed" and len(mollie.refund_creates) == 1
    assert mollie.refund_creates[0].headers["Idempotency-Key"] == f"duebot:refund:{r.id}"
    assert mollie.payments[tr].refunded_minor == 2_000
    assert await webhook(db, provider, tr, clock) == "unchanged"  # Mollie's report of our own refund
    assert await refund_entries(db) == 1
    eur, _ = await balance(db, d)
    assert eur.open == 2_000  # the money went back: the debtor owes it again


async def test_a_retried_execution_after_a_lost_answer_gets_the_same_refund(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await ask(db, tr, "10.00", ANNA, clock)
    mollie.lose_next_answer()  # Mollie made the refund, the answer never arrived
    first = await execute(db, provider, r, clock)
    assert first.status == "approved" and first.error and "502" in first.error
    assert await webhook(db, provider, tr, clock) == "unchanged"  # Mollie reports it: in flight, not posted
    mollie.fail_next(503)  # and then Mollie is down for a moment
    assert (await execute(db, provider, r, clock)).status == "approved"
    assert (await execute(db, provider, r, clock)).status == "executed"
    # the retries carried the same key: Mollie replayed the refund it had made, none was added
    assert mollie.payments[tr].refunded_minor == 1_000 and len(mollie.payments[tr].refunds) == 1
    assert await refund_entries(db) == 1


async def test_a_refusal_by_mollie_fails_the_refund_with_the_reason(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await ask(db, tr, "40.00", ANNA, clock)
    mollie.refund_externally(tr, 9_000)  # someone refunded most of it in the dashboard meanwhile
    done = await execute(db, provider, r, clock)
    assert done.status == "failed" and done.error and "refundable" in done.error
    assert await refund_entries(db) == 0


async def test_above_the_threshold_a_second_person_must_approve(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await ask(db, tr, "80.00", ANNA, clock)
    assert r.status == "requested" and r.needs_second_approval
    assert (await execute(db, provider, r, clock)).status == "requested"  # not before approval
    assert mollie.refund_creates == []
    async with db.session_scope() as s:
        with pytest.raises(Forbidden) as err:
            await refunds.approve_refund(s, r.id, ANNA, now=clock.now())
        assert err.value.code == "same_approver"
    async with db.session_scope() as s:
        approved = await refunds.approve_refund(s, r.id, BOB, now=clock.now())
        assert approved.approved_by == "staff:U-BOB"
    assert (await execute(db, provider, r, clock)).status == "executed"
    async with db.session_scope() as s:
        with pytest.raises(Conflict):
            await refunds.decline_refund(s, r.id, BOB, now=clock.now())


async def test_declined_refunds_are_never_executed(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await ask(db, tr, "80.00", ANNA, clock)
    async with db.session_scope() as s:
        await refunds.decline_refund(s, r.id, BOB, reason="not agreed", now=clock.now())
    assert (await execute(db, provider, r, clock)).status == "declined"
    assert mollie.refund_creates == []


async def test_no_more_than_is_refundable_counting_open_requests(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 6_000)
    await ask(db, tr, "40.00", ANNA, clock)  # approved, not executed yet: holds 40.00
    with pytest.raises(PolicyViolation) as err:
        await ask(db, tr, "30.00", BOB, clock)
    assert err.value.code == "exceeds_refundable" and "20.00" in err.value.message
    rest = await ask(db, tr, None, BOB, clock)  # no amount: everything still refundable
    assert rest.amount_minor == 2_000


async def test_an_unpaid_payment_cannot_be_refunded(
    db: Database, provider: MollieProvider, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d)
    psp = await checkout_for(db, provider, inv, clock)
    with pytest.raises(PolicyViolation) as err:
        await ask(db, psp.provider_id, "1.00", ANNA, clock)
    assert err.value.code == "not_refundable"


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ({"staff_max_count": 2}, "refund_count_limit"),
        ({"staff_max_count": 9, "staff_max_total": "25.00"}, "refund_total_limit"),
        ({"staff_max_count": 9, "max_count": 2}, "refund_count_limit"),
    ],
)
async def test_monthly_limits_per_staff_member_and_overall(
    db: Database,
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
    limit: dict[str, Any],
    code: str,
) -> None:
    policy = refunds.RefundPolicy(**{**POLICY.__dict__, **limit})
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    await ask(db, tr, "10.00", ANNA, clock, policy)
    await ask(db, tr, "10.00", ANNA, clock, policy)
    with pytest.raises(PolicyViolation) as err:
        await ask(db, tr, "10.00", ANNA, clock, policy)
    assert err.value.code == code and "per month" in err.value.message
    if code == "refund_count_limit" and "max_count" not in limit:
        await ask(db, tr, "10.00", BOB, clock, policy)  # another staff member still may
    next_month = FixedClock(clock.now().replace(day=1) + timedelta(days=40))
    await ask(db, tr, "10.00", ANNA, next_month, policy)  # a new month, a new allowance


async def test_two_concurrent_executions_refund_once(
    committed: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    db = committed
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await ask(db, tr, "25.00", ANNA, clock)
    done = await asyncio.gather(execute(db, provider, r, clock), execute(db, provider, r, clock))
    assert [x.status for x in done] == ["executed", "executed"]
    assert mollie.payments[tr].refunded_minor == 2_500 and await refund_entries(db) == 1
