"""The reminder's tone: the stage's, one step firmer for habitual late payers, friendlier for good ones."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.debtors import service as debtors
from core.dunning.sweep import sweep
from core.dunning.tone import History, choose
from core.messaging.models import Message
from tests import factories


def test_the_rule() -> None:
    habitual = History(late=3)
    assert [choose(t, habitual) for t in ("friendly", "neutral", "firm")] == ["neutral", "firm", "firm"]
    assert choose("neutral", History(broken_promises=2)) == "firm"
    good = History(on_time=2)
    assert [choose(t, good) for t in ("friendly", "neutral", "firm")] == ["friendly", "friendly", "firm"]
    assert choose("neutral", History(late=1, on_time=5)) == "neutral"  # one slip: the stage's tone
    assert choose("neutral", History()) == "neutral"  # no history yet


async def _reminder_tone(db: Database, debtor: str, day: str) -> str:
    async with db.sessionmaker() as s:
        d = await debtors.get(s, debtor)
        tones = await s.scalars(
            select(col(Message.tone)).where(
                col(Message.debtor_id) == d.id,
                col(Message.kind) == "reminder",
                col(Message.created_at) == factories.at(day),
            )
        )
        [tone] = tones.all()
        return tone


async def test_history_moves_the_tone_of_the_same_stage(db: Database) -> None:
    late, new, good = [await factories.debtor(db, x) for x in ("T-LATE", "T-NEW", "T-GOOD")]
    # T-LATE paid three invoices only after reminders; T-GOOD paid two before their due date.
    old_late = [await factories.invoice(db, late, due_date=date(2026, 10, 31)) for _ in range(3)]
    old_good = [await factories.invoice(db, good, due_date=date(2026, 10, 31)) for _ in range(2)]
    await factories.pay_each(db, good, old_good, date(2026, 10, 20), "100.00")
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-11-07"))
    await factories.pay_each(db, late, old_late, date(2026, 11, 10), "100.00")

    for d in (late, new, good):
        await factories.invoice(db, d, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30))
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-12-07"))  # the first reminder, a neutral stage
    stage = await _reminder_tone(db, new, "2026-12-07")
    assert stage == "neutral"
    assert await _reminder_tone(db, late, "2026-12-07") == "firm"
    assert await _reminder_tone(db, good, "2026-12-07") == "friendly"
