"""MT940 text rules: the SWIFT character set, decimal commas, and :86: lines of at most 65 characters."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date

import pytest

from core.db import Database
from core.payments import exports
from core.payments.bank import service as bank
from core.payments.exports import mt940_amount, swift_text, wrap_details
from tests import bank_scenario as sc
from tests.factories import TEST_ACTOR


def test_amounts_use_a_decimal_comma_and_the_currency_exponent() -> None:
    assert mt940_amount(123450, "EUR") == "1234,50"
    assert mt940_amount(5, "EUR") == "0,05"
    assert mt940_amount(1000, "JPY") == "1000,"
    assert mt940_amount(1234, "KWD") == "1,234"


def test_names_are_reduced_to_the_swift_character_set() -> None:
    assert swift_text("Müller & Søn: café") == "Muller Sn cafe"


def test_long_details_wrap_at_fields_and_join_back_exactly() -> None:
    numbers = ",".join(f"2026-{n:05d}" for n in range(1, 9))
    text = f"/EREF/RF18539007547034/REMI/{numbers}/NAME/{'Groothandel in Bouwmaterialen ' * 2}/IBAN/NL20INGB0001234567"
    lines = wrap_details(text)
    assert all(len(line) <= 65 for line in lines) and len(lines) <= 6
    assert "".join(lines) == text
    assert not any(line.startswith(("-", ":")) for line in lines)


async def _collect(chunks: AsyncIterator[str]) -> str:
    return "".join([chunk async for chunk in chunks])


async def test_paged_exports_list_every_entry_and_payment_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two: the keyset walk neither skips nor repeats a row at the page boundaries."""
    await sc.build(db)
    async with db.session_scope() as s:
        await bank.import_statement(s, sc.read(sc.CAMT_DAY1), actor=TEST_ACTOR, today=date(2026, 11, 24))
        await bank.import_statement(s, sc.read(sc.MT940_DAY2), actor=TEST_ACTOR, today=date(2026, 11, 24))
    async with db.sessionmaker() as s:
        whole = await _collect(exports.mutations_csv(s, start=date(2026, 1, 1), end=date(2026, 12, 31)))
        statement = await _collect(
            exports.payments_mt940(
                s, start=date(2026, 11, 1), end=date(2026, 11, 30), account_iban="NL91ABNA0417164300"
            )
        )
    monkeypatch.setattr(exports, "PAGE", 2)
    monkeypatch.setattr(exports, "INVOICES_PAGE", 2)
    async with db.sessionmaker() as s:
        paged = await _collect(exports.mutations_csv(s, start=date(2026, 1, 1), end=date(2026, 12, 31)))
        paged_statement = await _collect(
            exports.payments_mt940(
                s, start=date(2026, 11, 1), end=date(2026, 11, 30), account_iban="NL91ABNA0417164300"
            )
        )
    rows = list(csv.DictReader(io.StringIO(paged)))
    assert paged == whole
    assert len({r["entry_id"] for r in rows}) == len(rows) == 8 + 6  # 8 invoices, 6 allocations of 5 payments
    assert paged_statement == statement and statement.count(":61:") == 5
