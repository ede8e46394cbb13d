"""The daily digest's figures against a known ledger, in `/ar digest` and in the morning post."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import select, update
from sqlmodel import col

import worker
from core.audit import AuditEvent
from core.db import Database
from core.dunning import holds
from core.dunning.models import Promise, PromiseStatus
from core.invoices.models import Invoice
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from core.money import Money
from core.reports import digest
from tests import factories
from tests.bots.slack.conftest import STAFF_CHANNEL, Staff
from tests.conftest import NOW

TODAY = NOW.date()  # 2026-11-24


async def _known_ledger(db: Database) -> None:
    """Open EUR receivables of 980.00: 90.00 aged 0-30, 190.00 31-60, 300.00 61-90, 400.00 90+."""
    await factories.debtor(db, "D-1", name="Bakkerij Smit")
    await factories.debtor(db, "D-2", name="Garage Jansen")
    rows = [
        factories.invoice_row(
            "D-1",
            external_id="A",
            amount_minor=10_000,
            issue_date=date(2026, 10, 1),
            due_date=date(2026, 11, 10),
        ),
        factories.invoice_row(
            "D-1",
            external_id="B",
            amount_minor=20_000,
            issue_date=date(2026, 9, 1),
            due_date=date(2026, 10, 1),
        ),
        factories.invoice_row(
            "D-2",
            external_id="C",
            amount_minor=30_000,
            issue_date=date(2026, 8, 1),
            due_date=date(2026, 9, 1),
        ),
        factories.invoice_row(
            "D-2",
            external_id="D",
            amount_minor=40_000,
            issue_date=date(2026, 6, 1),
            due_date=date(2026, 7, 1),
        ),
        factories.invoice_row(
            "D-2",
            external_id="E",
            amount_minor=5_000,
            issue_date=date(2026, 11, 20),
            due_date=date(2026, 12, 20),
        ),
    ]
    await factories.batch(db, rows)
    await factories.batch(db, [factories.invoice_row("D-1"), factories.invoice_row("D-2")], approve=False)
    actor = factories.TEST_ACTOR
    async with db.session_scope() as s:
        for invoice, amount, on in (
            ("A", "60.00", TODAY - timedelta(days=1)),
            ("B", "10.00", TODAY - timedelta(days=2)),
        ):
            data = PaymentIn(
                debtor_external_id="D-1" if invoice in "AB" else "D-2",
                invoice_external_id=invoice,
                currency="EUR",
                amount=amount,
                received_on=on,
            )
            await ledger.record_payment(s, data, actor=actor, today=TODAY)
        await holds.promise(
            s, "A", on=TODAY, amount_minor=4_000, today=TODAY - timedelta(days=3), actor=actor, source="staff"
        )
        ids = dict((await s.execute(select(col(Invoice.external_id), col(Invoice.id)))).all())
        debtor_of = dict((await s.execute(select(col(Invoice.external_id), col(Invoice.debtor_id)))).all())
        for invoice, resolved in (("B", NOW - timedelta(hours=2)), ("C", NOW - timedelta(hours=30))):
            s.add(
                Promise(
                    invoice_id=ids[invoice],
                    debtor_id=debtor_of[invoice],
                    promised_on=TODAY - timedelta(days=5),
                    status=PromiseStatus.broken,
                    resolved_at=resolved,
                    source="telegram",
                    created_by="debtor",
                )
            )
        await holds.dispute(s, "D", reason="never received the goods", actor=actor)
        await holds.dispute(s, "C", reason="old quarrel", actor=actor)
        for invoice, at in (("D", NOW - timedelta(hours=1)), ("C", NOW - timedelta(days=3))):
            await s.execute(
                update(AuditEvent)
                .where(col(AuditEvent.action) == "invoice.disputed", col(AuditEvent.entity_id) == invoice)
                .values(at=at)
            )


async def test_the_digest_figures_on_a_known_ledger(db: Database) -> None:
    await _known_ledger(db)
    async with db.sessionmaker() as s:
        report = await digest.build(s, TODAY, NOW)
    assert report.cash_collected == [Money(6_000, "EUR")]
    assert [(p.invoice, p.debtor, p.amount) for p in report.promises_due_today] == [
        ("A", "Bakkerij Smit", Money(4_000, "EUR"))
    ]
    assert [p.invoice for p in report.promises_broken] == ["B"]
    assert report.new_disputes == [("D", "never received the goods")]
    assert (report.batches_waiting, report.invoices_waiting) == (1, 2)
    assert {k: v.minor for k, v in report.ageing["EUR"].items()} == {
        "0-30": 9_000,
        "31-60": 19_000,
        "61-90": 30_000,
        "90+": 40_000,
    }
    # invoiced in the last 90 days: A, B and E = 350.00; open 980.00 -> 980 / 350 * 90 = 252 days
    assert report.dso == {"EUR": 252}


async def test_ar_digest_shows_the_figures(staff: Staff, db: Database) -> None:
    await _known_ledger(db)
    await staff.command("digest")
    text = json.dumps(staff.fake.responses[0]["blocks"], ensure_ascii=False)
    assert "Receivables digest for 2026-11-24" in text
    assert "*Cash collected yesterday:* €60.00" in text
    assert "*Promises due today:* 1: Bakkerij Smit (€40.00)" in text
    assert "*Promises broken:* 1: Bakkerij Smit (B)" in text
    assert "*New disputes:* 1" in text
    assert "*Batches waiting:* 1 (2 invoices)" in text
    assert "*Ageing EUR:* 0-30 €90.00 · 31-60 €190.00 · 61-90 €300.00 · 90+ €400.00 · DSO 252" in text


async def test_the_morning_digest_is_posted_once_a_day(staff: Staff, db: Database) -> None:
    await _known_ledger(db)
    ctx = {"settings": staff.settings, "db": db, "clock": staff.clock, "slack": staff.client}
    assert await worker.send_daily_digest(ctx) is True
    assert await worker.send_daily_digest(ctx) is False
    [post] = staff.fake.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL
    assert "DSO 252" in json.dumps(post.body["blocks"], ensure_ascii=False)


async def test_an_empty_ledger_gives_an_empty_digest(staff: Staff) -> None:
    await staff.command("digest")
    text = json.dumps(staff.fake.responses[0]["blocks"], ensure_ascii=False)
    assert "*Cash collected yesterday:* none" in text
    assert "Nothing is open." in text
