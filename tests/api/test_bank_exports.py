"""Exports: the payments MT940 parses back with the independent mt-940 package; the mutation CSV per invoice."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import mt940
import pytest

from api.deps import Services
from api.main import create_app
from core.db import Database
from tests import bank_scenario as sc
from tests.api.helpers import API, assert_problem

CREDITOR_IBAN = "NL91 ABNA 0417 1643 00"


@pytest.fixture
async def finance(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose settings name the creditor's account, as the MT940 export needs."""
    settings = services.settings.model_copy(update={"creditor_iban": CREDITOR_IBAN})
    app = create_app(services=Services(settings, services.db, services.redis, services.clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://duebot.test") as c:
        yield c


async def imported(client: httpx.AsyncClient, auth: dict[str, str], db: Database) -> None:
    await sc.build(db)
    for path in (sc.CAMT_DAY1, sc.MT940_DAY2):
        r = await client.post(
            f"{API}/bank-statements", files={"file": (path.name, sc.read(path))}, headers=auth
        )
        assert r.status_code == 201, r.text


def parse_mt940(text: str) -> mt940.models.Transactions:
    statement = mt940.models.Transactions()
    statement.parse(text)
    return statement


async def test_the_payments_mt940_round_trips_through_the_mt940_package(
    finance: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await imported(finance, auth, db)
    # A payment recorded by hand, in another currency, gets a statement of its own.
    r = await finance.post(
        f"{API}/payments",
        json={
            "debtor_external_id": "ACME",
            "currency": "USD",
            "amount": "40.00",
            "received_on": "2026-11-24",
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text

    r = await finance.get(
        f"{API}/exports/payments.mt940",
        params={"from": "2026-11-01", "to": "2026-11-30", "currency": "EUR"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    statement = parse_mt940(r.text)
    assert statement.data["account_identification"] == "NL91ABNA0417164300"
    assert statement.data["final_opening_balance"].amount.amount == Decimal("0.00")
    amounts = sorted(t.data["amount"].amount for t in statement)
    assert amounts == [Decimal(a) for a in ("60.00", "75.50", "100.00", "250.00", "300.00")]
    closing = statement.data["final_closing_balance"].amount
    assert (closing.amount, closing.currency) == (sum(amounts), "EUR")
    assert all(t.data["status"] == "C" for t in statement)

    details = {t.data["amount"].amount: t.data["transaction_details"].replace("\n", "") for t in statement}
    assert "/EREF/RF18539007547034" in details[Decimal("100.00")]
    assert "/REMI/2026-0101" in details[Decimal("100.00")]
    assert "/IBAN/NL20INGB0001234567" in details[Decimal("100.00")]
    grouped = details[Decimal("300.00")]
    assert "RF31100000000000043" in grouped and "/REMI/2026-0201,2026-0202/" in grouped
    assert "/NAME/Muller" in details[Decimal("250.00")]  # accents dropped for the SWIFT character set

    r = await finance.get(
        f"{API}/exports/payments.mt940", params={"from": "2026-11-01", "to": "2026-11-30"}, headers=auth
    )
    blocks = [b for b in r.text.split("\r\n-\r\n") if b.strip()]
    assert len(blocks) == 2  # EUR and USD
    usd = parse_mt940(blocks[1])
    assert [t.data["amount"].amount for t in usd] == [Decimal("40.00")]
    assert usd.data["final_closing_balance"].amount.currency == "USD"


async def test_an_empty_range_is_a_valid_empty_statement(
    finance: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    r = await finance.get(
        f"{API}/exports/payments.mt940", params={"from": "2020-01-01", "to": "2020-01-31"}, headers=auth
    )
    assert r.status_code == 200
    statement = parse_mt940(r.text)
    assert len(statement) == 0
    assert statement.data["final_closing_balance"].amount.amount == Decimal("0.00")


async def test_export_input_is_checked_before_anything_streams(
    finance: httpx.AsyncClient, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    url = f"{API}/exports/payments.mt940"
    assert_problem(
        await finance.get(url, params={"from": "2026-12-01", "to": "2026-11-01"}, headers=auth), 422
    )
    assert_problem(await finance.get(url, params={"from": "2026-11-01"}, headers=auth), 422, "to")
    # Without CREDITOR_IBAN there is no account to name.
    assert_problem(
        await client.get(url, params={"from": "2026-11-01", "to": "2026-11-30"}, headers=auth), 422
    )
    csv_url = f"{API}/exports/mutations.csv"
    assert_problem(await finance.get(csv_url, headers=auth), 422, "from")
    assert_problem(await finance.get(csv_url, params={"invoice": "NOPE"}, headers=auth), 404)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_mutation_csv_lists_everything_posted_on_an_invoice(
    finance: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await imported(finance, auth, db)
    r = await finance.post(
        f"{API}/credit-notes",
        json={"invoice_external_id": "B1", "currency": "EUR", "amount": "10.00", "reason": "late delivery"},
        headers=auth,
    )
    assert r.status_code == 201, r.text

    r = await finance.get(f"{API}/exports/mutations.csv", params={"invoice": "J1"}, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = rows_of(r.text)
    assert [(x["kind"], x["amount"], x["currency"]) for x in rows] == [
        ("invoice", "100.00", "EUR"),
        ("payment", "-100.00", "EUR"),
    ]
    assert rows[1]["reference"] == "ABNA2611230001" and rows[1]["effective_date"] == "2026-11-23"
    assert {x["invoice_number"] for x in rows} == {"2026-0101"}

    r = await finance.get(f"{API}/exports/mutations.csv", params={"invoice": "B1"}, headers=auth)
    b1 = rows_of(r.text)
    assert [(x["kind"], x["amount"], x["reference"]) for x in b1][1] == (
        "credit_note",
        "-10.00",
        b1[1]["credit_note"],
    )
    assert b1[1]["credit_note"]

    r = await finance.get(
        f"{API}/exports/mutations.csv", params={"from": "2026-11-23", "to": "2026-11-24"}, headers=auth
    )
    ranged = rows_of(r.text)
    payments = [x for x in ranged if x["kind"] == "payment"]
    # Groep's 300.00 is split over its two invoices, oldest first.
    assert sorted(
        (x["invoice_external_id"], x["amount"]) for x in payments if x["debtor_external_id"] == "GROEP"
    ) == [
        ("G1", "-100.00"),
        ("G2", "-200.00"),
    ]
    assert sum(Decimal(x["amount"]) for x in payments) == Decimal("-785.50")
    invoices_in_order = [x["invoice_external_id"] for x in ranged]
    assert invoices_in_order == sorted(invoices_in_order, key=invoices_in_order.index)  # grouped per invoice
