"""Batch approval in the staff channel: posted once by the worker, decided by approvers only, once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select
from sqlmodel import col

import worker
from bots.slack.seams import StaffHooks
from core.audit import Actor, AuditEvent
from core.config import Settings
from core.db import Database
from core.invoices import service as invoices
from core.invoices.models import InvoiceBatch
from core.messaging.models import Message
from core.ports import FixedClock
from core.staff.models import StaffPost
from tests import factories
from tests.bots.slack.conftest import ALLOWED, APPROVER, APPROVER2, STAFF_CHANNEL, Staff, staff_for
from tests.fakes.slack import FakeSlack


async def _pending_batch(db: Database) -> uuid.UUID:
    await factories.debtor(db, "D-1", name="Bakkerij Smit")
    await factories.debtor(
        db, "D-2", name="Garage Jansen", email=None, phone="+31612345678", channel_order=["sms", "email"]
    )
    rows = [
        factories.invoice_row("D-1", number="2026-00010", amount_minor=10_000, due_date=date(2026, 12, 20)),
        factories.invoice_row("D-1", number="2026-00011", amount_minor=2_550, due_date=date(2026, 12, 5)),
        factories.invoice_row("D-2", number="2026-00012", amount_minor=40_000, due_date=date(2026, 12, 10)),
        factories.invoice_row(
            "D-2", number="2026-00013", amount_minor=5_000, currency="USD", due_date=date(2026, 12, 30)
        ),
    ]
    batch = await factories.batch(db, rows, approve=False)
    return batch.id


def _ctx(staff: Staff) -> dict[str, Any]:
    return {"settings": staff.settings, "db": staff.db, "clock": staff.clock, "slack": staff.client}


def _all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def _audits(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == action))).all())


async def _batch(db: Database, batch_id: uuid.UUID) -> InvoiceBatch:
    async with db.sessionmaker() as s:
        found = await s.get(InvoiceBatch, batch_id)
        assert found is not None
        await s.refresh(found)
        return found


async def test_a_new_batch_is_posted_once_with_count_totals_mix_due_date_samples_and_buttons(
    staff: Staff, db: Database
) -> None:
    batch_id = await _pending_batch(db)
    assert await worker.post_staff_notifications(_ctx(staff)) == {
        "batches": 1,
        "batches_closed": 0,
        "broken_promises": 0,
        "plan_approvals": 0,
        "refund_requests": 0,
        "disputes": 0,
    }
    assert (await worker.post_staff_notifications(_ctx(staff)))["batches"] == 0
    [post] = staff.fake.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL
    text = _all_text(post.body["blocks"])
    assert "*4 invoices* (test) waiting for approval" in text
    assert "*Total:* €525.50, $50.00" in text
    assert "*Channels:* email 2, sms 2" in text
    assert "*Earliest due date:* 2026-12-05" in text
    assert text.count("• `2026-0001") == 3  # three samples, earliest due first
    assert "`2026-00011` Bakkerij Smit: €25.50, due 2026-12-05" in text
    buttons = post.body["blocks"][-1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("batch_approve", str(batch_id)),
        ("batch_reject", str(batch_id)),
    ]


async def test_the_worker_job_posts_a_batch_once(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    assert await worker.post_batch_for_approval(_ctx(staff), str(batch_id)) is True
    assert await worker.post_batch_for_approval(_ctx(staff), str(batch_id)) is False
    assert len(staff.fake.calls_to("chat.postMessage")) == 1


async def test_a_429_on_post_message_is_retried_after_retry_after(staff: Staff, db: Database) -> None:
    await _pending_batch(db)
    staff.fake.fail_next("chat.postMessage", 429, retry_after="1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await worker.post_staff_notifications(_ctx(staff)))["batches"] == 1
    assert loop.time() - started >= 1.0
    attempts = staff.fake.calls_to("chat.postMessage", ok=False)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[0].body == attempts[1].body


async def test_slack_failing_leaves_the_batch_for_the_next_run(staff: Staff, db: Database) -> None:
    await _pending_batch(db)
    staff.fake.fail_next("chat.postMessage", 500)
    with pytest.raises(SlackApiError):
        await worker.post_staff_notifications(_ctx(staff))
    async with db.sessionmaker() as s:
        assert (await s.execute(select(func.count()).select_from(StaffPost))).scalar_one() == 0
    assert (await worker.post_staff_notifications(_ctx(staff)))["batches"] == 1


async def test_an_approver_approves_and_the_message_shows_who_and_when(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    await worker.post_staff_notifications(_ctx(staff))
    async with db.sessionmaker() as s:
        post = (await s.scalars(select(StaffPost))).one()
    assert (post.kind, post.ref, post.channel) == ("batch", str(batch_id), STAFF_CHANNEL)
    ts = post.ts
    assert ts is not None
    await staff.click("batch_approve", str(batch_id), APPROVER, ts=ts)
    batch = await _batch(db, batch_id)
    assert (batch.status, batch.decided_by) == ("approved", f"staff:{APPROVER}")
    [update] = staff.fake.calls_to("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (STAFF_CHANNEL, ts)
    text = _all_text(update.body["blocks"])
    assert "*Approved* by <@UAPPROVER> at 20" in text
    assert all(b["type"] != "actions" for b in update.body["blocks"])
    async with db.sessionmaker() as s:
        queued = await s.execute(
            select(func.count()).select_from(Message).where(col(Message.kind) == "invoice")
        )
        assert queued.scalar_one() == 4  # the throttled distribution is queued
    [audit] = await _audits(db, "batch.approved")
    assert (audit.actor_id, audit.actor_name) == (APPROVER, "name-uapprover")


async def test_an_allowed_user_who_is_no_approver_is_refused_and_audited(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    await staff.click("batch_approve", str(batch_id), ALLOWED)
    assert (await _batch(db, batch_id)).status == "pending_approval"
    assert "only approvers (SLACK_APPROVERS) may decide" in staff.fake.responses[0]["text"]
    [refusal] = await _audits(db, "slack.refused")
    assert refusal.actor_id == ALLOWED and refusal.after == {
        "attempt": "batch_approve",
        "needs": "SLACK_APPROVERS",
    }
    assert staff.fake.calls_to("chat.update") == []


async def test_approve_twice_is_one_decision_and_the_second_is_told(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    await staff.click("batch_approve", str(batch_id), APPROVER)
    await staff.click("batch_approve", str(batch_id), APPROVER2)
    await staff.click("batch_reject", str(batch_id), APPROVER2)
    assert len(await _audits(db, "batch.approved")) == 1
    assert len(staff.fake.calls_to("chat.update")) == 1
    told = [r["text"] for r in staff.fake.responses]
    assert len(told) == 2
    assert all(t.startswith("This batch was already approved by <@UAPPROVER> at ") for t in told)


async def test_reject_drops_the_invoices_and_updates_the_message(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    await staff.click("batch_reject", str(batch_id), APPROVER2)
    assert (await _batch(db, batch_id)).status == "rejected"
    [update] = staff.fake.calls_to("chat.update")
    assert "*Rejected* by <@UAPPROVER2>" in _all_text(update.body["blocks"])


@pytest.fixture
async def racing_staff(
    settings: Settings, committed: Database, redis: Redis, clock: FixedClock, fake: FakeSlack
) -> AsyncIterator[Staff]:
    async for s in staff_for(settings, committed, redis, clock, fake, StaffHooks()):
        yield s


async def test_two_approvers_at_once_make_one_decision(racing_staff: Staff, committed: Database) -> None:
    batch_id = await _pending_batch(committed)
    await asyncio.gather(
        racing_staff.click("batch_approve", str(batch_id), APPROVER),
        racing_staff.click("batch_approve", str(batch_id), APPROVER2),
    )
    assert len(await _audits(committed, "batch.approved")) == 1
    assert len(racing_staff.fake.calls_to("chat.update")) == 1
    [told] = racing_staff.fake.responses
    winner = (await _batch(committed, batch_id)).decided_by
    assert winner is not None
    assert told["text"].startswith(f"This batch was already approved by <@{winner.removeprefix('staff:')}>")


async def test_a_batch_decided_through_the_api_loses_its_buttons_in_slack(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    await worker.post_staff_notifications(_ctx(staff))
    async with db.session_scope() as s:
        await invoices.approve(s, batch_id, actor=Actor("api_key", "erp1234", "ERP"))
    assert (await worker.post_staff_notifications(_ctx(staff)))["batches_closed"] == 1
    assert (await worker.post_staff_notifications(_ctx(staff)))["batches_closed"] == 0
    [update] = staff.fake.calls_to("chat.update")
    assert "*Approved* by api_key:erp1234 at" in _all_text(update.body["blocks"])
    assert all(b["type"] != "actions" for b in update.body["blocks"])


async def test_a_batch_decided_in_slack_is_not_updated_again(staff: Staff, db: Database) -> None:
    batch_id = await _pending_batch(db)
    await worker.post_staff_notifications(_ctx(staff))
    await staff.click("batch_approve", str(batch_id), APPROVER)
    assert (await worker.post_staff_notifications(_ctx(staff)))["batches_closed"] == 0
    assert len(staff.fake.calls_to("chat.update")) == 1
