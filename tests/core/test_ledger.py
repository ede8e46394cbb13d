"""Balances come from the append-only ledger: partial payments, credit notes, FIFO, credit, currencies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, text

from core.db import Database
from core.debtors import repository as debtor_repo
from core.errors import Conflict, InvalidInput
from core.invoices import repository as invoice_repo
from core.ledger import service as ledger
from core.ledger.models import CreditNote
from core.ledger.schemas import CreditNoteIn, PaymentIn
from core.money import Money
from core.ports import FixedClock
from tests import factories
from tests.factories import TEST_ACTOR


async def pay(
    db: Database,
    debtor: str,
    amount: str,
    currency: str = "EUR",
    *,
    invoice: str | None = None,
    today: date = date(2026, 11, 24),
) -> ledger.PaymentResult:
    data = PaymentIn(debtor_external_id=debtor, invoice_external_id=invoice, currency=currency, amount=amount)
    async with db.session_scope() as s:
        return await ledger.record_payment(s, data, actor=TEST_ACTOR, today=today)


async def credit(
    db: Database, invoice: str, amount: str, currency: str = "EUR", number: str | None = None
) -> CreditNote:
    data = CreditNoteIn(
        invoice_external_id=invoice, currency=currency, amount=amount, reason="goodwill", number=number
    )
    async with db.session_scope() as s:
        return await ledger.record_credit_note(s, data, actor=TEST_ACTOR, today=date(2026, 11, 24))


async def balance(db: Database, debtor: str, today: date = date(2026, 11, 24)) -> ledger.DebtorBalance:
    async with db.sessionmaker() as s:
        found = await debtor_repo.get_by_external_id(s, debtor)
        assert found is not None
        return await ledger.debtor_balance(s, found.id, today)


async def status_of(db: Database, invoice: str) -> str:
    async with db.sessionmaker() as s:
        found = await invoice_repo.get_by_external_id(s, invoice)
        assert found is not None
        return found.status


async def raw_sums(db: Database, debtor: str) -> dict[str, int]:
    """What the debtor owes per currency, straight from the ledger rows with plain SQL."""
    sql = text(
        "SELECT l.currency, SUM(l.amount_minor) FROM ledger_entries l "
        "JOIN debtors d ON d.id = l.debtor_id WHERE d.external_id = :ext GROUP BY l.currency"
    )
    async with db.sessionmaker() as s:
        return {cur: int(total) for cur, total in (await s.execute(sql, {"ext": debtor})).all()}


async def raw_invoice_sums(db: Database, debtor: str) -> dict[str, int]:
    sql = text(
        "SELECT i.external_id, SUM(l.amount_minor) FROM ledger_entries l "
        "JOIN invoices i ON i.id = l.invoice_id JOIN debtors d ON d.id = l.debtor_id "
        "WHERE d.external_id = :ext GROUP BY i.external_id"
    )
    async with db.sessionmaker() as s:
        return {ext: int(total) for ext, total in (await s.execute(sql, {"ext": debtor})).all()}


async def assert_balance_is_ledger_sum(db: Database, debtor: str) -> ledger.DebtorBalance:
    bal = await balance(db, debtor)
    assert {c: b.open for c, b in bal.currencies.items()} == await raw_sums(db, debtor)
    assert {i.external_id: i.open.minor for i in bal.invoices} == await raw_invoice_sums(db, debtor)
    return bal


def opens(bal: ledger.DebtorBalance) -> dict[str, int]:
    return {i.external_id: i.open.minor for i in bal.invoices}


async def test_partial_payments_reduce_the_open_amount_until_paid(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)

    result = await pay(db, d, "30.00")
    assert [(a.invoice_external_id, a.amount.minor) for a in result.allocations] == [(inv, 3000)]
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].open == 7000
    assert await status_of(db, inv) == "open"

    await pay(db, d, "69.99")
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].open == 1
    assert await status_of(db, inv) == "open"

    await pay(db, d, "0.01")
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].open == 0
    assert bal.currencies["EUR"].credit == 0
    assert await status_of(db, inv) == "paid"


async def test_credit_note_and_payment_together_settle_an_invoice(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)

    note = await credit(db, inv, "25.00")
    assert note.number.startswith("CN-")
    assert (await assert_balance_is_ledger_sum(db, d)).currencies["EUR"].open == 7500
    assert await status_of(db, inv) == "open"

    await pay(db, d, "75.00")
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].open == 0
    assert await status_of(db, inv) == "paid"


async def test_full_credit_note_marks_the_invoice_paid(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=4_200)
    await pay(db, d, "2.00")
    await credit(db, inv, "40.00")
    assert await status_of(db, inv) == "paid"
    assert (await assert_balance_is_ledger_sum(db, d)).currencies["EUR"].open == 0

    with pytest.raises(InvalidInput) as exc:
        await credit(db, inv, "1.00")
    assert exc.value.code == "invoice_not_creditable"


async def test_credit_note_cannot_exceed_the_open_amount(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)
    await pay(db, d, "60.00")
    before = await raw_sums(db, d)

    with pytest.raises(InvalidInput) as exc:
        await credit(db, inv, "40.01")
    assert exc.value.code == "credit_exceeds_open"
    assert "at most 40.00 is open" in exc.value.errors[0].message
    assert await raw_sums(db, d) == before
    assert await status_of(db, inv) == "open"


async def test_credit_note_numbers_are_unique(db: Database) -> None:
    d = await factories.debtor(db)
    first = await factories.invoice(db, d, amount_minor=10_000)
    second = await factories.invoice(db, d, amount_minor=10_000)
    await credit(db, first, "1.00", number="CN-X")
    with pytest.raises(Conflict) as exc:
        await credit(db, second, "1.00", number="CN-X")
    assert exc.value.code == "credit_note_exists"
    assert opens(await balance(db, d)) == {first: 9_900, second: 10_000}


async def test_payment_is_allocated_oldest_due_first(db: Database) -> None:
    d = await factories.debtor(db)
    a = await factories.invoice(db, d, amount_minor=10_000, due_date=date(2026, 10, 15))
    b = await factories.invoice(db, d, amount_minor=5_000, due_date=date(2026, 9, 30))
    c = await factories.invoice(db, d, amount_minor=8_000, due_date=date(2026, 11, 30))

    result = await pay(db, d, "120.00")
    assert [(x.invoice_external_id, x.amount.minor) for x in result.allocations] == [(b, 5000), (a, 7000)]
    bal = await assert_balance_is_ledger_sum(db, d)
    assert opens(bal) == {a: 3000, b: 0, c: 8000}
    assert bal.currencies["EUR"].open == 11_000
    assert (await status_of(db, a), await status_of(db, b), await status_of(db, c)) == (
        "open",
        "paid",
        "open",
    )

    # The next payment continues with the oldest invoice still open.
    result = await pay(db, d, "50.00")
    assert [(x.invoice_external_id, x.amount.minor) for x in result.allocations] == [(a, 3000), (c, 2000)]
    assert opens(await assert_balance_is_ledger_sum(db, d)) == {a: 0, b: 0, c: 6000}


async def test_payment_for_a_named_invoice_skips_older_ones(db: Database) -> None:
    d = await factories.debtor(db)
    old = await factories.invoice(db, d, amount_minor=10_000, due_date=date(2026, 10, 1))
    new = await factories.invoice(db, d, amount_minor=10_000, due_date=date(2026, 11, 1))
    result = await pay(db, d, "100.00", invoice=new)
    assert [(x.invoice_external_id, x.amount.minor) for x in result.allocations] == [(new, 10_000)]
    assert opens(await assert_balance_is_ledger_sum(db, d)) == {old: 10_000, new: 0}
    assert await status_of(db, new) == "paid"


async def test_overpayment_becomes_credit_on_the_account(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)

    result = await pay(db, d, "150.00")
    assert [(x.invoice_external_id, x.amount.minor) for x in result.allocations] == [
        (inv, 10_000),
        (None, 5_000),
    ]
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].open == -5_000
    assert bal.currencies["EUR"].credit == 5_000
    assert opens(bal) == {inv: 0}
    assert await status_of(db, inv) == "paid"

    # Paying a settled invoice again is all credit; the invoice stays settled at zero.
    await pay(db, d, "10.00", invoice=inv)
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].credit == 6_000
    assert opens(bal) == {inv: 0}


async def test_two_currencies_never_mix(db: Database) -> None:
    d = await factories.debtor(db)
    eur = await factories.invoice(db, d, amount_minor=10_000, currency="EUR", due_date=date(2026, 10, 1))
    usd = await factories.invoice(db, d, amount_minor=20_000, currency="USD", due_date=date(2026, 11, 1))

    result = await pay(db, d, "300.00", "USD")
    assert [(x.invoice_external_id, x.amount) for x in result.allocations] == [
        (usd, Money(20_000, "USD")),
        (None, Money(10_000, "USD")),
    ]
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["EUR"].open == 10_000
    assert bal.currencies["EUR"].credit == 0
    assert bal.currencies["USD"].open == -10_000
    assert bal.currencies["USD"].credit == 10_000
    assert await status_of(db, eur) == "open"
    assert await status_of(db, usd) == "paid"

    with pytest.raises(InvalidInput) as exc:
        await pay(db, d, "100.00", "USD", invoice=eur)
    assert exc.value.code == "currency_mismatch"
    with pytest.raises(InvalidInput) as exc:
        await credit(db, eur, "10.00", "USD")
    assert exc.value.code == "currency_mismatch"
    assert await raw_sums(db, d) == {"EUR": 10_000, "USD": -10_000}


async def test_zero_and_three_decimal_currencies_book_in_their_own_minor_units(db: Database) -> None:
    d = await factories.debtor(db)
    jpy = await factories.invoice(db, d, amount_minor=5_000, currency="JPY")
    kwd = await factories.invoice(db, d, amount_minor=12_345, currency="KWD")
    await pay(db, d, "1000", "JPY")
    await pay(db, d, "2.345", "KWD")
    bal = await assert_balance_is_ledger_sum(db, d)
    assert bal.currencies["JPY"].open == 4_000
    assert bal.currencies["KWD"].open == 10_000
    assert {i.external_id: i.open.decimal_str for i in bal.invoices} == {jpy: "4000", kwd: "10.000"}


async def test_every_balance_is_the_plain_sum_of_the_ledger(db: Database) -> None:
    d = await factories.debtor(db)
    other = await factories.debtor(db)
    invs = [
        await factories.invoice(db, d, amount_minor=amount, currency=cur, due_date=due)
        for amount, cur, due in [
            (12_345, "EUR", date(2026, 9, 1)),
            (6_789, "EUR", date(2026, 10, 1)),
            (100_000, "USD", date(2026, 10, 15)),
            (4_000, "EUR", date(2026, 12, 31)),
        ]
    ]
    await factories.invoice(db, other, amount_minor=99_999)
    await pay(db, other, "10.00")
    await pay(db, d, "100.00")
    await credit(db, invs[1], "5.00")
    await pay(db, d, "1250.00", "USD")
    await pay(db, d, "0.45", invoice=invs[3])
    await credit(db, invs[3], "10.00")
    await pay(db, d, "1000.00")

    bal = await assert_balance_is_ledger_sum(db, d)
    assert await raw_sums(db, d) == {
        "EUR": 23_134 - 10_000 - 500 - 45 - 1_000 - 100_000,
        "USD": 100_000 - 125_000,
    }
    assert bal.currencies["USD"].credit == 25_000
    assert bal.currencies["EUR"].credit == -bal.currencies["EUR"].open
    assert all(i.open.minor == 0 for i in bal.invoices)
    assert (await assert_balance_is_ledger_sum(db, other)).currencies["EUR"].open == 98_999


async def test_overdue_counts_only_open_invoices_past_their_due_date(db: Database, clock: FixedClock) -> None:
    d = await factories.debtor(db)
    late = await factories.invoice(db, d, amount_minor=10_000, due_date=date(2026, 11, 14))
    await factories.invoice(db, d, amount_minor=5_000, due_date=clock.today())
    paid = await factories.invoice(db, d, amount_minor=1_000, due_date=date(2026, 9, 1))
    await pay(db, d, "10.00", invoice=paid)

    bal = await balance(db, d, clock.today())
    assert bal.currencies["EUR"].open == 15_000
    assert bal.currencies["EUR"].overdue == 10_000
    by_ext = {i.external_id: i for i in bal.invoices}
    assert by_ext[late].overdue and by_ext[late].days_overdue == 10
    assert not by_ext[paid].overdue and by_ext[paid].days_overdue == 0


async def test_unapproved_invoices_are_not_owed_and_take_no_payment(db: Database) -> None:
    d = await factories.debtor(db)
    pending = await factories.invoice(db, d, approve=False, amount_minor=10_000)
    assert (await balance(db, d)).currencies == {}

    result = await pay(db, d, "100.00")
    assert [(x.invoice_external_id, x.amount.minor) for x in result.allocations] == [(None, 10_000)]
    assert await status_of(db, pending) == "pending_approval"
    with pytest.raises(InvalidInput) as exc:
        await credit(db, pending, "1.00")
    assert exc.value.code == "invoice_not_creditable"


async def test_payments_for_unknown_debtors_or_other_debtors_invoices_are_refused(db: Database) -> None:
    d = await factories.debtor(db)
    other = await factories.debtor(db)
    theirs = await factories.invoice(db, other)
    with pytest.raises(InvalidInput) as exc:
        await pay(db, "NOBODY", "1.00")
    assert exc.value.code == "unknown_debtor"
    with pytest.raises(InvalidInput) as exc:
        await pay(db, d, "1.00", invoice=theirs)
    assert exc.value.code == "unknown_invoice"
    with pytest.raises(InvalidInput) as exc:
        await credit(db, "NO-SUCH-INVOICE", "1.00")
    assert exc.value.code == "unknown_invoice"
    assert await raw_sums(db, d) == {}


@contextmanager
def ledger_writes(db: Database) -> Iterator[list[str]]:
    """Every SQL statement that touches ledger_entries while the block runs."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "ledger_entries" in statement.lower():
            seen.append(" ".join(statement.split()).lower())

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)


async def ledger_rows(db: Database, debtor: str) -> dict[str, tuple[Any, ...]]:
    sql = text(
        "SELECT l.id, l.kind, l.amount_minor, l.currency, l.invoice_id, l.payment_id, l.effective_date, "
        "l.created_at FROM ledger_entries l JOIN debtors d ON d.id = l.debtor_id WHERE d.external_id = :ext"
    )
    async with db.sessionmaker() as s:
        return {str(r[0]): tuple(r[1:]) for r in (await s.execute(sql, {"ext": debtor})).all()}


async def test_entries_are_append_only(db: Database) -> None:
    d = await factories.debtor(db)
    await factories.invoice(db, d, amount_minor=10_000, due_date=date(2026, 9, 1))
    await factories.invoice(db, d, amount_minor=10_000, due_date=date(2026, 10, 1))
    c = await factories.invoice(db, d, amount_minor=5_000, due_date=date(2026, 12, 1))
    await pay(db, d, "40.00")
    before = await ledger_rows(db, d)
    assert len(before) == 4

    with ledger_writes(db) as statements:
        await pay(db, d, "200.00")
        await credit(db, c, "5.00")
    after = await ledger_rows(db, d)

    assert {k: after[k] for k in before} == before  # nothing that existed changed
    added = sorted((row[0], row[1]) for k, row in after.items() if k not in before)
    assert added == [
        ("credit_note", -500),
        ("payment", -10_000),
        ("payment", -6_000),
        ("payment", -4_000),
    ]
    assert statements, "the payment should have written ledger rows"
    assert [s for s in statements if s.startswith(("update", "delete"))] == []
