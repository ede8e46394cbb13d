"""CSV import: the API's rules, every error with its file line and column, all or nothing, idempotent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from core.config import Settings
from core.db import Database
from core.errors import FieldError
from core.invoices import csv_import
from core.invoices.csv_import import ImportRefused
from core.invoices.intake import BatchResult
from core.invoices.models import Invoice, InvoiceDocument
from tests import factories
from tests.factories import TEST_ACTOR

HEADER = "external_id,debtor_external_id,number,issue_date,due_date,amount,currency,description"
PDF = b"%PDF-1.4\n% a test invoice\n%%EOF\n"


def row(n: int, debtor: str, amount: str = "100.00", currency: str = "EUR", **over: str) -> str:
    cells = {
        "external_id": f"CSV-{n}",
        "debtor_external_id": debtor,
        "number": f"C-{n:04d}",
        "issue_date": "2026-10-01",
        "due_date": "2026-10-31",
        "amount": amount,
        "currency": currency,
        "description": f"item {n}",
        **over,
    }
    return ",".join(cells.values())


def write(tmp_path: Path, lines: list[str], name: str = "invoices.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


async def run_import(db: Database, path: Path, settings: Settings) -> BatchResult:
    async with db.session_scope() as s:
        return await csv_import.import_file(s, path, actor=TEST_ACTOR, max_rows=settings.csv_max_rows)


async def refusal(db: Database, path: Path, settings: Settings) -> list[FieldError]:
    before = await invoice_count(db)
    with pytest.raises(ImportRefused) as exc:
        await run_import(db, path, settings)
    assert "nothing was imported" in exc.value.message
    assert await invoice_count(db) == before
    return exc.value.errors


def where(errors: list[FieldError]) -> list[tuple[int | None, str]]:
    return [(e.line, ".".join(map(str, e.loc))) for e in errors]


async def invoice_count(db: Database) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(text("SELECT COUNT(*) FROM invoices"))).scalar_one())


async def test_a_good_file_becomes_one_pending_batch(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    path = write(tmp_path, [HEADER, row(1, d, "12.50"), row(2, d, "1000", "JPY"), row(3, d, "0.125", "KWD")])
    result = await run_import(db, path, settings)

    assert result.created
    assert (result.batch.status, result.batch.source, result.batch.count) == ("pending_approval", "csv", 3)
    assert result.batch.totals == {"EUR": 1250, "JPY": 1000, "KWD": 125}
    async with db.sessionmaker() as s:
        stored = (
            await s.execute(
                select(col(Invoice.number), col(Invoice.status), col(Invoice.description)).where(
                    col(Invoice.batch_id) == result.batch.id
                )
            )
        ).all()
    assert sorted(stored) == [
        ("C-0001", "pending_approval", "item 1"),
        ("C-0002", "pending_approval", "item 2"),
        ("C-0003", "pending_approval", "item 3"),
    ]


async def test_every_bad_row_is_reported_by_line_and_column(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    path = write(
        tmp_path,
        [
            HEADER,
            row(1, d),  # line 2
            row(2, d, amount='"12,50"'),  # line 3
            row(3, d),  # line 4
            row(4, d, due_date="2026-13-01"),  # line 5
            row(5, d, currency="EUX"),  # line 6
            row(6, d),  # line 7
            row(7, d, amount="-5.00", due_date="2026-09-01"),  # line 8: two problems
            row(8, d, amount="1.005"),  # line 9
        ],
    )
    errors = await refusal(db, path, settings)
    assert where(errors) == [
        (3, "amount"),
        (5, "due_date"),
        (6, "currency"),
        (8, "due_date"),
        (8, "amount"),
        (9, "amount"),
    ]
    assert "not a decimal number" in errors[0].message
    assert "EUX" in errors[2].message
    assert "before issue_date" in errors[3].message
    assert "at most 2 decimals" in errors[5].message


async def test_header_problems_are_reported_on_line_1(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    header = "external_id,debtor_external_id,number,issue_date,due_date,amout,currency,notes"
    errors = await refusal(db, write(tmp_path, [header, row(1, d)]), settings)
    assert [(e.line, e.loc, e.code) for e in errors] == [
        (1, ("amount",), "missing_column"),
        (1, ("amout",), "unknown_column"),
        (1, ("notes",), "unknown_column"),
    ]
    assert "required column 'amount' is missing" in errors[0].message


async def test_an_empty_file_is_refused(db: Database, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    errors = await refusal(db, path, settings)
    assert [(e.line, e.code) for e in errors] == [(1, "empty")]


async def test_semicolon_delimited_files(db: Database, settings: Settings, tmp_path: Path) -> None:
    d = await factories.debtor(db)
    lines = [HEADER.replace(",", ";"), row(1, d).replace(",", ";"), row(2, d, "7.25").replace(",", ";")]
    result = await run_import(db, write(tmp_path, lines), settings)
    assert result.batch.count == 2
    assert result.batch.totals == {"EUR": 10_725}


async def test_a_utf8_byte_order_mark_is_ignored(db: Database, settings: Settings, tmp_path: Path) -> None:
    d = await factories.debtor(db)
    path = write(tmp_path, [HEADER, row(1, d, description="Café crème")], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = await run_import(db, path, settings)
    assert result.batch.count == 1
    async with db.sessionmaker() as s:
        desc = (
            await s.execute(select(col(Invoice.description)).where(col(Invoice.external_id) == "CSV-1"))
        ).scalar_one()
    assert desc == "Café crème"


async def test_quoted_newlines_report_the_line_a_row_starts_on(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    lines = [
        HEADER,
        row(1, d, description='"first line\nsecond line"'),  # lines 2-3
        row(2, d, amount="x", description='"a\nb\nc"'),  # lines 4-6
        row(3, d, currency="XYZ"),  # line 7
    ]
    errors = await refusal(db, write(tmp_path, lines), settings)
    assert where(errors) == [(4, "amount"), (7, "currency")]

    good = write(tmp_path, [HEADER, row(1, d, description='"first line\nsecond line"')], "good.csv")
    await run_import(db, good, settings)
    async with db.sessionmaker() as s:
        desc = (
            await s.execute(select(col(Invoice.description)).where(col(Invoice.external_id) == "CSV-1"))
        ).scalar_one()
    assert desc == "first line\nsecond line"


async def test_blank_lines_are_skipped_and_lines_still_count(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    lines = [HEADER, "", row(1, d), "", "", row(2, d, amount="abc"), ",,,,,,,", row(3, d, due_date="soon")]
    errors = await refusal(db, write(tmp_path, lines), settings)
    assert where(errors) == [(6, "amount"), (8, "due_date")]

    good = write(tmp_path, [HEADER, "", row(1, d), "", row(2, d), ""], "good.csv")
    assert (await run_import(db, good, settings)).batch.count == 2


async def test_crlf_line_endings(db: Database, settings: Settings, tmp_path: Path) -> None:
    d = await factories.debtor(db)
    path = tmp_path / "windows.csv"
    path.write_bytes("\r\n".join([HEADER, row(1, d), row(2, d, amount="?"), ""]).encode())
    errors = await refusal(db, path, settings)
    assert where(errors) == [(3, "amount")]


async def test_rows_with_too_many_or_too_few_cells(db: Database, settings: Settings, tmp_path: Path) -> None:
    d = await factories.debtor(db)
    lines = [HEADER, row(1, d), row(2, d) + ",surplus", row(3, d), "CSV-4," + d + ",C-0004,2026-10-01"]
    errors = await refusal(db, write(tmp_path, lines), settings)
    assert [(e.line, e.loc, e.code) for e in errors] == [
        (3, ("row",), "extra_cells"),
        (5, ("row",), "missing_cells"),
    ]


async def test_unknown_debtors_and_duplicate_numbers_carry_their_lines(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    lines = [
        HEADER,
        row(1, d),  # line 2
        "",  # line 3
        row(2, "NOBODY"),  # line 4
        row(3, d, number="C-0001"),  # line 5: the number of line 2
        row(1, d, number="C-0099"),  # line 6: the external id of line 2
    ]
    errors = await refusal(db, write(tmp_path, lines), settings)
    assert sorted((e.line, e.loc[0], e.code) for e in errors) == [
        (4, "debtor_external_id", "unknown_debtor"),
        (5, "number", "duplicate"),
        (6, "external_id", "duplicate"),
    ]


async def test_numbers_already_taken_are_reported_with_their_lines(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    await factories.invoice(db, d, number="C-0002", external_id="ERP-2")
    lines = [HEADER, row(1, d), row(2, d), row(3, d)]
    errors = await refusal(db, write(tmp_path, lines), settings)
    assert [(e.line, e.loc, e.code) for e in errors] == [(3, ("number",), "number_taken")]
    assert "ERP-2" in errors[0].message


async def test_importing_the_same_file_twice_changes_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    path = write(tmp_path, [HEADER, row(1, d), row(2, d, "5.00")])
    first = await run_import(db, path, settings)
    before = await invoice_count(db)
    async with db.sessionmaker() as s:
        audits = (await s.execute(text("SELECT COUNT(*) FROM audit_events"))).scalar_one()

    second = await run_import(db, path, settings)
    assert first.created and not second.created
    assert second.batch.id == first.batch.id
    assert await invoice_count(db) == before
    async with db.sessionmaker() as s:
        assert (await s.execute(text("SELECT COUNT(*) FROM audit_events"))).scalar_one() == audits


async def test_pdf_paths_are_relative_to_the_csv_folder(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "one.pdf").write_bytes(PDF + b"1")
    absolute = tmp_path / "elsewhere.pdf"
    absolute.write_bytes(PDF + b"2")
    header = HEADER + ",pdf_path"
    lines = [header, row(1, d) + ",docs/one.pdf", row(2, d) + f",{absolute}", row(3, d) + ","]
    result = await run_import(db, write(tmp_path, lines), settings)
    assert result.batch.count == 3

    async with db.sessionmaker() as s:
        docs = (
            await s.execute(
                select(col(Invoice.external_id), col(InvoiceDocument.filename), col(InvoiceDocument.content))
                .join(InvoiceDocument, col(InvoiceDocument.invoice_id) == col(Invoice.id))
                .where(col(Invoice.batch_id) == result.batch.id)
                .order_by(col(Invoice.external_id))
            )
        ).all()
    assert [(r[0], r[1], bytes(r[2])) for r in docs] == [
        ("CSV-1", "C-0001.pdf", PDF + b"1"),
        ("CSV-2", "C-0002.pdf", PDF + b"2"),
    ]


async def test_missing_or_non_pdf_files_are_reported_with_their_lines(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    d = await factories.debtor(db)
    (tmp_path / "ok.pdf").write_bytes(PDF)
    (tmp_path / "notes.txt").write_text("not a pdf")
    header = HEADER + ",pdf_path"
    lines = [header, row(1, d) + ",ok.pdf", row(2, d) + ",missing.pdf", row(3, d) + ",notes.txt"]
    errors = await refusal(db, write(tmp_path, lines), settings)
    assert [(e.line, e.loc) for e in errors] == [(3, ("pdf_path",)), (4, ("pdf_path",))]
    assert "missing.pdf" in errors[0].message
    assert errors[1].code == "not_a_pdf"


def test_parse_counts_rows_against_the_limit() -> None:
    lines = [HEADER] + [row(n, "D-1") for n in range(1, 5)]
    parsed = csv_import.parse(io.StringIO("\n".join(lines) + "\n"), max_rows=3)
    assert [(e.line, e.code) for e in parsed.errors] == [(5, "too_many_rows")]


def test_the_row_limit_counts_rows_not_errors() -> None:
    bad = "INV-{n},D-1,N-{n},2026-10-01,2026-09-01,1.00,EUX,"  # two errors on each row
    lines = [HEADER] + [bad.format(n=n) for n in range(1, 4)]
    parsed = csv_import.parse(io.StringIO("\n".join(lines) + "\n"), max_rows=3)
    assert "too_many_rows" not in {e.code for e in parsed.errors}
    assert {e.line for e in parsed.errors} == {2, 3, 4}


def test_parse_turns_cells_into_validated_rows() -> None:
    lines = [HEADER + ",pdf_path", row(1, "D-1", " 12.50 ", " EUR ") + ","]
    parsed = csv_import.parse(io.StringIO("\n".join(lines)))
    assert parsed.errors == []
    assert parsed.lines == [2]
    (item,) = parsed.rows
    assert (item.amount_minor, item.currency, item.pdf) == (1250, "EUR", None)
