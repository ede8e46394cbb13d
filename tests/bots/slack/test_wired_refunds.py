"""Refunds and payment requests from Slack through the real services: signed requests through bolt,
the refunds policy and four-eyes in core, execution at Mollie (the local fake), audited with the
Slack user's id and name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlmodel import col

import worker
from core.config import Settings
from core.db import Database
from core.ledger.models import LedgerEntry
from core.messaging.models import Message
from core.payments.models import RefundRequest
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests.bots.slack.conftest import ALLOWED, APPROVER, APPROVER2, STAFF_CHANNEL, STRANGER, Staff
from tests.bots.slack.wired import audits, wired_staff
from tests.core.test_refunds import paid
from tests.fakes.mollie import FakeMollie
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def staff(
    settings: Settings,
    db: Database,
    redis: Redis,
    clock: FixedClock,
    fake: FakeSlack,
    mollie: FakeMollie,
    provider: MollieProvider,
) -> AsyncIterator[Staff]:
    async for s in wired_staff(settings, db, redis, clock, fake, mollie, provider):
        yield s


async def _paid(staff: Staff, provider: MollieProvider, mollie: FakeMollie, minor: int = 100_00) -> str:
    _, tr = await paid(staff.db, provider, mollie, staff.clock, minor)
    return tr


async def _confirmation(staff: Staff, tr: str, amount: str, user: str = ALLOWED) -> dict[str, Any]:
    """`/ar refund <tr> <amount>`, the form filled in: the confirmation view."""
    await staff.command(f"refund {tr} {amount}", user=user)
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    assert opened["callback_id"] == "refund_submit"
    amount_block = next(b for b in opened["blocks"] if b.get("block_id") == "amount")
    assert amount_block["element"]["initial_value"] == amount
    answer = await staff.submit(
        "refund_submit", {"amount": amount, "reason": "paid twice"}, opened["private_metadata"], user=user
    )
    view: dict[str, Any] = answer.json()["view"]
    assert view["callback_id"] == "refund_confirm"
    return view


async def _confirm(staff: Staff, view: dict[str, Any], user: str = ALLOWED) -> str:
    done = await staff.submit("refund_confirm", {}, str(view["private_metadata"]), user=user)
    return json.dumps(done.json()["view"]["blocks"], ensure_ascii=False)


async def _refunds(db: Database) -> list[RefundRequest]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(RefundRequest).order_by(col(RefundRequest.created_at)))).all())


async def _refund_entries(db: Database) -> int:
    async with db.sessionmaker() as s:
        stmt = select(func.count()).select_from(LedgerEntry).where(col(LedgerEntry.kind) == "refund")
        return int((await s.execute(stmt)).scalar_one())


async def test_a_small_refund_is_executed_at_mollie_once_even_when_confirmed_twice(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie)
    view = await _confirmation(staff, tr, "20.00")
    assert f"Refund *€20.00* of payment `{tr}`" in json.dumps(view["blocks"], ensure_ascii=False)

    assert "The refund is on its way" in await _confirm(staff, view)
    assert "already submitted; it is not refunded twice" in await _confirm(staff, view)  # a double click

    [refund] = await _refunds(staff.db)
    assert refund.status == "executed" and refund.amount_minor == 20_00
    assert len(mollie.refund_creates) == 1 and await _refund_entries(staff.db) == 1
    [executed] = await audits(staff.db, "refund.executed")
    assert (executed.actor_type, executed.actor_id, executed.actor_name) == (
        "staff",
        ALLOWED,
        "name-uallowed",
    )
    assert staff.fake.calls_to("chat.postMessage") == []  # below the threshold: no four-eyes post


async def test_a_large_refund_waits_for_a_second_approver_then_mollie_executes_it(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie)
    view = await _confirmation(staff, tr, "80.00", user=APPROVER)
    assert "a second approver must agree" in await _confirm(staff, view, user=APPROVER)
    assert mollie.refund_creates == []
    [request] = staff.fake.calls_to("chat.postMessage")
    assert request.body["channel"] == STAFF_CHANNEL
    assert f"<@{APPROVER}> asks to refund *€80.00* of payment `{tr}`" in request.body["text"]
    [refund] = await _refunds(staff.db)
    blocks = request.body["blocks"]

    await staff.click("refund_approve", str(refund.id), APPROVER, blocks=blocks)
    assert "You asked for this refund yourself" in staff.fake.responses[-1]["text"]
    await staff.click("refund_approve", str(refund.id), ALLOWED, blocks=blocks)
    assert "only approvers" in staff.fake.responses[-1]["text"]
    await staff.click("refund_approve", str(refund.id), STRANGER, blocks=blocks)
    assert mollie.refund_creates == []
    refusals = await audits(staff.db, "slack.refused")
    assert [(a.actor_id, a.after) for a in refusals] == [
        (ALLOWED, {"attempt": "refund_approved", "needs": "SLACK_APPROVERS"}),
        (STRANGER, {"attempt": "refund_approved", "needs": "SLACK_APPROVERS"}),
    ]

    await staff.click("refund_approve", str(refund.id), APPROVER2, blocks=blocks)
    assert len(mollie.refund_creates) == 1 and await _refund_entries(staff.db) == 1
    [update] = staff.fake.calls_to("chat.update")
    assert (
        f"Approved by <@{APPROVER2}>" in update.body["text"]
        and "the refund is executed" in update.body["text"]
    )
    assert "refund_approve" not in json.dumps(update.body["blocks"])  # no more buttons
    [approved] = await audits(staff.db, "refund.approved")
    assert (approved.actor_id, approved.actor_name) == (APPROVER2, f"name-{APPROVER2.lower()}")


async def test_two_approvers_racing_make_one_refund_and_the_second_is_told(
    settings: Settings,
    committed: Database,
    redis: Redis,
    clock: FixedClock,
    fake: FakeSlack,
    provider: MollieProvider,
    mollie: FakeMollie,
) -> None:
    async for staff in wired_staff(settings, committed, redis, clock, fake, mollie, provider):
        tr = await _paid(staff, provider, mollie)
        await _confirm(staff, await _confirmation(staff, tr, "90.00"))
        [refund] = await _refunds(staff.db)

        await asyncio.gather(
            staff.click("refund_approve", str(refund.id), APPROVER),
            staff.click("refund_approve", str(refund.id), APPROVER2),
        )
        assert len(mollie.refund_creates) == 1 and await _refund_entries(staff.db) == 1
        assert len(staff.fake.calls_to("chat.update")) == 1
        [told] = staff.fake.responses
        assert "the refund is executed, not waiting for approval" in told["text"]


async def test_a_declined_refund_is_never_executed(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie)
    await _confirm(staff, await _confirmation(staff, tr, "60.00"))
    [refund] = await _refunds(staff.db)
    await staff.click("refund_decline", str(refund.id), APPROVER)
    [update] = staff.fake.calls_to("chat.update")
    assert f"Declined by <@{APPROVER}>" in update.body["text"]
    await staff.click("refund_approve", str(refund.id), APPROVER2)
    assert "the refund is declined" in staff.fake.responses[-1]["text"]
    assert mollie.refund_creates == [] and (await _refunds(staff.db))[0].status == "declined"


async def test_mollie_down_during_a_refund_is_retried_by_the_worker_and_a_refusal_fails_it(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie)
    mollie.fail_next(503)
    assert "could not be reached" in await _confirm(staff, await _confirmation(staff, tr, "10.00"))
    [refund] = await _refunds(staff.db)
    assert refund.status == "approved" and refund.error
    ctx = {"settings": staff.settings, "db": staff.db, "clock": staff.clock, "payments": provider}
    assert (await worker.execute_refunds(ctx))["executed"] == 1
    assert (await _refunds(staff.db))[0].status == "executed" and await _refund_entries(staff.db) == 1

    await _confirm(staff, await _confirmation(staff, tr, "70.00"))
    [_, big] = await _refunds(staff.db)
    mollie.fail_next(422)
    await staff.click("refund_approve", str(big.id), APPROVER2)
    [update] = staff.fake.calls_to("chat.update")
    assert "the payment provider refused the refund" in update.body["text"]
    assert (await _refunds(staff.db))[1].status == "failed" and await _refund_entries(staff.db) == 1


async def test_the_refund_policy_limits_are_explained(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie)
    for _ in range(2):
        assert "on its way" in await _confirm(staff, await _confirmation(staff, tr, "10.00"))
    third = await _confirm(staff, await _confirmation(staff, tr, "10.00"))
    assert (
        "The refund policy does not allow this: the refund policy allows 2 refunds per month per staff member"
        in third
    )
    assert "on its way" in await _confirm(staff, await _confirmation(staff, tr, "10.00", APPROVER), APPROVER)
    assert "on its way" in await _confirm(staff, await _confirmation(staff, tr, "10.00", APPROVER), APPROVER)
    overall = await _confirm(staff, await _confirmation(staff, tr, "10.00", APPROVER2), APPROVER2)
    assert "allows 4 refunds per month in total" in overall
    assert len(mollie.refund_creates) == 4


async def test_more_than_refundable_and_unknown_payments_are_field_errors(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie, 30_00)
    await staff.command(f"refund {tr}")
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    assert "€30.00 refundable" in json.dumps(opened["blocks"], ensure_ascii=False)
    too_much = await staff.submit(
        "refund_submit", {"amount": "31.00", "reason": "x"}, opened["private_metadata"]
    )
    assert "€30.00" in too_much.json()["errors"]["amount"]
    await staff.command("refund tr_unknown")
    assert "no PSP payment 'tr_unknown'" in staff.fake.responses[-1]["text"]


async def test_an_unparseable_amount_and_a_missing_reason_are_explained(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    tr = await _paid(staff, provider, mollie)
    await staff.command(f"refund {tr} 12,50")
    assert "“12,50” is not an amount" in staff.fake.responses[-1]["text"]
    assert staff.fake.calls_to("views.open") == []
    await staff.command(f"refund {tr}")
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    answer = await staff.submit("refund_submit", {"amount": "lots", "reason": ""}, opened["private_metadata"])
    errors = answer.json()["errors"]
    assert errors["amount"] == "“lots” is not an amount; write it like 12.50."
    assert "reason" in errors
    assert await _refunds(staff.db) == []


async def test_the_refund_button_on_the_debtor_card_asks_for_the_payment(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    d, tr = await paid(staff.db, provider, mollie, staff.clock, 50_00)
    await staff.click("refund_open", d, channel="CWORK")
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    meta = opened["private_metadata"]
    answer = await staff.submit(
        "refund_submit", {"payment": tr, "amount": "5.00", "reason": "goodwill"}, meta
    )
    assert "on its way" in await _confirm(staff, answer.json()["view"])
    assert len(mollie.refund_creates) == 1


async def test_a_stranger_cannot_refund(staff: Staff, provider: MollieProvider, mollie: FakeMollie) -> None:
    tr = await _paid(staff, provider, mollie)
    await staff.command(f"refund {tr} 10.00", user=STRANGER)
    assert "you are not on the list of people who may use duebot" in staff.fake.responses[-1]["text"]
    assert staff.fake.calls_to("views.open") == []
    meta = json.dumps({"payment": tr, "amount": "10.00", "currency": "EUR", "reason": "x", "nonce": "n1"})
    await staff.submit("refund_confirm", {}, meta, user=STRANGER)
    assert await _refunds(staff.db) == [] and mollie.refund_creates == []
    assert [a.actor_id for a in await audits(staff.db, "slack.refused")] == [STRANGER, STRANGER]


# ----------------------------------------------------------------------------- payment requests


async def test_the_payment_request_button_queues_a_message_with_a_mollie_link(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    from tests import factories

    d = await factories.debtor(staff.db, name="Bakkerij Smit")
    await factories.invoice(staff.db, d, amount_minor=45_00)
    await staff.click("payment_request", d, channel="CWORK")
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    assert opened["callback_id"] == "payment_request_submit"
    amount = next(b for b in opened["blocks"] if b.get("block_id") == "amount")
    assert amount["element"]["initial_value"] == "45.00"

    bad = await staff.submit(
        "payment_request_submit", {"amount": "a lot", "reason": ""}, opened["private_metadata"]
    )
    assert set(bad.json()["errors"]) == {"amount", "reason"}
    ok = await staff.submit(
        "payment_request_submit", {"amount": "12.50", "reason": "Workshop"}, opened["private_metadata"]
    )
    assert ok.status_code == 200 and not ok.content
    [told] = staff.fake.calls_to("chat.postEphemeral")
    assert told.body["channel"] == "CWORK" and "on its way to *Bakkerij Smit*" in told.body["text"]

    async with staff.db.sessionmaker() as s:
        [message] = (await s.scalars(select(Message).where(col(Message.kind) == "payment_request"))).all()
    assert message.status == "queued"
    assert (message.payload["amount_minor"], message.payload["reason"]) == (12_50, "Workshop")
    assert message.payload["requested_by"] == f"staff:{ALLOWED}"
    assert message.payload["psp_payment_id"] and len(mollie.creates) == 1  # the link in the message
    [created] = await audits(staff.db, "payment_request.created")
    assert (created.actor_id, created.actor_name) == (ALLOWED, "name-uallowed")


async def test_refund_requests_made_elsewhere_are_posted_by_the_worker_once(
    staff: Staff, provider: MollieProvider, mollie: FakeMollie
) -> None:
    from core.audit import Actor
    from core.money import Money
    from core.payments import refunds

    tr = await _paid(staff, provider, mollie)
    async with staff.db.session_scope() as s:
        await refunds.request_refund(
            s,
            tr,
            Money(75_00, "EUR"),
            "complaint",
            Actor("staff", "UAPI"),
            policy=refunds.RefundPolicy.from_settings(staff.settings),
            now=staff.clock.now(),
        )
    ctx = {"settings": staff.settings, "db": staff.db, "clock": staff.clock, "slack": staff.client}
    assert (await worker.post_staff_notifications(ctx))["refund_requests"] == 1
    assert (await worker.post_staff_notifications(ctx))["refund_requests"] == 0
    [post] = staff.fake.calls_to("chat.postMessage")
    assert "<@UAPI> asks to refund *€75.00*" in post.body["text"]
