"""Plan approvals, the debtor relay and disputes from Slack through the real core services, and the
worker posting what waits for staff (each once); a new batch is enqueued for posting on commit."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlmodel import col

import worker
from core.audit import Actor, AuditEvent
from core.config import Settings
from core.conversation.models import Chat
from core.db import Database
from core.debtors import repository as debtor_repo
from core.dunning import holds
from core.events.models import Event
from core.messaging.models import Message
from core.payments.providers.mollie import MollieProvider
from core.plans import service as plans
from core.plans.models import PaymentPlan
from core.ports import FixedClock
from tests import factories
from tests.bots.slack.conftest import ALLOWED, APPROVER, APPROVER2, STAFF_CHANNEL, Staff
from tests.bots.slack.wired import audits, wired_staff
from tests.fakes.mollie import FakeMollie
from tests.fakes.slack import FakeSlack

TODAY = date(2026, 11, 24)


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


def _ctx(staff: Staff) -> dict[str, Any]:
    return {"settings": staff.settings, "db": staff.db, "clock": staff.clock, "slack": staff.client}


async def _plan_waiting(db: Database) -> tuple[str, uuid.UUID]:
    """Garage Jansen asks for 20 instalments (the policy allows 6): the plan waits for staff."""
    d = await factories.debtor(db, name="Garage Jansen")
    rows = [factories.invoice_row(d, amount_minor=40_000, due_date=date(2026, 11, 30))]
    await factories.batch(db, rows)
    async with db.session_scope() as s:
        debtor = await debtor_repo.get_by_external_id(s, d)
        assert debtor is not None
        decision = await plans.propose(
            s,
            debtor_id=debtor.id,
            invoice_ids=None,
            instalments=20,
            monthly_amount_minor=None,
            actor=f"debtor:{d}",
            today=TODAY,
        )
    assert decision.outcome == "needs_approval" and decision.plan_id is not None
    return d, decision.plan_id


async def _plan(db: Database, plan_id: uuid.UUID) -> PaymentPlan:
    async with db.sessionmaker() as s:
        plan = await s.get(PaymentPlan, plan_id)
        assert plan is not None
        return plan


async def _posted_plan(staff: Staff) -> tuple[str, uuid.UUID, str, list[dict[str, Any]]]:
    d, plan_id = await _plan_waiting(staff.db)
    assert (await worker.post_staff_notifications(_ctx(staff)))["plan_approvals"] == 1
    assert (await worker.post_staff_notifications(_ctx(staff)))["plan_approvals"] == 0
    [post] = staff.fake.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL
    assert (
        "*Garage Jansen* asks for a payment plan outside policy: €400.00 in 20 instalments"
        in post.body["text"]
    )
    assert [e["action_id"] for e in post.body["blocks"][-1]["elements"]] == [
        "plan_accept",
        "plan_counter",
        "plan_decline",
    ]
    ts = "1764000000.000001"
    return d, plan_id, ts, post.body["blocks"]


async def test_a_plan_waiting_for_approval_is_posted_once_and_accepting_it_reaches_core(
    staff: Staff,
) -> None:
    _, plan_id, ts, blocks = await _posted_plan(staff)
    await staff.click("plan_accept", str(plan_id), ALLOWED, ts=ts, blocks=blocks)
    assert "only approvers" in staff.fake.responses[-1]["text"]
    assert (await _plan(staff.db, plan_id)).state == "pending_approval"

    await staff.click("plan_accept", str(plan_id), APPROVER, ts=ts, blocks=blocks)
    plan = await _plan(staff.db, plan_id)
    assert (plan.state, plan.decided_by) == ("approved_by_staff", f"staff:{APPROVER}")
    [update] = staff.fake.calls_to("chat.update")
    assert f"Accepted by <@{APPROVER}>" in json.dumps(update.body["blocks"])
    async with staff.db.sessionmaker() as s:
        [decided] = (await s.scalars(select(Event).where(col(Event.type) == "plan.decided"))).all()
    assert decided.payload["approved"] is True  # the chat tells the debtor from this event
    [approved] = await audits(staff.db, "plan.approved")
    assert (approved.actor_id, approved.actor_name) == (APPROVER, f"name-{APPROVER.lower()}")

    await staff.click("plan_decline", str(plan_id), APPROVER2, ts=ts, blocks=blocks)
    assert "only a plan waiting for approval can be decided" in staff.fake.responses[-1]["text"]


async def test_a_declined_plan_is_declined_in_core(staff: Staff) -> None:
    _, plan_id, ts, blocks = await _posted_plan(staff)
    await staff.click("plan_decline", str(plan_id), APPROVER, ts=ts, blocks=blocks)
    assert (await _plan(staff.db, plan_id)).state == "declined"


async def test_a_counter_offer_sets_the_terms_in_core(staff: Staff) -> None:
    _, plan_id, ts, blocks = await _posted_plan(staff)
    await staff.click("plan_counter", str(plan_id), APPROVER, ts=ts, blocks=blocks)
    view = staff.fake.calls_to("views.open")[0].body["view"]
    meta = view["private_metadata"]
    vague = await staff.submit("plan_counter_submit", {"note": "fewer please"}, meta, user=APPROVER)
    assert "6 instalments" in vague.json()["errors"]["note"]  # it says how to give the terms
    await staff.submit("plan_counter_submit", {"note": "8 instalments, sorry"}, meta, user=APPROVER)
    plan = await _plan(staff.db, plan_id)
    assert (plan.state, plan.instalment_count) == ("approved_by_staff", 8)
    assert "Countered by <@UAPPROVER>" in json.dumps(staff.fake.calls_to("chat.update")[0].body["blocks"])


async def test_the_debtor_card_shows_the_plan(staff: Staff) -> None:
    d, _, _, _ = await _posted_plan(staff)
    await staff.command(f"debtor {d}")
    card = json.dumps(staff.fake.responses[-1]["blocks"], ensure_ascii=False)
    assert "pending approval: 400.00 EUR in 20 instalments, 0.00 paid, next due" in card


# ----------------------------------------------------------------------------- relay and disputes


async def test_a_staff_reply_in_a_relay_thread_lands_on_the_debtors_chat_outbox(staff: Staff) -> None:
    from bots.slack import notify
    from bots.slack.seams import RelayNotice

    d = await factories.debtor(staff.db, name="Bakkerij Smit")
    async with staff.db.session_scope() as s:
        debtor = await debtor_repo.get_by_external_id(s, d)
        assert debtor is not None
        chat = Chat(channel="telegram", chat_id="4711", debtor_id=debtor.id)
        s.add(chat)
        await s.flush()
        chat_ref = str(chat.id)
    notice = RelayNotice(chat_ref, "Bakkerij Smit", "telegram", "can I talk to a person?")
    ts = await notify.post_relay_thread(staff.client, staff.db, STAFF_CHANNEL, notice, staff.clock.now())
    await staff.event(
        {
            "type": "message",
            "channel": STAFF_CHANNEL,
            "thread_ts": ts,
            "user": ALLOWED,
            "text": "Hi, this is Anna from finance",
            "ts": "1764000001.1",
        }
    )
    async with staff.db.sessionmaker() as s:
        [message] = (await s.scalars(select(Message).where(col(Message.kind) == "chat"))).all()
    assert (message.channel, message.status, message.payload["chat_id"]) == ("telegram", "queued", "4711")
    assert "Hi, this is Anna from finance" in message.payload["text"]
    assert message.payload["staff"] == f"staff:{ALLOWED}"
    async with staff.db.sessionmaker() as s:
        [entry] = (
            await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == "chat.staff_message"))
        ).all()
    assert (entry.actor_id, entry.actor_name) == (ALLOWED, "Some One")  # the name comes from users.info


async def test_a_relay_without_a_linked_chat_tells_the_staff_member(staff: Staff) -> None:
    from bots.slack import notify
    from bots.slack.seams import RelayNotice

    notice = RelayNotice(str(uuid.uuid4()), "Nobody", "telegram", "hello")
    ts = await notify.post_relay_thread(staff.client, staff.db, STAFF_CHANNEL, notice, staff.clock.now())
    await staff.event(
        {
            "type": "message",
            "channel": STAFF_CHANNEL,
            "thread_ts": ts,
            "user": ALLOWED,
            "text": "hello?",
            "ts": "1764000002.1",
        }
    )
    [note] = staff.fake.calls_to("chat.postEphemeral")
    assert "this debtor has no linked chat to answer in" in note.body["text"]


async def test_a_new_dispute_is_posted_by_the_worker_once_and_resolving_it_resumes_dunning(
    staff: Staff,
) -> None:
    d = await factories.debtor(staff.db, name="Bakkerij Smit")
    inv = await factories.invoice(staff.db, d, number="2026-00900", amount_minor=24_200)
    async with staff.db.session_scope() as s:
        await holds.dispute(s, inv, reason="never delivered", actor=Actor("debtor", d))
    assert (await worker.post_staff_notifications(_ctx(staff)))["disputes"] == 1
    assert (await worker.post_staff_notifications(_ctx(staff)))["disputes"] == 0
    [post] = staff.fake.calls_to("chat.postMessage")
    assert "*Bakkerij Smit* disputes invoice `2026-00900` (€242.00)" in post.body["text"]
    await staff.click("dispute_resolve", inv, ALLOWED, blocks=post.body["blocks"])
    async with staff.db.sessionmaker() as s:
        state = await holds.state_of(s, inv)
    assert not state[1].disputed


# ----------------------------------------------------------------------------- batches


async def test_a_batch_from_the_api_is_enqueued_for_posting_after_its_commit(
    staff: Staff, redis: Redis, db: Database
) -> None:
    from arq import ArqRedis
    from arq.jobs import Job, JobStatus

    key = await factories.api_key(db, scopes=["*"])
    d = await factories.debtor(db)
    body = {
        "invoices": [
            {
                "external_id": "INV-NEW-1",
                "debtor_external_id": d,
                "number": "2026-77777",
                "issue_date": "2026-11-01",
                "due_date": "2026-12-01",
                "currency": "EUR",
                "amount": "99.00",
            }
        ]
    }
    answer = await staff.http.post(
        "/api/v1/invoice-batches", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201, answer.text
    batch_id = answer.json()["id"]
    pool = ArqRedis(connection_pool=redis.connection_pool)
    job = Job(f"batch-post:{batch_id}", pool)
    assert await job.status() == JobStatus.queued
    assert (await job.info()) is not None and (await job.info()).function == "post_batch_for_approval"  # type: ignore[union-attr]

    # the job itself posts the batch at once; the minute cron then finds nothing to do
    ctx = _ctx(staff)
    assert await worker.post_batch_for_approval(ctx, batch_id) is True
    assert (await worker.post_staff_notifications(ctx))["batches"] == 0
    assert len(staff.fake.calls_to("chat.postMessage")) == 1
    again = await staff.http.post(
        "/api/v1/invoice-batches", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert again.status_code == 200  # the same invoices again: nothing new to post
