"""A chat linked to debtor A never reaches debtor B's data, not even by replaying B's buttons."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from core.conversation.engine import ConversationDeps
from core.db import Database
from core.dunning.models import DunningState
from core.invoices.models import Invoice
from core.ports import FixedClock
from tests.core.conversation.conftest import linked_chat
from tests.core.conversation.transcript import Chat


async def test_buttons_of_another_debtor_find_nothing(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str, debtor_nl: str
) -> None:
    a = await linked_chat(db, deps, clock, debtor_en)
    b = await linked_chat(db, deps, clock, debtor_nl, locale_hint="nl")
    await b.send("/invoices")
    assert b.last.attachments  # B's own PDF
    await a.run("""
        >> inv:pdf:BS-1
        < account.invoice_not_found
        >> pay:inv:BS-1
        < account.nothing_open
        >> dispute:inv:BS-1
        < account.invoice_not_found
        > send me invoice BS-1
        < account.invoices | NW-1
    """)
    for reply in a.replies:
        assert "BS-1" not in reply.text and "89.99" not in reply.text
    async with db.sessionmaker() as s:
        stmt = select(DunningState).join(Invoice, col(Invoice.id) == col(DunningState.invoice_id))
        disputed = (await s.scalars(stmt.where(col(Invoice.number) == "BS-1"))).one().disputed
    assert disputed is False


async def test_chat_ids_are_per_channel(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str
) -> None:
    linked = await linked_chat(db, deps, clock, debtor_en, chat_id="555")
    stranger = Chat(db, deps, channel="whatsapp", chat_id="555")
    await stranger.run("""
        > /balance
        < link.welcome
    """)
    await linked.run("""
        > /balance
        < account.balance
    """)


async def test_relinking_a_chat_moves_it(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str, debtor_nl: str
) -> None:
    from tests.core.conversation.conftest import make_token

    chat = await linked_chat(db, deps, clock, debtor_en, chat_id="777")
    token = await make_token(db, debtor_nl, clock, deps.settings)
    await chat.run(f"""
        > /start {token}
        < link.linked | Bakkerij Smit
        > /balance
        < account.balance | BS-1
    """)
    assert "NW-1" not in chat.last.text
