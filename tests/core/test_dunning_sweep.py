"""The dunning sweep walked by a frozen clock through the default policy's stages."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlmodel import col

from core.audit import Actor
from core.base import new_id
from core.db import Database
from core.debtors import service as debtors
from core.dunning import service as dunning
from core.dunning.models import DunningAction, DunningState
from core.dunning.sweep import SweepResult, sweep
from core.invoices import repository as invoice_repo
from core.ledger import service as ledger
from core.ledger.models import LedgerEntry
from core.ledger.schemas import PaymentIn
from core.messaging.models import Message
from tests import factories

STAFF = Actor("test", "staff")


async def run(db: Database, day: str) -> SweepResult:
    async with db.session_scope() as s:
        return await sweep(s, now=factories.at(day))


async def state_of(db: Database, invoice_external_id: str) -> DunningState:
    async with db.sessionmaker() as s:
        invoice = await invoice_repo.get_by_external_id(s, invoice_external_id)
        assert invoice is not None
        found = await s.get(DunningState, invoice.id)
        assert found is not None
        return found


async def stages_sent(db: Database) -> list[tuple[str, str]]:
    async with db.sessionmaker() as s:
        rows = await s.execute(
            select(col(DunningAction.stage_key), col(Message.template))
            .join(Message, col(Message.id) == col(DunningAction.message_id))
            .where(col(Message.kind) == "reminder")  # not the invoice's own delivery ("issued")
            .order_by(col(DunningAction.created_at))
        )
        return [(k, t) for k, t in rows.all()]


async def open_minor(db: Database, debtor_external_id: str) -> int:
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, debtor_external_id)
        total = await s.execute(
            select(func.sum(LedgerEntry.amount_minor)).where(col(LedgerEntry.debtor_id) == debtor.id)
        )
        return int(total.scalar_one() or 0)


async def test_an_invoice_walks_through_every_stage_once(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30))
    assert (await state_of(db, inv)).next_action_on == date(2026, 11, 27)  # three days before due

    assert (await run(db, "2026-11-26")).actions == 0
    first = await run(db, "2026-11-27")
    assert (first.actions, first.messages) == (1, 1)
    assert (await run(db, "2026-11-27")).actions == 0  # a second sweep the same day sends nothing
    for day in ("2026-11-30", "2026-12-07", "2026-12-14", "2026-12-30", "2027-01-14"):
        assert (await run(db, day)).actions == 1, day
    assert (await run(db, "2027-06-01")).actions == 0  # nothing after the last stage

    assert await stages_sent(db) == [
        ("before_due", "reminder_before_due"),
        ("due_today", "reminder_due_today"),
        ("first_reminder", "reminder_overdue"),
        ("second_reminder", "reminder_second"),
        ("final_notice", "final_notice"),
        ("agency", "agency_handoff"),
    ]
    final = await state_of(db, inv)
    assert (final.stage_key, final.next_action_on) == ("agency", None)
    # The invoice, the second reminder's fee, and at the final notice (30 days late) 8 % a year of
    # interest on 100.00: 100.00 * 0.08 * 30 / 365 = 0.6575 → 0.66.
    assert await open_minor(db, d) == 10_000 + 1_500 + 66


async def test_after_downtime_only_the_latest_stage_is_sent_but_crossed_fees_are_charged(
    db: Database,
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 10, 1), due_date=date(2026, 10, 31))

    result = await run(db, "2026-11-20")  # 20 days late: before_due … second_reminder have all come
    assert (result.actions, result.messages, result.fees) == (1, 1, 1)
    assert await stages_sent(db) == [("second_reminder", "reminder_second")]
    state = await state_of(db, inv)
    assert (state.stage_key, state.next_action_on) == ("second_reminder", date(2026, 11, 30))
    assert await open_minor(db, d) == 11_500
    assert (await run(db, "2026-11-21")).actions == 0


async def test_one_message_per_debtor_lists_all_due_invoices(db: Database) -> None:
    d1 = await factories.debtor(db)
    d2 = await factories.debtor(db)
    rows = [
        factories.invoice_row(d1, due_date=date(2026, 11, 10)),
        factories.invoice_row(d1, due_date=date(2026, 11, 3)),
        factories.invoice_row(d2, due_date=date(2026, 11, 10)),
    ]
    await factories.batch(db, rows)
    result = await run(db, "2026-11-17")
    assert (result.actions, result.messages) == (3, 2)
    async with db.sessionmaker() as s:
        per_message = await s.execute(
            select(col(DunningAction.message_id), func.count())
            .where(col(DunningAction.stage_key) != "issued")
            .group_by(col(DunningAction.message_id))
        )
        assert sorted(n for _, n in per_message.all()) == [1, 2]
        templates = (
            (await s.execute(select(col(Message.template)).where(col(Message.kind) == "reminder")))
            .scalars()
            .all()
        )
    # d1: due 10 Nov (+7, first reminder) and 3 Nov (+14, second reminder): one message in the words of
    # the second reminder. d2: due 10 Nov, first reminder.
    assert sorted(templates) == ["reminder_overdue", "reminder_second"]


async def test_paused_and_paid_invoices_get_nothing(db: Database) -> None:
    paused = await factories.debtor(db)
    paying = await factories.debtor(db)
    await factories.invoice(db, paused, due_date=date(2026, 11, 1))
    paid = await factories.invoice(db, paying, due_date=date(2026, 11, 1))
    async with db.session_scope() as s:
        await debtors.pause(
            s, paused, reason="in talks", until=date(2026, 11, 30), today=date(2026, 11, 10), actor=STAFF
        )
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=paying, invoice_external_id=paid, currency="EUR", amount="100.00"),
            actor=STAFF,
            today=date(2026, 11, 10),
        )
    assert (await run(db, "2026-11-10")).actions == 0
    assert (await run(db, "2026-12-01")).actions == 1  # the pause ended on 30 Nov; the paid one stays quiet


async def test_the_preview_shows_exactly_what_the_sweep_then_does(db: Database) -> None:
    d = await factories.debtor(db, "PREVIEW-1")
    await factories.batch(
        db,
        [
            factories.invoice_row(d, number="P-1", due_date=date(2026, 11, 20)),
            factories.invoice_row(d, number="P-2", due_date=date(2026, 12, 20)),
        ],
    )
    async with db.sessionmaker() as s:
        lines = await dunning.preview(s, date(2026, 11, 27))
    assert [(ln.debtor_external_id, ln.invoice_number, ln.stage, ln.template) for ln in lines] == [
        ("PREVIEW-1", "P-1", "first_reminder", "reminder_overdue")
    ]
    async with db.sessionmaker() as s:
        reminders = (
            select(func.count()).select_from(DunningAction).where(col(DunningAction.stage_key) != "issued")
        )
        assert (await s.execute(reminders)).scalar_one() == 0
    assert (await run(db, "2026-11-27")).actions == len(lines)
    assert await stages_sent(db) == [("first_reminder", "reminder_overdue")]


async def test_interest_is_simple_on_the_open_principal_and_never_on_fees(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(
        db, d, issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1), amount_minor=1_000_000
    )
    async with db.session_scope() as s:
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=d, invoice_external_id=inv, currency="EUR", amount="2500.00"),
            actor=STAFF,
            today=date(2026, 2, 10),
        )
    # Down until 13 Mar (40 days late): second reminder's fee and the final notice's interest both
    # come due at once. Principal 7,500.00 at 8 % for 40 days = 65.753… → 65.75.
    result = await run(db, "2026-03-13")
    assert (result.actions, result.fees) == (1, 2)
    async with db.sessionmaker() as s:
        rows = await s.execute(
            select(col(LedgerEntry.kind), col(LedgerEntry.amount_minor))
            .where(col(LedgerEntry.kind).in_(("fee", "interest")))
            .order_by(col(LedgerEntry.kind))
        )
        assert rows.all() == [("fee", 1_500), ("interest", 6_575)]
    assert (await run(db, "2026-03-20")).fees == 0  # charged once: the next stage (agency) charges none


async def test_a_paid_invoice_leaves_the_sweep_and_a_reopened_one_catches_up(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30))
    assert (await run(db, "2026-11-30")).actions == 1  # due today (before_due crossed, only the latest sent)
    async with db.session_scope() as s:
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=d, invoice_external_id=inv, currency="EUR", amount="100.00"),
            actor=STAFF,
            today=date(2026, 12, 1),
        )
    assert (await state_of(db, inv)).next_action_on is None  # nothing is due for a paid invoice
    assert (await run(db, "2026-12-20")).actions == 0

    # A chargeback reopens it: due again at its next stage (first reminder, 7 Dec), caught up at once
    # with only the latest stage that has come (second reminder, 14 Dec).
    async with db.session_scope() as s:
        invoice = await invoice_repo.get_by_external_id(s, inv)
        assert invoice is not None
        await invoice_repo.set_status(s, [invoice.id], "open", factories.at("2026-12-20"))
    assert (await state_of(db, inv)).next_action_on == date(2026, 12, 7)
    result = await run(db, "2026-12-20")
    assert (result.actions, result.messages) == (1, 1)
    assert [k for k, _ in await stages_sent(db)] == ["due_today", "second_reminder"]


async def test_an_invoice_already_acted_on_at_its_stage_neither_moves_nor_gets_a_message(
    db: Database,
) -> None:
    d1 = await factories.debtor(db)
    d2 = await factories.debtor(db)
    acted = await factories.invoice(db, d1, due_date=date(2026, 11, 10))
    other = await factories.invoice(db, d2, due_date=date(2026, 11, 10))
    before = await state_of(db, acted)
    async with db.session_scope() as s:  # as if another sweep had recorded this stage already
        s.add(
            DunningAction(
                due_date=before.due_date,
                invoice_id=before.invoice_id,
                stage_key="first_reminder",
                debtor_id=before.debtor_id,
                sweep_id=new_id(),
                created_at=factories.at("2026-11-17"),
            )
        )
    result = await run(db, "2026-11-17")
    assert (result.actions, result.messages) == (1, 1)
    after = await state_of(db, acted)
    assert (after.stage_key, after.next_action_on) == (before.stage_key, before.next_action_on)
    assert (await state_of(db, other)).stage_key == "first_reminder"
    async with db.sessionmaker() as s:
        debtors_messaged = (
            (await s.execute(select(col(Message.debtor_id)).where(col(Message.kind) == "reminder")))
            .scalars()
            .all()
        )
    assert debtors_messaged == [(await state_of(db, other)).debtor_id]
