"""Promise to pay, already paid and dispute: confirmed before recorded, ending in dunning holds."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import col

from core.conversation.models import Chat as ChatRow
from core.db import Database
from core.dunning.models import DunningState, Promise
from core.events.models import Event
from core.invoices.models import Invoice
from core.ports import FixedClock
from tests.core.conversation.transcript import Chat


async def _states(db: Database, numbers: list[str]) -> list[DunningState]:
    async with db.sessionmaker() as s:
        stmt = (
            select(DunningState)
            .join(Invoice, col(Invoice.id) == col(DunningState.invoice_id))
            .where(col(Invoice.number).in_(numbers))
            .order_by(col(Invoice.number))
        )
        return list((await s.scalars(stmt)).all())


async def _events(db: Database, kind: str) -> list[Event]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(Event).where(col(Event.type) == kind))).all())


async def test_promise_with_a_date_is_confirmed_then_recorded(db: Database, en_chat: Chat) -> None:
    await en_chat.run("""
        > I'll pay on Friday
        < holds.promise_confirm | you will pay €249.50 + €100.00 on Friday, November 27, 2026. Is that right?
    """)
    assert [s.promise_date for s in await _states(db, ["NW-1", "NW-2"])] == [None, None]
    await en_chat.run("""
        >> promise:yes
        < holds.promise_recorded | We will not send reminders for NW-1, NW-2 until then.
        > /balance
        < account.balance | €349.50 is covered by your promise
    """)
    assert [s.promise_date for s in await _states(db, ["NW-1", "NW-2"])] == [date(2026, 11, 27)] * 2
    async with db.sessionmaker() as s:
        sources = {p.source for p in (await s.scalars(select(Promise))).all()}
    assert sources == {"telegram"}


async def test_promise_nl_next_week_and_no_means_ask_again(db: Database, nl_chat: Chat) -> None:
    await nl_chat.run("""
        > ik betaal volgende week
        < holds.promise_confirm | op dinsdag 1 december 2026. Klopt dat?
        > nee
        < holds.promise_ask
        > donderdag
        < holds.promise_confirm | donderdag 26 november 2026
        > ja
        < holds.promise_recorded
    """)
    assert [s.promise_date for s in await _states(db, ["BS-1"])] == [date(2026, 11, 26)]


async def test_promise_never_guesses_a_date(db: Database, en_chat: Chat) -> None:
    await en_chat.run("""
        > I'll pay 200
        < holds.promise_ask
        > soonish
        < holds.date_not_understood
        > in 3 months
        < holds.promise_out_of_range | from November 24, 2026 to December 24, 2026
        > December 15
        < holds.promise_confirm | Tuesday, December 15, 2026
    """)
    assert [s.promise_date for s in await _states(db, ["NW-1", "NW-2"])] == [None, None]


async def test_stale_confirmation_is_checked_again(db: Database, en_chat: Chat, clock: FixedClock) -> None:
    await en_chat.run("""
        > /promise
        < holds.promise_ask
        > tomorrow
        < holds.promise_confirm | Wednesday, November 25, 2026
    """)
    clock.current += timedelta(days=2)
    await en_chat.run("""
        >> promise:yes
        < holds.promise_out_of_range
    """)
    assert [s.promise_date for s in await _states(db, ["NW-1"])] == [None]


async def test_already_paid_holds_dunning_while_staff_check(db: Database, en_chat: Chat) -> None:
    await en_chat.run("""
        > I already paid
        < holds.paid_ask_date
        > next month
        < holds.paid_date_out_of_range
        > yesterday
        < holds.paid_ask_method | How did you pay on November 23, 2026?
        >> paid:method:bank_transfer
        < holds.paid_confirm | by bank transfer. Is that right?
        >> paid:yes
        < holds.paid_recorded | We will not send reminders until November 29, 2026
    """)
    states = await _states(db, ["NW-1", "NW-2"])
    assert [s.paused_until for s in states] == [date(2026, 11, 29)] * 2
    assert all("2026-11-23 by bank_transfer" in (s.pause_reason or "") for s in states)
    [event] = await _events(db, "conversation.paid_claim")
    assert event.payload["method"] == "bank_transfer" and event.payload["paid_on"] == "2026-11-23"


async def test_already_paid_nl_with_date_in_the_message(db: Database, nl_chat: Chat) -> None:
    await nl_chat.run("""
        > ik heb het gisteren overgemaakt
        < holds.paid_ask_method | Hoe heeft u op 23 november 2026 betaald?
        > via een overboeking
        < holds.paid_confirm | via overboeking. Klopt dat?
        > ja
        < holds.paid_recorded | Een collega controleert uw betaling.
    """)
    assert [s.paused_until for s in await _states(db, ["BS-1"])] == [date(2026, 11, 29)]


async def test_dispute_holds_the_invoice_and_tells_staff(db: Database, en_chat: Chat) -> None:
    await en_chat.run("""
        > This invoice is wrong
        < holds.dispute_pick
        >> dispute:inv:NW-2
        < holds.dispute_ask_reason | What is wrong with invoice NW-2?
        > We returned the goods on 2 November.
        < holds.dispute_recorded | objection to invoice NW-2
    """)
    nw1, nw2 = await _states(db, ["NW-1", "NW-2"])
    assert (nw1.disputed, nw2.disputed) == (False, True)
    assert nw2.dispute_reason == "We returned the goods on 2 November."
    [event] = await _events(db, "conversation.dispute")
    assert event.payload["invoice"] == "NW-2" and event.payload["text"] == nw2.dispute_reason
    await en_chat.run("""
        > /dispute
        < holds.dispute_pick
        >> dispute:inv:NW-2
        < holds.dispute_ask_reason
        > still wrong
        < holds.dispute_already
    """)


async def test_dispute_nl_single_invoice(db: Database, nl_chat: Chat) -> None:
    await nl_chat.run("""
        > de factuur klopt niet
        < holds.dispute_ask_reason | Wat klopt er niet aan factuur BS-1?
        > Ik heb nooit brood besteld.
        < holds.dispute_recorded | bezwaar tegen factuur BS-1
    """)
    assert [s.disputed for s in await _states(db, ["BS-1"])] == [True]


async def test_a_flow_step_can_be_left_with_a_command(db: Database, en_chat: Chat) -> None:
    await en_chat.run("""
        > /promise
        < holds.promise_ask
        > /balance
        < account.balance
        > tomorrow
        < holds.promise_confirm
    """)
    async with db.sessionmaker() as s:
        row = (await s.scalars(select(ChatRow).where(col(ChatRow.chat_id) == en_chat.chat_id))).one()
    assert (row.flow, row.step, row.data) == ("promise", "confirm", {"date": "2026-11-25"})


async def test_a_broken_chat_promise_resumes_dunning(db: Database, nl_chat: Chat, clock: FixedClock) -> None:
    from core.dunning import holds

    await nl_chat.run("""
        > ik betaal morgen
        < holds.promise_confirm | woensdag 25 november 2026
        >> promise:yes
        < holds.promise_recorded
        > saldo
        < account.balance | voor € 89,99 heeft u een betaalbelofte
    """)
    clock.current += timedelta(days=5)  # past the date and the policy's grace days
    async with db.session_scope() as s:
        broken = await holds.break_promises(s, clock.today())
    assert len(broken) == 1
    assert [s.promise_date for s in await _states(db, ["BS-1"])] == [None]
    await nl_chat.run("""
        > saldo
        < account.balance
    """)
    assert "betaalbelofte" not in nl_chat.last.text
