"""Linking a chat: one-time tokens, identify by invoice number + amount, lockout, no data before."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import col

from core.audit import AuditEvent
from core.channels import service as channels
from core.conversation.engine import ConversationDeps, handle
from core.conversation.models import Chat as ChatRow
from core.conversation.schemas import Inbound
from core.db import Database
from core.debtors.models import ContactPoint
from core.ports import FixedClock
from tests.core.conversation.conftest import make_token
from tests.core.conversation.transcript import Chat


async def test_token_links_once(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    token = await make_token(db, debtor_en, clock, deps.settings)
    chat = Chat(db, deps)
    await chat.run(f"""
        > /start {token}
        < link.linked | Welcome, Northwind Ltd!
        > /balance
        < account.balance | €349.50
    """)
    other = Chat(db, deps)
    await other.run(f"""
        > /start {token}
        < link.failed | 4 more tries
        > /balance
        < link.welcome
    """)
    async with db.sessionmaker() as s:
        points = (await s.scalars(select(ContactPoint).where(col(ContactPoint.kind) == "telegram"))).all()
    assert [(p.address, p.verified) for p in points] == [(chat.chat_id, True)]


async def test_expired_token_is_refused(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    token = await make_token(db, debtor_en, clock, deps.settings)
    clock.current += timedelta(days=8)
    chat = Chat(db, deps)
    await chat.run(f"""
        > /start {token}
        < link.failed
        > what do I owe?
        < link.ask_amount
    """)
    assert "€" not in chat.last.text


async def test_whatsapp_link_code(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_nl: str
) -> None:
    token = await make_token(db, debtor_nl, clock, deps.settings)
    chat = Chat(db, deps, channel="whatsapp", chat_id="31612345678", locale_hint="nl")
    await chat.run(f"""
        > LINK {token}
        < link.linked | Welkom, Bakkerij Smit!
    """)


async def test_identify_by_invoice_number_and_amount(
    db: Database, deps: ConversationDeps, debtor_nl: str
) -> None:
    chat = Chat(db, deps, locale_hint="nl")
    await chat.run("""
        > hallo
        < link.welcome | typ het nummer
        > bs-1
        < link.ask_amount
        > € 89,99
        < link.linked | Welkom, Bakkerij Smit!
        > saldo
        < account.balance | € 89,99
    """)


async def test_lockout_after_five_failures(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    chat = Chat(db, deps)
    await chat.send("hi")
    for left in ("4 more tries", "3 more tries", "2 more tries", "one more try"):
        await chat.run(f"""
            > NW-1
            < link.ask_amount
            > 1.00
            < link.failed | {left}
        """)
    await chat.run("""
        > NW-1
        < link.ask_amount
        > 1.00
        < link.locked
        # even the right answer is refused while locked
        > NW-1
        < link.locked
    """)
    token = await make_token(db, debtor_en, clock, deps.settings)
    await chat.run(f"""
        > /start {token}
        < link.locked
    """)
    async with db.sessionmaker() as s:
        [locked] = (await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == "chat.locked"))).all()
    assert locked.actor_id == f"telegram:{chat.chat_id}" and locked.after is not None
    assert locked.after["until"] == "2026-11-24T11:00:00+00:00"
    clock.current += timedelta(hours=1, minutes=1)
    await chat.run("""
        > NW-1
        < link.ask_amount
        > 249.50
        < link.linked
    """)


async def test_unlinked_chat_never_sees_debtor_data(
    db: Database, deps: ConversationDeps, debtor_en: str
) -> None:
    chat = Chat(db, deps)
    for text in ("/balance", "/invoices", "/pay", "how much do I owe", "send me the invoice NW-1", "/help"):
        await chat.send(text)
        assert all(r.attachments == () for r in chat.replies)
        assert all("Northwind" not in r.text and "249" not in r.text for r in chat.replies)
    for choice in ("inv:pdf:NW-1", "pay:inv:NW-1", "menu:balance", "dispute:inv:NW-1"):
        await chat.send(choice=choice)
        assert all(r.attachments == () and "249" not in r.text for r in chat.replies)
        assert all(r.template.startswith("chat.link.") for r in chat.replies)


async def test_redelivered_message_is_answered_once(
    db: Database, deps: ConversationDeps, clock: FixedClock, en_chat: Chat
) -> None:
    first = await en_chat.send("/balance", message_id="upd-1")
    assert [r.template for r in first] == ["chat.account.balance"]
    written_at = clock.current
    assert await _last_inbound_at(db, en_chat) == written_at
    clock.current += timedelta(minutes=5)
    assert await en_chat.send("/balance", message_id="upd-1") == []
    assert await _last_inbound_at(db, en_chat) == written_at  # a redelivery touches nothing
    assert len(await en_chat.send("/balance", message_id="upd-2")) == 1
    assert await _last_inbound_at(db, en_chat) == clock.current


async def _last_inbound_at(db: Database, chat: Chat) -> object:
    async with db.session_scope() as session:
        stmt = select(col(ChatRow.last_inbound_at)).where(
            col(ChatRow.channel) == chat.channel, col(ChatRow.chat_id) == chat.chat_id
        )
        return (await session.execute(stmt)).scalar_one()


async def test_the_engine_notes_the_inbound_message_when_asked(
    db: Database, deps: ConversationDeps, clock: FixedClock, en_chat: Chat
) -> None:
    """``record_inbound=True`` (the chat adapters' handler): the chat's window is noted and a contact
    point that a block marked is usable again, with its audit event, on every delivery (folded into
    the chat's statement on PostgreSQL), while a redelivery still gets no answer."""
    async with db.session_scope() as session:  # linking made the chat a contact point: blocked since
        await session.execute(
            update(ContactPoint)
            .where(col(ContactPoint.kind) == "telegram", col(ContactPoint.address) == en_chat.chat_id)
            .values(last_delivery_status="blocked")
        )
    inbound = Inbound(channel="telegram", chat_id=en_chat.chat_id, text="/balance", message_id="w-1")
    for answers in (1, 0):
        async with db.session_scope() as session:
            assert len(await handle(session, inbound, deps=deps, record_inbound=True)) == answers
    async with db.session_scope() as session:
        stmt = select(ContactPoint).where(col(ContactPoint.address) == en_chat.chat_id)
        point = (await session.scalars(stmt)).one()
        assert (point.last_delivery_status, point.last_delivery_at) == ("unblocked", clock.now())
        events = await session.scalars(select(AuditEvent).where(col(AuditEvent.entity_id) == str(point.id)))
        assert [e.action for e in events] == ["contact_point.unblocked"]
        assert await channels.last_inbound(session, "telegram", en_chat.chat_id) == clock.now()
