"""The chat's tone: the tone of the newest reminder about an open invoice; otherwise the history rule
of core/dunning/tone.py at a friendly stage. The same question, asked by a good payer and by a
habitual late payer, gets a friendly and a firm answer, in English and in Dutch."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from core.conversation import tone as chat_tone
from core.conversation.engine import ConversationDeps
from core.db import Database
from core.debtors import service as debtors
from core.dunning import tone as dunning_tone
from core.dunning.sweep import sweep
from core.plans import service as plans
from core.ports import FixedClock
from tests import factories
from tests.core.conversation.conftest import linked_chat
from tests.core.conversation.transcript import Chat


async def _chat_tone(db: Database, debtor: str, today: date) -> str:
    async with db.sessionmaker() as s:
        d = await debtors.get(s, debtor)
        return await chat_tone.of(s, d.id, today)


@dataclass
class Book:
    """A good payer and a habitual late payer, each with one open invoice (due 30 November)."""

    good: str
    late: str
    good_open: str
    late_open: str


async def _book(db: Database, locale: str, *, remind: bool = True) -> Book:
    suffix = locale.upper()
    good = await factories.debtor(db, f"GOOD-{suffix}", name="Good Payer", locale=locale)
    late = await factories.debtor(db, f"LATE-{suffix}", name="Late Payer", locale=locale)
    # LATE paid three invoices only after reminders; GOOD paid two before their due date.
    old_late = [await factories.invoice(db, late, due_date=date(2026, 10, 31)) for _ in range(3)]
    old_good = [await factories.invoice(db, good, due_date=date(2026, 10, 31)) for _ in range(2)]
    await factories.pay_each(db, good, old_good, date(2026, 10, 20), "100.00")
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-11-07"))
    await factories.pay_each(db, late, old_late, date(2026, 11, 10), "100.00")
    good_open = await factories.invoice(
        db, good, number=f"G-{suffix}", issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30)
    )
    late_open = await factories.invoice(
        db, late, number=f"L-{suffix}", issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30)
    )
    if remind:  # the first overdue reminder (a neutral stage): friendly for GOOD, firm for LATE
        async with db.session_scope() as s:
            await sweep(s, now=factories.at("2026-12-07"))
    return Book(good, late, good_open, late_open)


def test_the_fallback_is_the_history_rule_at_a_friendly_stage() -> None:
    """What the SQL of core/conversation/tone.py encodes, in the words of core/dunning/tone.py."""
    H = dunning_tone.History
    assert chat_tone.BEFORE_ANY_REMINDER == "friendly"
    assert dunning_tone.choose("friendly", H()) == "friendly"  # a new debtor
    assert dunning_tone.choose("friendly", H(on_time=5)) == "friendly"  # a good payer
    assert dunning_tone.choose("friendly", H(late=1, on_time=3)) == "friendly"  # one slip
    assert dunning_tone.choose("friendly", H(late=3)) == "neutral"  # habitual: firmer sooner
    assert dunning_tone.choose("friendly", H(broken_promises=2)) == "neutral"


async def test_the_rule_follows_reminders_of_open_invoices_then_history(db: Database) -> None:
    new = await factories.debtor(db, "NEW-1")
    await factories.invoice(db, new, due_date=date(2026, 11, 30))
    book = await _book(db, "en", remind=False)
    today = date(2026, 12, 1)
    # No reminder about an open invoice: the history rule at a friendly stage.
    assert await _chat_tone(db, new, today) == "friendly"
    assert await _chat_tone(db, book.good, today) == "friendly"
    assert await _chat_tone(db, book.late, today) == "neutral"  # a habitual late payer

    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-12-07"))
    today = date(2026, 12, 8)
    # The sweep's tone for the reminder of the open invoice: the stage moved by the history.
    assert await _chat_tone(db, new, today) == "neutral"  # the stage's own tone
    assert await _chat_tone(db, book.good, today) == "friendly"
    assert await _chat_tone(db, book.late, today) == "firm"

    # Paid: the firm reminder no longer speaks; the history does (four late payments now).
    await factories.pay_each(db, book.late, [book.late_open], today, "100.00")
    assert await _chat_tone(db, book.late, today) == "neutral"


async def _chats(
    db: Database, deps: ConversationDeps, clock: FixedClock, book: Book, hint: str
) -> tuple[Chat, Chat]:
    clock.current = factories.at("2026-12-08").replace(hour=10)
    deps = replace(deps, plans=plans)  # plans within policy, as bots/conversation.py wires it
    good = await linked_chat(db, deps, clock, book.good, locale_hint=hint)
    late = await linked_chat(db, deps, clock, book.late, locale_hint=hint)
    return good, late


async def test_same_questions_friendly_for_a_good_payer_firm_for_a_late_payer_en(
    db: Database, deps: ConversationDeps, clock: FixedClock
) -> None:
    good, late = await _chats(db, deps, clock, await _book(db, "en"), "en")
    await good.run("""
        > what do I owe?
        < account.balance | Here is what is open on your account:
        > /balance
        < account.balance | Could you pay the overdue amount soon? You can do it right here with /pay. Thank you!
        > /pay
        < account.pay | Thanks for taking care of this! To pay G-EN: €100.00.
        > /menu
        < prefs.menu | Hi Good Payer! What can I do for you?
        > /help
        < prefs.help | Happy to help!
        > /plan
        < plan.ask | No problem, we can spread the payment.
        > 2
        < plan.confirm
        > yes
        < plan.accepted | Good news: this plan is possible!
        > no
        < plan.declined | Just let me know if you change your mind!
    """)
    await late.run("""
        > what do I owe?
        < account.balance | Your account shows these open amounts:
        > /balance
        < account.balance | The overdue amount must be paid now. Pay it straight away with /pay.
        > /pay
        < account.pay | To pay L-EN: €100.00. Please pay this amount without delay.
        > /menu
        < prefs.menu | Hello Late Payer. What can I do for you?
        > /help
        < prefs.help | To settle what is open, choose /pay.
        > /plan
        < plan.ask | The plan must fit our payment terms.
        > 2
        < plan.confirm
        > yes
        < plan.accepted | Each instalment must be paid on time: a missed instalment ends the plan.
        > no
        < plan.declined | The open amount remains due in full.
    """)


async def test_same_questions_friendly_for_a_good_payer_firm_for_a_late_payer_nl(
    db: Database, deps: ConversationDeps, clock: FixedClock
) -> None:
    good, late = await _chats(db, deps, clock, await _book(db, "nl"), "nl")
    await good.run("""
        > hoeveel moet ik nog betalen?
        < account.balance | Wilt u het achterstallige bedrag binnenkort betalen? Dat kan meteen hier met /pay. Alvast bedankt!
        > /pay
        < account.pay | Fijn dat u het regelt! Te betalen voor G-NL: € 100,00.
        > /menu
        < prefs.menu | Hallo Good Payer! Waarmee kan ik u helpen?
        > ik betaal vrijdag
        < holds.promise_confirm | Klopt dat?
        > ja
        < holds.promise_recorded | Dank u wel! Ik heb genoteerd dat u op vrijdag 11 december 2026 betaalt.
    """)
    await late.run("""
        > hoeveel moet ik nog betalen?
        < account.balance | Het achterstallige bedrag moet nu worden betaald. Betaal het direct met /pay.
        > /pay
        < account.pay | Betaal dit bedrag per omgaande.
        > /menu
        < prefs.menu | Goedendag Late Payer. Waarmee kan ik u helpen?
        > ik betaal vrijdag
        < holds.promise_confirm | Klopt dat?
        > ja
        < holds.promise_recorded | Is uw betaling op die datum niet binnen, dan gaan de herinneringen weer door.
    """)


async def test_a_habitual_late_payer_without_a_current_reminder_gets_neutral(
    db: Database, deps: ConversationDeps, clock: FixedClock
) -> None:
    """Before the sweep reminded the open invoice: the history alone, one step firmer than friendly."""
    book = await _book(db, "en", remind=False)
    clock.current = factories.at("2026-12-01").replace(hour=10)
    late = await linked_chat(db, deps, clock, book.late)
    await late.run("""
        > /balance
        < account.balance | Please pay the overdue amount as soon as possible. You can pay with /pay.
        > /menu
        < prefs.menu | What can I do for you, Late Payer?
    """)
