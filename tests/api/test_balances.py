"""Payments and credit notes through the API, and the balances a debtor and an invoice show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.db import Database
from core.ports import FixedClock
from tests.api.helpers import (
    API,
    assert_problem,
    booked,
    counts,
    currency,
    get_debtor,
    get_invoice,
    invoice_balance,
    invoice_json,
    put_debtor,
    submit,
)


@pytest.fixture
async def debtor(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    await put_debtor(client, auth, "ACME")
    return "ACME"


async def pay(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> Any:
    r = await client.post(f"{API}/payments", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


async def credit(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> Any:
    r = await client.post(f"{API}/credit-notes", json={"reason": "goodwill", **body}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


async def test_partial_payment_lowers_open_and_overdue(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    late = invoice_json(debtor, amount="100.00", due_date="2026-10-31")
    later = invoice_json(debtor, amount="50.00", due_date="2026-12-31")
    await booked(client, auth, late, later)

    payment = await pay(
        client,
        auth,
        debtor_external_id=debtor,
        invoice_external_id=late["external_id"],
        amount="30.00",
        currency="EUR",
    )
    assert payment["amount"] == eur("30.00")
    assert payment["received_on"] == "2026-11-24"
    assert payment["method"] == "bank_transfer"
    assert payment["allocations"] == [{"invoice_external_id": late["external_id"], "amount": eur("30.00")}]

    d = await get_debtor(client, auth, debtor)
    totals = currency(d, "EUR")
    assert totals["open"] == eur("120.00")
    assert totals["overdue"] == eur("70.00")
    assert totals["credit"] == eur("0.00")
    first = invoice_balance(d, late["external_id"])
    assert (first["open"], first["overdue"], first["days_overdue"], first["status"]) == (
        eur("70.00"),
        True,
        24,
        "approved",
    )
    second = invoice_balance(d, later["external_id"])
    assert (second["open"], second["overdue"], second["days_overdue"]) == (eur("50.00"), False, 0)
    assert (await get_invoice(client, auth, late["external_id"]))["open"] == eur("70.00")


async def test_a_payment_without_an_invoice_goes_to_the_oldest_due_first(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    middle = invoice_json(debtor, due_date="2026-11-15")
    oldest = invoice_json(debtor, due_date="2026-10-15")
    newest = invoice_json(debtor, due_date="2026-12-15")
    await booked(client, auth, middle, oldest, newest)

    payment = await pay(client, auth, debtor_external_id=debtor, amount="150.00", currency="EUR")
    assert payment["allocations"] == [
        {"invoice_external_id": oldest["external_id"], "amount": eur("100.00")},
        {"invoice_external_id": middle["external_id"], "amount": eur("50.00")},
    ]
    d = await get_debtor(client, auth, debtor)
    assert invoice_balance(d, oldest["external_id"])["status"] == "paid"
    assert invoice_balance(d, oldest["external_id"])["open"] == eur("0.00")
    assert invoice_balance(d, middle["external_id"])["open"] == eur("50.00")
    assert invoice_balance(d, newest["external_id"])["open"] == eur("100.00")
    assert currency(d, "EUR")["open"] == eur("150.00")
    assert currency(d, "EUR")["overdue"] == eur("50.00")


async def test_an_overpayment_becomes_credit(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    row = invoice_json(debtor, amount="100.00")
    await booked(client, auth, row)
    payment = await pay(client, auth, debtor_external_id=debtor, amount="130.00", currency="EUR")
    assert payment["allocations"] == [
        {"invoice_external_id": row["external_id"], "amount": eur("100.00")},
        {"invoice_external_id": None, "amount": eur("30.00")},
    ]
    d = await get_debtor(client, auth, debtor)
    totals = currency(d, "EUR")
    assert totals["credit"] == eur("30.00")
    assert totals["overdue"] == eur("0.00")
    assert invoice_balance(d, row["external_id"])["status"] == "paid"
    inv = await get_invoice(client, auth, row["external_id"])
    assert (inv["status"], inv["open"], inv["overdue"]) == ("paid", eur("0.00"), False)


async def test_credit_on_account_pays_the_next_invoices_oldest_due_first(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    first = invoice_json(debtor, amount="100.00")
    await booked(client, auth, first)
    await pay(client, auth, debtor_external_id=debtor, amount="150.00", currency="EUR")  # 50.00 on account

    older = invoice_json(debtor, amount="30.00", due_date="2026-11-01")
    newer = invoice_json(debtor, amount="40.00", due_date="2026-11-10")
    usd = invoice_json(debtor, amount="10.00", currency="USD")
    await booked(client, auth, newer, older, usd)

    d = await get_debtor(client, auth, debtor)
    assert invoice_balance(d, older["external_id"])["status"] == "paid"
    assert invoice_balance(d, newer["external_id"])["open"] == eur("20.00")
    assert currency(d, "EUR")["credit"] == eur("0.00")
    assert currency(d, "EUR")["open"] == eur("20.00")
    assert currency(d, "EUR")["overdue"] == eur("20.00")  # the clock stands at 24 Nov
    assert currency(d, "USD")["open"] == {"amount": "10.00", "currency": "USD"}  # EUR credit never pays USD
    trail = await client.get(
        f"{API}/audit", params={"entity": "invoice", "id": older["external_id"]}, headers=auth
    )
    assert [e["action"] for e in trail.json()["events"]][:2] == ["invoice.paid", "credit.applied"]


async def test_an_invoice_paid_in_full_is_paid(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    row = invoice_json(debtor, amount="99.99")
    await booked(client, auth, row)
    ext = row["external_id"]
    await pay(
        client, auth, debtor_external_id=debtor, invoice_external_id=ext, amount="49.99", currency="EUR"
    )
    assert (await get_invoice(client, auth, ext))["status"] == "approved"
    await pay(
        client, auth, debtor_external_id=debtor, invoice_external_id=ext, amount="50.00", currency="EUR"
    )
    inv = await get_invoice(client, auth, ext)
    assert inv["status"] == "paid"
    assert inv["open"] == eur("0.00")
    assert [e["amount"]["amount"] for e in inv["ledger"]] == ["99.99", "-49.99", "-50.00"]
    assert currency(await get_debtor(client, auth, debtor), "EUR")["open"] == eur("0.00")


async def test_credit_notes_lower_the_open_amount_and_can_settle_it(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    row = invoice_json(debtor, amount="100.00", number="F-1001")
    await booked(client, auth, row)
    ext = row["external_id"]
    note = await credit(
        client, auth, invoice_external_id=ext, amount="40.00", currency="EUR", reason="damaged"
    )
    assert note["number"] == "CN-F-1001-1"
    assert note["amount"] == eur("40.00")
    assert note["issued_on"] == "2026-11-24"
    assert (await get_invoice(client, auth, ext))["open"] == eur("60.00")
    assert currency(await get_debtor(client, auth, debtor), "EUR")["overdue"] == eur("60.00")

    await credit(client, auth, invoice_external_id=ext, amount="60.00", currency="EUR", number="CN-OWN-7")
    inv = await get_invoice(client, auth, ext)
    assert (inv["status"], inv["open"]) == ("paid", eur("0.00"))
    assert [e["kind"] for e in inv["ledger"]] == ["invoice", "credit_note", "credit_note"]


async def test_a_credit_note_larger_than_the_open_amount_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    row = invoice_json(debtor, amount="100.00")
    await booked(client, auth, row)
    await pay(
        client,
        auth,
        debtor_external_id=debtor,
        invoice_external_id=row["external_id"],
        amount="30.00",
        currency="EUR",
    )
    before = await counts(db)
    r = await client.post(
        f"{API}/credit-notes",
        json={"invoice_external_id": row["external_id"], "amount": "70.01", "currency": "EUR", "reason": "x"},
        headers=auth,
    )
    body = assert_problem(r, 422, "amount")
    assert "70.00" in str(body["errors"])
    assert await counts(db) == before
    assert (await get_invoice(client, auth, row["external_id"]))["open"] == eur("70.00")


async def test_a_credit_note_number_is_used_once(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    row = invoice_json(debtor, amount="100.00")
    await booked(client, auth, row)
    await credit(
        client, auth, invoice_external_id=row["external_id"], amount="1.00", currency="EUR", number="CN-9"
    )
    before = await counts(db)
    r = await client.post(
        f"{API}/credit-notes",
        json={
            "invoice_external_id": row["external_id"],
            "amount": "1.00",
            "currency": "EUR",
            "reason": "again",
            "number": "CN-9",
        },
        headers=auth,
    )
    assert_problem(r, 409, "number")
    assert await counts(db) == before


async def test_two_currencies_never_mix(client: httpx.AsyncClient, auth: dict[str, str], debtor: str) -> None:
    in_eur = invoice_json(debtor, amount="100.00", currency="EUR")
    in_usd = invoice_json(debtor, amount="250.00", currency="USD")
    await booked(client, auth, in_eur, in_usd)

    payment = await pay(client, auth, debtor_external_id=debtor, amount="300.00", currency="USD")
    assert payment["allocations"] == [
        {"invoice_external_id": in_usd["external_id"], "amount": {"amount": "250.00", "currency": "USD"}},
        {"invoice_external_id": None, "amount": {"amount": "50.00", "currency": "USD"}},
    ]
    d = await get_debtor(client, auth, debtor)
    assert [c["currency"] for c in d["balance"]["currencies"]] == ["EUR", "USD"]
    assert currency(d, "EUR")["open"] == eur("100.00")
    assert currency(d, "EUR")["overdue"] == eur("100.00")
    assert currency(d, "EUR")["credit"] == eur("0.00")
    usd = currency(d, "USD")
    assert usd["overdue"] == {"amount": "0.00", "currency": "USD"}
    assert usd["credit"] == {"amount": "50.00", "currency": "USD"}
    for c in d["balance"]["currencies"]:
        for field in ("open", "overdue", "fees_and_interest", "promised", "in_plan", "credit"):
            assert c[field]["currency"] == c["currency"]
    assert invoice_balance(d, in_eur["external_id"])["status"] == "approved"


async def test_a_payment_in_another_currency_than_the_invoice_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    row = invoice_json(debtor, amount="100.00", currency="EUR")
    await booked(client, auth, row)
    before = await counts(db)
    r = await client.post(
        f"{API}/payments",
        json={
            "debtor_external_id": debtor,
            "invoice_external_id": row["external_id"],
            "amount": "100.00",
            "currency": "USD",
        },
        headers=auth,
    )
    body = assert_problem(r, 422, "currency")
    assert "EUR" in str(body["errors"])
    r = await client.post(
        f"{API}/credit-notes",
        json={"invoice_external_id": row["external_id"], "amount": "1.00", "currency": "USD", "reason": "x"},
        headers=auth,
    )
    assert_problem(r, 422, "currency")
    assert await counts(db) == before
    assert (await get_invoice(client, auth, row["external_id"]))["open"] == eur("100.00")


async def test_pending_and_foreign_invoices_take_no_money(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    pending = invoice_json(debtor)
    await submit(client, auth, [pending])
    await put_debtor(client, auth, "OTHER")
    foreign = invoice_json("OTHER")
    await booked(client, auth, foreign)
    before = await counts(db)
    for ext in (pending["external_id"], foreign["external_id"]):
        r = await client.post(
            f"{API}/payments",
            json={
                "debtor_external_id": debtor,
                "invoice_external_id": ext,
                "amount": "1.00",
                "currency": "EUR",
            },
            headers=auth,
        )
        assert_problem(r, 422, "invoice_external_id")
    r = await client.post(
        f"{API}/credit-notes",
        json={
            "invoice_external_id": pending["external_id"],
            "amount": "1.00",
            "currency": "EUR",
            "reason": "x",
        },
        headers=auth,
    )
    assert_problem(r, 422, "invoice_external_id")
    assert await counts(db) == before


async def test_overdue_follows_the_clock(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FixedClock, debtor: str
) -> None:
    due_today = invoice_json(debtor, amount="10.00", due_date="2026-11-24")
    due_yesterday = invoice_json(debtor, amount="20.00", due_date="2026-11-23")
    await booked(client, auth, due_today, due_yesterday)

    d = await get_debtor(client, auth, debtor)
    assert invoice_balance(d, due_today["external_id"])["overdue"] is False
    assert invoice_balance(d, due_yesterday["external_id"])["days_overdue"] == 1
    assert currency(d, "EUR")["overdue"] == eur("20.00")

    clock.current += timedelta(days=1)
    d = await get_debtor(client, auth, debtor)
    assert invoice_balance(d, due_today["external_id"])["days_overdue"] == 1
    assert invoice_balance(d, due_yesterday["external_id"])["days_overdue"] == 2
    assert currency(d, "EUR")["overdue"] == eur("30.00")
    inv = await get_invoice(client, auth, due_today["external_id"])
    assert (inv["overdue"], inv["days_overdue"]) == (True, 1)


async def test_amounts_keep_the_currency_precision(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    yen = invoice_json(debtor, amount="1000", currency="JPY")
    dinar = invoice_json(debtor, amount="1.250", currency="KWD")
    await booked(client, auth, yen, dinar)
    await pay(client, auth, debtor_external_id=debtor, amount="250", currency="JPY")
    await pay(client, auth, debtor_external_id=debtor, amount="0.005", currency="KWD")
    d = await get_debtor(client, auth, debtor)
    assert currency(d, "JPY")["open"] == {"amount": "750", "currency": "JPY"}
    assert currency(d, "KWD")["open"] == {"amount": "1.245", "currency": "KWD"}
