"""Bank statements: each match rule, learned IBANs, ambiguity, currencies, debits, re-imports, bad files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from core.db import Database
from core.errors import Conflict, InvalidInput
from core.invoices import repository as invoice_repo
from core.invoices.models import InvoiceStatus
from core.ledger import repository as ledger_repo
from core.ledger.models import Payment
from core.payments.bank import repository as bank_repo
from core.payments.bank import service as bank
from core.payments.bank.matching import rf_candidates, tokens
from core.payments.bank.models import BankLine, BankStatement, DebtorBankAccount
from core.payments.bank.schemas import AssignIn
from tests import bank_scenario as sc
from tests import factories
from tests.factories import TEST_ACTOR

TODAY = date(2026, 11, 24)


async def run_import(db: Database, path: Path | bytes) -> bank.ImportResult:
    data = path if isinstance(path, bytes) else sc.read(path)
    async with db.session_scope() as s:
        return await bank.import_statement(s, data, actor=TEST_ACTOR, today=TODAY, filename="upload")


async def open_of(db: Database, external_id: str) -> int:
    async with db.sessionmaker() as s:
        inv = await invoice_repo.get_by_external_id(s, external_id)
        assert inv is not None
        return await ledger_repo.open_amount(s, inv.id)


async def status_of(db: Database, external_id: str) -> str:
    async with db.sessionmaker() as s:
        inv = await invoice_repo.get_by_external_id(s, external_id)
        assert inv is not None
        return inv.status


async def count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


def by_position(result: bank.ImportResult) -> dict[int, BankLine]:
    return {line.position: line for line in result.lines}


def test_rf_references_are_found_in_free_text_with_spaces_and_lower_case() -> None:
    assert rf_candidates("rf31 1000 0000 0000 043 alle facturen") == ["RF31100000000000043"]
    assert rf_candidates(None, "ref RF18539007547034 INV") == ["RF18539007547034"]
    assert rf_candidates("RF19539007547034") == []  # wrong check digits
    assert rf_candidates("SURF18539007547034") == []  # not at a word start


def test_remittance_tokens_keep_invoice_numbers_whole() -> None:
    assert tokens("Betaling factuur 2026-0042, dank u") == ["Betaling", "factuur", "2026-0042", "dank", "u"]


async def test_camt_lines_are_matched_by_reference_number_and_grouped_reference(db: Database) -> None:
    await sc.build(db)
    result = await run_import(db, sc.CAMT_DAY1)
    assert result.created and len(result.lines) == 7 and not result.duplicates
    lines = by_position(result)

    assert (lines[1].status, lines[1].rule) == ("matched", "rf_reference")
    assert await status_of(db, "J1") == InvoiceStatus.paid
    assert (lines[2].status, lines[2].rule) == ("matched", "invoice_number")
    assert await status_of(db, "M1") == InvoiceStatus.paid

    assert (lines[3].status, lines[3].reason) == ("unmatched", "ambiguous_invoice_number")
    assert {c["invoice_number"] for c in lines[3].candidates or []} == {"2026-0050", "2026-0051"}
    assert await open_of(db, "S1") == 6_000 and await open_of(db, "B1") == 6_000

    assert (lines[4].status, lines[4].reason) == ("unmatched", "currency_mismatch")
    assert await open_of(db, "A1") == 4_000

    assert (lines[5].status, lines[5].reason) == ("ignored", "debit")
    assert (lines[6].status, lines[6].reason) == ("unmatched", "no_match")

    # The debtor's grouped reference pays their open invoices oldest first.
    assert (lines[7].status, lines[7].rule, lines[7].invoice_id) == ("matched", "rf_reference", None)
    assert await status_of(db, "G1") == InvoiceStatus.paid and await status_of(db, "G2") == InvoiceStatus.paid
    assert await count(db, Payment) == 3


async def test_a_matched_payment_teaches_the_iban_that_matches_the_next_statement(db: Database) -> None:
    await sc.build(db)
    await run_import(db, sc.CAMT_DAY1)
    async with db.sessionmaker() as s:
        learned = (
            await s.scalars(select(DebtorBankAccount).where(col(DebtorBankAccount.iban) == sc.JANSEN_IBAN))
        ).one()
    assert learned.holder_name == "Jansen Installaties BV" and learned.learned_from == "rf_reference"

    result = await run_import(db, sc.MT940_DAY2)
    lines = by_position(result)
    assert (lines[1].status, lines[1].rule) == ("matched", "learned_iban")
    assert await status_of(db, "J2") == InvoiceStatus.paid
    assert (lines[3].status, lines[3].reason) == ("ignored", "debit")
    assert (lines[4].status, lines[4].rule) == ("matched", "invoice_number")
    assert await status_of(db, "S1") == InvoiceStatus.paid


async def test_the_same_transaction_in_an_overlapping_statement_posts_once(db: Database) -> None:
    await sc.build(db)
    await run_import(db, sc.CAMT_DAY1)
    result = await run_import(db, sc.MT940_DAY2)
    assert [d.bank_reference for d in result.duplicates] == ["ABNA2611230002"]
    assert 2 not in by_position(result)
    assert await open_of(db, "M1") == 0  # paid once, not overpaid into a credit
    async with db.sessionmaker() as s:
        refs = (await s.scalars(select(col(Payment.reference)))).all()
    assert sorted(r for r in refs if r == "ABNA2611230002") == ["ABNA2611230002"]


async def test_importing_the_same_file_twice_changes_nothing(db: Database) -> None:
    await sc.build(db)
    first = await run_import(db, sc.CAMT_DAY1)
    before = (await count(db, Payment), await count(db, BankLine), await count(db, BankStatement))
    again = await run_import(db, sc.CAMT_DAY1)
    assert not again.created and again.statement.id == first.statement.id
    assert [line.status for line in again.lines] == [line.status for line in first.lines]
    assert (await count(db, Payment), await count(db, BankLine), await count(db, BankStatement)) == before


async def test_a_line_without_bank_reference_is_recognised_in_a_resent_copy(db: Database) -> None:
    await sc.build(db)
    await run_import(db, sc.CAMT_DAY1)
    # The bank sends the statement again with a new creation time: other bytes, same statement.
    copy = sc.CAMT_DAY1.read_bytes().replace(b"2026-11-23T18:00:00", b"2026-11-24T07:30:00")
    result = await run_import(db, copy)
    assert result.created and result.lines == [] and len(result.duplicates) == 7
    assert await count(db, Payment) == 3


async def test_an_unmatched_line_is_assigned_by_hand_once_and_teaches_the_iban(db: Database) -> None:
    await sc.build(db)
    lines = by_position(await run_import(db, sc.CAMT_DAY1))
    ambiguous = lines[3]
    async with db.session_scope() as s:
        line = await bank.assign(
            s,
            ambiguous.id,
            AssignIn(debtor_external_id="BAKKER", invoice_external_id="B1", note="called them"),
            actor=TEST_ACTOR,
            today=TODAY,
        )
        assert (line.status, line.rule) == ("assigned", "manual")
        assert line.debtor_id is not None
    assert await status_of(db, "B1") == InvoiceStatus.paid  # 60.00 to the invoice, 60.00 on account
    async with db.sessionmaker() as s:
        assert [a.iban for a in await bank_repo.accounts_of(s, line.debtor_id)] == [sc.SMIT_BAKKER_IBAN]
    with pytest.raises(Conflict):
        async with db.session_scope() as s:
            await bank.assign(
                s, ambiguous.id, AssignIn(debtor_external_id="SMIT"), actor=TEST_ACTOR, today=TODAY
            )
    assert await open_of(db, "S1") == 6_000


async def test_an_ignored_debit_cannot_be_assigned(db: Database) -> None:
    await sc.build(db)
    lines = by_position(await run_import(db, sc.CAMT_DAY1))
    with pytest.raises(Conflict):
        async with db.session_scope() as s:
            await bank.assign(
                s, lines[5].id, AssignIn(debtor_external_id="JANSEN"), actor=TEST_ACTOR, today=TODAY
            )


@pytest.mark.parametrize(
    ("path", "line", "words"),
    [
        (sc.MT940_BAD_LINE, 7, ":61:26AB25"),
        (sc.CAMT_TRUNCATED, 42, "not well-formed"),
        (b"hello, this is not a bank file", None, "neither a CAMT.053"),
        (b"", None, "empty"),
        (b"<?xml version='1.0'?><pain.001/>", 1, "not a camt.053"),
        (
            sc.CAMT_DAY1.read_bytes().replace(b'<Amt Ccy="EUR">250.00</Amt>', b""),
            55,
            "has no <Amt>",
        ),
        (sc.MT940_DAY2.read_bytes().replace(b":25:NL91ABNA0417164300\r\n", b""), 1, "no :25: account"),
    ],
)
async def test_a_file_that_does_not_parse_is_refused_with_its_line_and_nothing_is_stored(
    db: Database, path: Path | bytes, line: int | None, words: str
) -> None:
    await sc.build(db)
    with pytest.raises(InvalidInput) as caught:
        await run_import(db, path)
    assert words in caught.value.message
    assert caught.value.errors[0].line == line
    assert (await count(db, BankStatement), await count(db, BankLine), await count(db, Payment)) == (0, 0, 0)


def mt940_text(*transactions: tuple[str, str, str]) -> bytes:
    """A one-statement MT940 file for account NL91ABNA0417164300: (amount, bank reference, :86:)."""
    lines = [":20:TEST", ":25:NL91ABNA0417164300", ":28C:00400/1", ":60F:C261124EUR0,00"]
    for amount, ref, details in transactions:
        lines += [f":61:2611251125C{amount}NTRFNONREF//{ref}", f":86:{details}"]
    return ("\r\n".join([*lines, ":62F:C261125EUR0,00", "-"]) + "\r\n").encode()


async def test_a_learned_iban_with_two_open_invoices_of_the_amount_is_ambiguous(db: Database) -> None:
    await sc.build(db)
    await factories.batch(
        db, [factories.invoice_row("JANSEN", external_id="J3", number="2026-0103", amount_minor=7_550)]
    )
    await run_import(db, sc.CAMT_DAY1)  # learns Jansen's IBAN
    result = await run_import(
        db,
        mt940_text(
            ("75,50", "T1", f"/IBAN/{sc.JANSEN_IBAN}/NAME/Jansen/REMI/november"),
            ("12,34", "T2", f"/IBAN/{sc.JANSEN_IBAN}/NAME/Jansen/REMI/something"),
        ),
    )
    lines = by_position(result)
    assert (lines[1].status, lines[1].reason) == ("unmatched", "ambiguous_amount")
    assert {c["invoice_external_id"] for c in lines[1].candidates or []} == {"J2", "J3"}
    assert (lines[2].status, lines[2].reason) == ("unmatched", "known_iban_no_amount")
    assert await open_of(db, "J2") == 7_550 and await open_of(db, "J3") == 7_550


async def test_an_invoice_number_of_a_known_payer_wins_over_another_debtors(db: Database) -> None:
    await sc.build(db)
    await run_import(db, sc.CAMT_DAY1)
    # Jansen's IBAN is known; the text names Jansen's J2 and Smit's open S1.
    result = await run_import(
        db, mt940_text(("75,50", "T3", f"/IBAN/{sc.JANSEN_IBAN}/REMI/2026-0102 2026-0050"))
    )
    line = by_position(result)[1]
    assert (line.status, line.rule) == ("matched", "invoice_number")
    assert await status_of(db, "J2") == InvoiceStatus.paid
    assert await open_of(db, "S1") == 6_000
