"""Refunds with four-eyes and payment plan approvals, through the seams the payments and plans
modules fill (stood in for here by small in-test services with the same policy shape)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bots.slack import notify
from bots.slack.seams import PaymentInfo, PlanRequest, RefundRequest, StaffHooks
from core.audit import Actor
from core.db import Database
from core.errors import Conflict, Forbidden, NotFound, PolicyViolation
from core.money import Money
from tests.bots.slack.conftest import ALLOWED, APPROVER, APPROVER2, STAFF_CHANNEL, STRANGER, Staff
from tests.conftest import NOW

THRESHOLD = 100_00  # above this, a second approver must agree
LIMIT = 500_00


@dataclass
class FakeRefunds:
    """The refund policy's shape: executed up to the threshold, four-eyes above, refused past the limit."""

    refunds: dict[str, RefundRequest] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)

    async def payment_info(self, session: AsyncSession, payment_id: str) -> PaymentInfo:
        if payment_id != "tr_1":
            raise NotFound(f"payment {payment_id!r} does not exist", "payment_not_found")
        return PaymentInfo("tr_1", "Bakkerij Smit", Money(800_00, "EUR"), Money(800_00, "EUR"))

    async def request(
        self, session: AsyncSession, payment_id: str, amount: int | None, reason: str, actor: Actor
    ) -> RefundRequest:
        assert amount is not None
        if amount > LIMIT:
            raise PolicyViolation("at most €500.00 may be refunded per week", "refund_limit")
        status = "needs_approval" if amount > THRESHOLD else "executed"
        refund = RefundRequest(
            f"re_{len(self.refunds) + 1}",
            payment_id,
            "Bakkerij Smit",
            Money(amount, "EUR"),
            reason,
            actor.id,
            status,
        )
        self.refunds[refund.id] = refund
        if status == "executed":
            self.executed.append(refund.id)
        return refund

    async def approve(self, session: AsyncSession, refund_id: str, actor: Actor) -> RefundRequest:
        refund = self.refunds[refund_id]
        if refund.status != "needs_approval":
            raise Conflict(f"refund {refund_id} was already {refund.status}", "already_decided")
        if refund.requested_by == actor.id:
            raise Forbidden("the requester cannot approve", "four_eyes")
        self.refunds[refund_id] = refund = RefundRequest(**{**refund.__dict__, "status": "approved"})
        self.executed.append(refund_id)
        return refund

    async def decline(self, session: AsyncSession, refund_id: str, actor: Actor) -> RefundRequest:
        refund = self.refunds[refund_id]
        self.refunds[refund_id] = refund = RefundRequest(**{**refund.__dict__, "status": "declined"})
        return refund


@dataclass
class FakePlans:
    decisions: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    async def decide(
        self, session: AsyncSession, plan_id: str, decision: str, note: str | None, actor: Actor
    ) -> None:
        if any(d[0] == plan_id for d in self.decisions):
            raise Conflict("the plan was already decided", "already_decided")
        self.decisions.append((plan_id, decision, note, actor.id))


@pytest.fixture
def refunds() -> FakeRefunds:
    return FakeRefunds()


@pytest.fixture
def plans() -> FakePlans:
    return FakePlans()


@pytest.fixture
def hooks(refunds: FakeRefunds, plans: FakePlans) -> StaffHooks:
    return StaffHooks(
        payment_info=refunds.payment_info,
        request_refund=refunds.request,
        approve_refund=refunds.approve,
        decline_refund=refunds.decline,
        decide_plan=plans.decide,
    )


async def _confirm(staff: Staff, amount: str, user: str = ALLOWED) -> dict[str, object]:
    """`/ar refund tr_1 <amount>`, fill in the form, and return the confirmation view."""
    await staff.command(f"refund tr_1 {amount}", user=user)
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    assert opened["callback_id"] == "refund_submit"
    amount_block = next(b for b in opened["blocks"] if b.get("block_id") == "amount")
    response = await staff.submit(
        "refund_submit",
        {"amount": amount_block["element"]["initial_value"], "reason": "double payment"},
        opened["private_metadata"],
        user=user,
    )
    answer = response.json()
    assert answer["response_action"] == "update"
    view: dict[str, object] = answer["view"]
    return view


async def test_a_small_refund_is_confirmed_and_executed(staff: Staff, refunds: FakeRefunds) -> None:
    view = await _confirm(staff, "25.00")
    assert view["callback_id"] == "refund_confirm"
    assert "Refund *€25.00* of payment `tr_1` to *Bakkerij Smit*?" in json.dumps(
        view["blocks"], ensure_ascii=False
    )
    done = await staff.submit("refund_confirm", {}, str(view["private_metadata"]))
    assert "The refund is on its way" in json.dumps(done.json()["view"])
    assert refunds.executed == ["re_1"]
    assert staff.fake.calls_to("chat.postMessage") == []


async def test_an_unparseable_amount_and_a_missing_reason_are_field_errors(staff: Staff) -> None:
    await staff.command("refund tr_1 12,50")
    assert "“12,50” is not an amount" in staff.fake.responses[0]["text"]
    await staff.command("refund tr_1")
    opened = staff.fake.calls_to("views.open")[-1].body["view"]
    response = await staff.submit(
        "refund_submit", {"amount": "lots", "reason": ""}, opened["private_metadata"]
    )
    errors = response.json()["errors"]
    assert errors["amount"] == "“lots” is not an amount; write it like 12.50."
    assert "reason" in errors
    await staff.command("refund tr_404")
    assert "payment 'tr_404' does not exist" in staff.fake.responses[-1]["text"]


async def test_a_refund_past_the_policy_limit_is_explained(staff: Staff, refunds: FakeRefunds) -> None:
    view = await _confirm(staff, "600.00")
    done = await staff.submit("refund_confirm", {}, str(view["private_metadata"]))
    assert "The refund policy does not allow this: at most €500.00 may be refunded per week" in json.dumps(
        done.json()["view"], ensure_ascii=False
    )
    assert refunds.executed == []


async def test_a_large_refund_needs_a_second_approver_who_is_not_the_requester(
    staff: Staff, refunds: FakeRefunds, db: Database
) -> None:
    view = await _confirm(staff, "250.00", user=APPROVER)
    done = await staff.submit("refund_confirm", {}, str(view["private_metadata"]), user=APPROVER)
    assert "a second approver must agree" in json.dumps(done.json()["view"])
    assert refunds.executed == []
    [request] = staff.fake.calls_to("chat.postMessage")
    assert request.body["channel"] == STAFF_CHANNEL
    assert "<@UAPPROVER> asks to refund *€250.00* of payment `tr_1`" in request.body["text"]
    ts = "1764000000.000001"

    await staff.click("refund_approve", "re_1", APPROVER, ts=ts, blocks=request.body["blocks"])
    assert "You asked for this refund yourself" in staff.fake.responses[-1]["text"]
    await staff.click("refund_approve", "re_1", ALLOWED, ts=ts, blocks=request.body["blocks"])
    assert "only approvers" in staff.fake.responses[-1]["text"]
    assert refunds.executed == []

    await staff.click("refund_approve", "re_1", APPROVER2, ts=ts, blocks=request.body["blocks"])
    assert refunds.executed == ["re_1"]
    [update] = staff.fake.calls_to("chat.update")
    assert "Approved by <@UAPPROVER2>" in json.dumps(update.body["blocks"])
    await staff.click("refund_approve", "re_1", APPROVER2, ts=ts, blocks=request.body["blocks"])
    assert "refund re_1 was already approved" in staff.fake.responses[-1]["text"]
    assert refunds.executed == ["re_1"]


async def test_a_stranger_cannot_confirm_a_refund(staff: Staff, refunds: FakeRefunds) -> None:
    meta = json.dumps({"payment": "tr_1", "amount": "25.00", "currency": "EUR", "reason": "x"})
    await staff.submit("refund_confirm", {}, meta, user=STRANGER)
    assert refunds.refunds == {}


def _plan() -> PlanRequest:
    return PlanRequest(
        "plan-7", "Garage Jansen", Money(1_200_00, "EUR"), 12, date(2026, 12, 1), "at most 6 instalments"
    )


async def test_a_plan_outside_policy_is_accepted_by_an_approver(
    staff: Staff, db: Database, plans: FakePlans
) -> None:
    ts = await notify.post_plan_approval(staff.client, db, STAFF_CHANNEL, _plan(), NOW)
    assert ts is not None
    [post] = staff.fake.calls_to("chat.postMessage")
    assert (
        "*Garage Jansen* asks for a payment plan outside policy: €1,200.00 in 12 instalments"
        in post.body["text"]
    )
    assert [e["action_id"] for e in post.body["blocks"][-1]["elements"]] == [
        "plan_accept",
        "plan_counter",
        "plan_decline",
    ]
    await staff.click("plan_accept", "plan-7", ALLOWED, ts=ts)
    assert plans.decisions == []
    await staff.click("plan_accept", "plan-7", APPROVER, ts=ts)
    assert plans.decisions == [("plan-7", "accept", None, APPROVER)]
    [update] = staff.fake.calls_to("chat.update")
    text = json.dumps(update.body["blocks"])
    assert "Accepted by <@UAPPROVER>" in text and "Garage Jansen" in text
    await staff.click("plan_decline", "plan-7", APPROVER2, ts=ts)
    assert "the plan was already decided" in staff.fake.responses[-1]["text"]


async def test_a_counter_offer_needs_a_note_and_goes_to_the_debtor(
    staff: Staff, db: Database, plans: FakePlans
) -> None:
    ts = await notify.post_plan_approval(staff.client, db, STAFF_CHANNEL, _plan(), NOW)
    assert ts is not None
    await staff.click("plan_counter", "plan-7", APPROVER, ts=ts)
    view = staff.fake.calls_to("views.open")[0].body["view"]
    empty = await staff.submit("plan_counter_submit", {"note": " "}, view["private_metadata"], user=APPROVER)
    assert "note" in empty.json()["errors"]
    await staff.submit(
        "plan_counter_submit", {"note": "6 instalments of €200"}, view["private_metadata"], user=APPROVER
    )
    assert plans.decisions == [("plan-7", "counter", "6 instalments of €200", APPROVER)]
    [update] = staff.fake.calls_to("chat.update")
    assert update.body["ts"] == ts and "Countered by <@UAPPROVER>" in json.dumps(update.body["blocks"])
