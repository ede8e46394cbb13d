"""Channel and language preferences, stop, a person (and staff answers back), help, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from core.conversation import relay
from core.conversation.engine import ConversationDeps
from core.conversation.flows.plan import read_proposal
from core.db import Database
from core.debtors.models import ContactPoint, Debtor
from core.errors import NotFound
from core.events.models import Event
from core.messaging import delivery
from core.messaging.models import Message
from core.ports import FixedClock, OutboundMessage, SendResult
from tests.core.conversation.conftest import STAFF, linked_chat
from tests.core.conversation.transcript import Chat


async def _debtor(db: Database, external_id: str) -> Debtor:
    async with db.sessionmaker() as s:
        return (await s.scalars(select(Debtor).where(col(Debtor.external_id) == external_id))).one()


async def _points(db: Database, external_id: str) -> dict[str, bool]:
    debtor = await _debtor(db, external_id)
    async with db.sessionmaker() as s:
        rows = (await s.scalars(select(ContactPoint).where(col(ContactPoint.debtor_id) == debtor.id))).all()
    return {p.kind: p.opted_out for p in rows}


async def test_stop_opts_out_of_this_chat_only(db: Database, en_chat: Chat, debtor_en: str) -> None:
    await en_chat.run("""
        > please stop messaging me
        < prefs.stopped | We will still write to you by e-mail
    """)
    assert await _points(db, debtor_en) == {"email": False, "phone": False, "telegram": True}
    await en_chat.run("""
        >> prefs:resume
        < prefs.resumed
    """)
    assert (await _points(db, debtor_en))["telegram"] is False


async def test_channel_preference(db: Database, en_chat: Chat, debtor_en: str) -> None:
    await en_chat.run("""
        > /channel
        < prefs.channel_ask | Now: E-mail.
    """)
    assert [o.label for o in en_chat.last.options] == ["E-mail", "Telegram", "SMS"]
    await en_chat.run("""
        >> channel:set:telegram
        < prefs.channel_set | by Telegram first
        # a channel the debtor has no address for is not offered, and a forged one changes nothing
        >> channel:set:whatsapp
        < prefs.channel_ask | Now: Telegram.
    """)
    assert (await _debtor(db, debtor_en)).channel_order[0] == "telegram"


async def test_language_switch_changes_every_later_reply(db: Database, nl_chat: Chat, debtor_nl: str) -> None:
    await nl_chat.run("""
        > andere taal
        < prefs.language_ask
        >> language:set:en
        < prefs.language_set | I will write to you in English
        > /balance
        < account.balance | Here is what is open
    """)
    assert (await _debtor(db, debtor_nl)).locale == "en"


async def test_human_handoff_and_staff_answer(
    db: Database, nl_chat: Chat, debtor_nl: str, clock: FixedClock
) -> None:
    await nl_chat.run("""
        > ik wil een medewerker spreken
        < prefs.human | Wat u nu typt, geef ik door.
        > Kunt u mij morgen bellen?
        < prefs.relayed
    """)
    async with db.sessionmaker() as s:
        events = (await s.scalars(select(Event).where(col(Event.type).like("conversation.%")))).all()
    assert [(e.type, e.payload["text"]) for e in events] == [
        ("conversation.human", "ik wil een medewerker spreken"),
        ("conversation.relay", "Kunt u mij morgen bellen?"),
    ]
    debtor = await _debtor(db, debtor_nl)
    async with db.session_scope() as s:
        message = await relay.relay_to_debtor(
            s, debtor.id, "Ik bel u morgen om 10 uur.", staff=STAFF, now=clock.now()
        )
    assert message.status == "queued" and message.channel == "telegram"

    sent: list[OutboundMessage] = []

    class Telegram:
        channel = "telegram"

        async def send(self, outbound: OutboundMessage) -> SendResult:
            sent.append(outbound)
            return SendResult("tg-1")

    stats = await delivery.deliver(
        db, {"telegram": Telegram()}, clock=clock, limiter=None, creditor_name="Acme"
    )
    assert stats.sent == 1
    assert [(m.address, m.body) for m in sent] == [
        (nl_chat.chat_id, "Ik bel u morgen om 10 uur.\n\u2013 Anna")
    ]
    async with db.sessionmaker() as s:
        stored = await s.get(Message, message.id)
    assert stored is not None and stored.status == "sent" and stored.provider_id == "tg-1"


async def test_staff_answer_needs_a_linked_chat(db: Database, debtor_en: str, clock: FixedClock) -> None:
    debtor = await _debtor(db, debtor_en)
    async with db.session_scope() as s:
        with pytest.raises(NotFound):
            await relay.relay_to_debtor(s, debtor.id, "hello", staff=STAFF, now=clock.now())


async def test_demo_chat_staff_answers_are_fetched_by_the_page(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    chat = await linked_chat(db, deps, clock, debtor_en, channel="demo", chat_id="demo-abc")
    await chat.send("/human")
    since = clock.now()
    clock.current += timedelta(seconds=5)
    debtor = await _debtor(db, debtor_en)
    async with db.session_scope() as s:
        await relay.relay_to_debtor(s, debtor.id, "Hello from Anna", staff=STAFF, now=clock.now())
    async with db.sessionmaker() as s:
        found = await relay.pending_for_demo(s, "demo-abc", since)
        assert [m.payload["text"] for m in found] == ["Hello from Anna\n\u2013 Anna"]
        assert await relay.pending_for_demo(s, "demo-other", since) == []


async def test_help_menu_and_not_sure(en_chat: Chat) -> None:
    await en_chat.run("""
        > /help
        < prefs.help | tell us when you will pay
        > the weather is nice today
        < prefs.not_sure
        > 🙂🙂🙂
        < prefs.not_sure
        > /frobnicate
        < prefs.help
        >> menu:more
        < prefs.more
        >> totally:forged:button
        < prefs.menu | Hi Northwind Ltd! What can I do for you?
    """)
    await en_chat.send("x" * 4000)
    assert [r.template for r in en_chat.replies] == ["chat.prefs.not_sure"]


async def test_plan_request_goes_to_staff_without_a_plans_service(db: Database, nl_chat: Chat) -> None:
    await nl_chat.run("""
        > kan ik een betalingsregeling krijgen?
        < plan.to_staff | doorgegeven aan een collega
    """)
    async with db.sessionmaker() as s:
        [event] = (await s.scalars(select(Event).where(col(Event.type) == "conversation.plan_request"))).all()
    assert event.payload["total"] == "89.99"


def test_plan_proposals_are_read_without_guessing() -> None:
    assert read_proposal("3", "EUR") == (3, None)
    assert read_proposal("6 termijnen", "EUR") == (6, None)
    assert read_proposal("in 4 instalments", "EUR") == (4, None)
    assert read_proposal("€ 50 per maand", "EUR") == (None, 5_000)
    assert read_proposal("75,50 a month", "EUR") == (None, 7_550)
    assert read_proposal("1", "EUR") == (None, None)
    assert read_proposal("maybe", "EUR") == (None, None)
    assert read_proposal("3 termijnen van 50 per maand", "EUR") == (None, None)


async def test_a_refused_step_changes_nothing(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    """A domain error inside a flow (here from a classifier plugged in through the port) rolls the
    step back and gets a polite reply."""
    from datetime import datetime

    from core.conversation.nlu import RulesClassifier, Understanding
    from core.errors import Conflict

    class Refusing:
        def classify(self, text: str, *, locale: str, now: datetime) -> Understanding:
            raise Conflict("the classifier is down", "classifier_down")

    chat = await linked_chat(db, deps, clock, debtor_en)
    await chat.run("""
        > /promise
        < holds.promise_ask
    """)
    deps.classifier = Refusing()
    await chat.run("""
        > tomorrow
        < prefs.error | Nothing was changed.
    """)
    deps.classifier = RulesClassifier()
    await chat.run("""
        > /balance
        < account.balance
    """)


async def test_staff_answer_on_a_channel_without_sender_fails_visibly(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    from core.conversation.repository import chat_of

    chat = await linked_chat(db, deps, clock, debtor_en, channel="whatsapp", chat_id="31611111111")
    async with db.session_scope() as s:
        row = await chat_of(s, "whatsapp", chat.chat_id)
        assert row is not None and row.last_inbound_at == clock.now()
        message = await relay.relay_to_debtor(s, row, "Hello", staff=STAFF, now=clock.now())
    stats = await delivery.deliver(db, {}, clock=clock, limiter=None, creditor_name="Acme")
    assert (stats.sent, stats.failed) == (0, 1)
    async with db.sessionmaker() as s:
        stored = await s.get(Message, message.id)
    assert stored is not None and stored.error == "whatsapp: no sender configured"
