"""Broken promises, dispute threads and the human relay thread in the staff channel."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

import worker
from bots.slack import notify
from bots.slack.seams import DisputeNotice, RelayNotice, StaffHooks
from core.audit import Actor
from core.config import Settings
from core.db import Database
from core.dunning import holds
from core.dunning.models import DunningState
from core.errors import Conflict
from core.invoices.models import Invoice
from core.ledger import repository as ledger_repo
from core.money import Money
from tests import factories
from tests.bots.slack.conftest import ALLOWED, APPROVER, STAFF_CHANNEL, STRANGER, Staff
from tests.conftest import NOW


@dataclass
class FakeConversation:
    """Stands in for core.conversation.relay_to_debtor (another branch): records what was relayed."""

    relayed: list[tuple[str, str, str]] = field(default_factory=list)

    async def relay_to_debtor(
        self, session: AsyncSession, conversation_id: str, text: str, actor: Actor
    ) -> None:
        if conversation_id == "closed":
            raise Conflict("the conversation was closed by the debtor", "conversation_closed")
        self.relayed.append((conversation_id, text, actor.id))


@pytest.fixture
def conversation() -> FakeConversation:
    return FakeConversation()


@pytest.fixture
def hooks(conversation: FakeConversation) -> StaffHooks:
    return StaffHooks(relay_to_debtor=conversation.relay_to_debtor)


async def _state(db: Database, external_id: str) -> DunningState:
    async with db.sessionmaker() as s:
        invoice = (await s.scalars(select(Invoice).where(col(Invoice.external_id) == external_id))).one()
        state = await s.get(DunningState, invoice.id)
        assert state is not None
        await s.refresh(state)
        return state


async def test_a_broken_promise_is_posted_once(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Bakkerij Smit")
    await factories.invoice(db, "D-1", external_id="INV-A", number="2026-00100", due_date=date(2026, 11, 1))
    today = NOW.date()
    async with db.session_scope() as s:
        await holds.promise(
            s,
            "INV-A",
            on=today - timedelta(days=10),
            amount_minor=None,
            today=today - timedelta(days=12),
            actor=factories.TEST_ACTOR,
            source="telegram",
        )
        assert await holds.break_promises(s, today) == ["INV-A"]
    ctx = {"settings": staff.settings, "db": db, "clock": staff.clock, "slack": staff.client}
    assert (await worker.post_staff_notifications(ctx))["broken_promises"] == 1
    assert (await worker.post_staff_notifications(ctx))["broken_promises"] == 0
    [post] = staff.fake.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL
    assert "Promise broken: *Bakkerij Smit* did not pay `2026-00100` (INV-A), €100.00" in post.body["text"]


async def _disputed(db: Database) -> DisputeNotice:
    await factories.debtor(db, "D-1", name="Bakkerij Smit")
    await factories.invoice(db, "D-1", external_id="INV-A", number="2026-00100", amount_minor=24_200)
    async with db.session_scope() as s:
        await holds.dispute(s, "INV-A", reason="the oven was never delivered", actor=Actor("debtor", "D-1"))
    return DisputeNotice(
        "INV-A", "2026-00100", "Bakkerij Smit", Money(24_200, "EUR"), "the oven was <never> delivered"
    )


async def test_a_dispute_opens_a_thread_and_resolving_it_resumes_dunning(staff: Staff, db: Database) -> None:
    notice = await _disputed(db)
    ts = await notify.post_dispute_thread(staff.client, db, STAFF_CHANNEL, notice, NOW)
    assert ts is not None
    assert await notify.post_dispute_thread(staff.client, db, STAFF_CHANNEL, notice, NOW) is None
    [post] = staff.fake.calls_to("chat.postMessage")
    root = post.body["blocks"]
    assert "*Bakkerij Smit* disputes invoice `2026-00100` (€242.00)" in root[0]["text"]["text"]
    assert "&lt;never&gt;" in root[0]["text"]["text"]  # the debtor's words cannot ping or link
    await staff.click("dispute_resolve", "INV-A", ALLOWED, ts=ts, blocks=root)
    assert not (await _state(db, "INV-A")).disputed
    [update] = staff.fake.calls_to("chat.update")
    assert update.body["ts"] == ts
    assert "<@UALLOWED> resolved the dispute: dunning resumes." in json.dumps(update.body["blocks"])
    assert all(b["type"] != "actions" for b in update.body["blocks"])


async def test_crediting_a_dispute_needs_an_approver_and_settles_the_invoice(
    staff: Staff, db: Database
) -> None:
    notice = await _disputed(db)
    ts = await notify.post_dispute_thread(staff.client, db, STAFF_CHANNEL, notice, NOW)
    assert ts is not None
    await staff.click("dispute_credit", "INV-A", ALLOWED, ts=ts)
    assert "only approvers" in staff.fake.responses[0]["text"]
    assert (await _state(db, "INV-A")).disputed
    await staff.click("dispute_credit", "INV-A", APPROVER, ts=ts)
    assert not (await _state(db, "INV-A")).disputed
    async with db.sessionmaker() as s:
        invoice = (await s.scalars(select(Invoice).where(col(Invoice.external_id) == "INV-A"))).one()
        assert await ledger_repo.open_amount(s, invoice.id) == 0
    assert "the invoice is credited" in json.dumps(staff.fake.calls_to("chat.update")[0].body["blocks"])


async def test_a_human_relay_thread_carries_messages_both_ways(
    staff: Staff, db: Database, conversation: FakeConversation
) -> None:
    notice = RelayNotice("conv-42", "Bakkerij Smit", "telegram", "can I talk to a person?")
    ts = await notify.post_relay_thread(staff.client, db, STAFF_CHANNEL, notice, NOW)
    assert ts is not None
    assert (
        "*Bakkerij Smit* asks for a person (via telegram)"
        in staff.fake.calls_to("chat.postMessage")[0].body["text"]
    )

    # debtor -> thread
    assert await notify.relay_debtor_message(staff.client, db, "conv-42", "Bakkerij Smit", "hello?")
    assert not await notify.relay_debtor_message(staff.client, db, "conv-unknown", "X", "hi")
    relayed_in = staff.fake.calls_to("chat.postMessage")[1].body
    assert (relayed_in["channel"], relayed_in["thread_ts"], relayed_in["text"]) == (
        STAFF_CHANNEL,
        ts,
        "*Bakkerij Smit*: hello?",
    )

    # thread -> debtor: staff replies are relayed; the bot's own posts and the root are not
    thread = {"type": "message", "channel": STAFF_CHANNEL, "thread_ts": ts}
    await staff.event(
        thread | {"user": ALLOWED, "text": "Hi, this is Anna from finance", "ts": "1764000001.1"}
    )
    await staff.event(thread | {"bot_id": "B0TEST", "text": "*Bakkerij Smit*: hello?", "ts": "1764000001.2"})
    await staff.event(
        {
            "type": "message",
            "channel": STAFF_CHANNEL,
            "user": ALLOWED,
            "text": "elsewhere",
            "ts": "1764000001.3",
        }
    )
    assert conversation.relayed == [("conv-42", "Hi, this is Anna from finance", ALLOWED)]

    # a stranger's reply is refused and not relayed
    await staff.event(thread | {"user": STRANGER, "text": "psst", "ts": "1764000001.4"})
    assert len(conversation.relayed) == 1
    [refused] = staff.fake.calls_to("chat.postEphemeral")
    assert refused.body["user"] == STRANGER and "not on the list" in refused.body["text"]


async def test_a_relay_to_a_closed_conversation_tells_the_staff_member(
    staff: Staff, db: Database, conversation: FakeConversation
) -> None:
    ts = await notify.post_relay_thread(
        staff.client, db, STAFF_CHANNEL, RelayNotice("closed", "X", "whatsapp", "hi"), NOW
    )
    await staff.event(
        {
            "type": "message",
            "channel": STAFF_CHANNEL,
            "thread_ts": ts,
            "user": ALLOWED,
            "text": "hello",
            "ts": "1764000002.1",
        }
    )
    [note] = staff.fake.calls_to("chat.postEphemeral")
    assert "the conversation was closed by the debtor" in note.body["text"]


async def test_the_notify_staff_notifier_posts_each_subject_once(
    staff: Staff, db: Database, settings: Settings
) -> None:
    assert notify.SlackStaffNotifier.from_settings(settings, db, staff.clock) is None  # Slack not set up
    notifier = notify.SlackStaffNotifier.from_settings(staff.settings, db, staff.clock)
    assert notifier is not None
    notice = await _disputed(db)
    assert await notifier.dispute(notice) is not None
    assert await notifier.dispute(notice) is None
    ts = await notifier.human_relay(RelayNotice("conv-1", "Bakkerij Smit", "whatsapp", "help"))
    assert await notifier.debtor_message("conv-1", "Bakkerij Smit", "anyone?")
    calls = staff.fake.calls_to("chat.postMessage")
    assert len(calls) == 3 and calls[2].body["thread_ts"] == ts
