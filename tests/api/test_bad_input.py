"""Bad input gets a 4xx application/problem+json naming the field, and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.db import Database
from tests.api.helpers import API, assert_problem, counts, invoice_json, put_debtor, submit

BATCHES = f"{API}/invoice-batches"


@pytest.fixture
async def debtor(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    await put_debtor(client, auth, "ACME", email="ap@acme.example")
    return "ACME"


@pytest.mark.parametrize(
    ("override", "field", "code"),
    [
        ({"currency": "EUX"}, "invoices.0.currency", "unknown_currency"),
        ({"currency": "eur"}, "invoices.0.currency", "unknown_currency"),
        ({"amount": "-1.00"}, "invoices.0.amount", "negative"),
        ({"amount": "0.00"}, "invoices.0.amount", "zero"),
        ({"amount": "1.001"}, "invoices.0.amount", "too_many_decimals"),
        ({"amount": "1.5", "currency": "JPY"}, "invoices.0.amount", "too_many_decimals"),
        ({"amount": 12.5}, "invoices.0.amount", "not_a_string"),
        ({"amount": 12}, "invoices.0.amount", "not_a_string"),
        ({"amount": "1e3"}, "invoices.0.amount", "malformed"),
        ({"amount": "NaN"}, "invoices.0.amount", "malformed"),
        ({"amount": "twelve"}, "invoices.0.amount", "malformed"),
        ({"amount": "10000000000000.00"}, "invoices.0.amount", "too_large"),
        ({"due_date": "2026-09-30"}, "invoices.0.due_date", "date_order"),
        ({"issue_date": "2026-02-30"}, "invoices.0.issue_date", None),
        ({"external_id": "has space"}, "invoices.0.external_id", None),
        ({"number": ""}, "invoices.0.number", None),
        ({"pdf_base64": "not base64!"}, "invoices.0.pdf_base64", "invalid_base64"),
        ({"pdf_base64": "aGVsbG8="}, "invoices.0.pdf_base64", "not_a_pdf"),
        ({"colour": "red"}, "invoices.0.colour", None),
    ],
)
async def test_bad_invoice_field_is_refused_and_nothing_is_imported(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: Database,
    debtor: str,
    override: dict[str, Any],
    field: str,
    code: str | None,
) -> None:
    before = await counts(db)
    r = await client.post(BATCHES, json={"invoices": [invoice_json(debtor, **override)]}, headers=auth)
    body = assert_problem(r, 422, field)
    if code is not None:
        assert code in [e["code"] for e in body["errors"] if e["field"] == field]
    assert await counts(db) == before


async def test_one_bad_invoice_refuses_the_whole_batch(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    good = invoice_json(debtor)
    before = await counts(db)
    r = await client.post(
        BATCHES, json={"invoices": [good, invoice_json(debtor, amount="-5.00")]}, headers=auth
    )
    body = assert_problem(r, 422, "invoices.1.amount")
    assert [e["field"] for e in body["errors"]] == ["invoices.1.amount"]
    assert await counts(db) == before
    assert (await client.get(f"{API}/invoices/{good['external_id']}", headers=auth)).status_code == 404


async def test_unknown_debtor_is_named_per_invoice(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    before = await counts(db)
    r = await client.post(
        BATCHES,
        json={"invoices": [invoice_json(debtor), invoice_json("NOBODY")]},
        headers=auth,
    )
    body = assert_problem(r, 422, "invoices.1.debtor_external_id")
    assert "NOBODY" in str(body["errors"])
    assert await counts(db) == before


async def test_invoice_number_taken_by_another_invoice_is_a_conflict(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    first = invoice_json(debtor)
    await submit(client, auth, [first])
    before = await counts(db)
    clash = invoice_json(debtor, number=first["number"])
    r = await client.post(BATCHES, json={"invoices": [clash]}, headers=auth)
    body = assert_problem(r, 409, "invoices.0.number")
    assert first["external_id"] in str(body["errors"])
    assert await counts(db) == before
    assert (await client.get(f"{API}/invoices/{clash['external_id']}", headers=auth)).status_code == 404


async def test_the_same_external_id_with_other_facts_is_a_conflict(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    first = invoice_json(debtor)
    await submit(client, auth, [first])
    before = await counts(db)
    r = await client.post(BATCHES, json={"invoices": [{**first, "amount": "999.00"}]}, headers=auth)
    assert_problem(r, 409, "invoices.0.external_id")
    assert await counts(db) == before


async def test_duplicates_inside_one_batch_are_refused(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    a = invoice_json(debtor)
    before = await counts(db)
    r = await client.post(BATCHES, json={"invoices": [a, {**a, "number": "OTHER-1"}]}, headers=auth)
    assert_problem(r, 422, "invoices.1.external_id")
    assert await counts(db) == before


async def test_empty_batch_is_refused(client: httpx.AsyncClient, auth: dict[str, str], db: Database) -> None:
    before = await counts(db)
    assert_problem(await client.post(BATCHES, json={"invoices": []}, headers=auth), 422, "invoices")
    assert await counts(db) == before


async def test_batch_over_the_limit_is_refused_and_the_limit_itself_is_accepted(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    rows = [invoice_json(debtor) for _ in range(51)]
    before = await counts(db)
    r = await client.post(BATCHES, json={"invoices": rows}, headers=auth)
    body = assert_problem(r, 422, "invoices")
    assert "50" in body["detail"]
    assert await counts(db) == before

    accepted = await submit(client, auth, rows[:50])
    assert accepted["count"] == 50
    assert accepted["total"] == {"amount": "5000.00", "currency": "EUR"}


@pytest.mark.parametrize(
    "content",
    [b'{"invoices": [', b"{'invoices': []}", b'{"invoices": []} trailing', b"\xff\xfe"],
    ids=["truncated", "single-quotes", "trailing-garbage", "not-utf8"],
)
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, content: bytes
) -> None:
    before = await counts(db)
    r = await client.post(BATCHES, content=content, headers={**auth, "Content-Type": "application/json"})
    body = assert_problem(r, 400)
    assert body["title"] == "Malformed JSON"
    assert await counts(db) == before


async def test_missing_body_is_422(client: httpx.AsyncClient, auth: dict[str, str], db: Database) -> None:
    before = await counts(db)
    r = await client.post(BATCHES, headers={**auth, "Content-Type": "application/json"})
    assert_problem(r, 422, "body")
    assert await counts(db) == before


@pytest.mark.parametrize("body", [[], None, "x", {"invoices": "all"}, {"invoices": [1]}, {}])
async def test_wrong_json_shapes_are_422_not_500(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, body: Any
) -> None:
    before = await counts(db)
    r = await client.post(BATCHES, json=body, headers=auth)
    assert_problem(r, 422)
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", BATCHES), ("PUT", f"{API}/debtors/ACME"), ("POST", f"{API}/payments")],
)
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, method: str, path: str
) -> None:
    before = await counts(db)
    r = await client.request(
        method, path, content=b'{"invoices": []}', headers={**auth, "Content-Type": "text/plain"}
    )
    body = assert_problem(r, 415)
    assert "text/plain" in body["detail"]
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+31 6 1"}, "phone"),
        ({"locale": "xx"}, "locale"),
        ({"locale": "de"}, "locale"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"segment": "Has Spaces"}, "segment"),
        ({"name": "   "}, "name"),
        ({"channel_order": ["email", "email"]}, "channel_order"),
        ({"channel_order": ["pigeon"]}, "channel_order.0"),
        ({"address": {"country": "Netherlands"}}, "address.country"),
    ],
)
async def test_bad_debtor_field_creates_no_debtor(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, fields: dict[str, Any], field: str
) -> None:
    before = await counts(db)
    r = await client.put(f"{API}/debtors/NEW-1", json={"name": "New BV", **fields}, headers=auth)
    assert_problem(r, 422, field)
    assert await counts(db) == before
    assert_problem(await client.get(f"{API}/debtors/NEW-1", headers=auth), 404)


async def test_bad_update_leaves_the_debtor_as_it_was(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    original = (await client.get(f"{API}/debtors/{debtor}", headers=auth)).json()
    before = await counts(db)
    r = await client.put(
        f"{API}/debtors/{debtor}",
        json={"name": "Renamed", "email": "new@acme.example", "timezone": "Mars/Base"},
        headers=auth,
    )
    assert_problem(r, 422, "timezone")
    assert await counts(db) == before
    assert (await client.get(f"{API}/debtors/{debtor}", headers=auth)).json() == original


async def test_bad_debtor_id_in_the_path_is_422(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    before = await counts(db)
    r = await client.put(f"{API}/debtors/a b", json={"name": "X"}, headers=auth)
    assert_problem(r, 422, "external_id")
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"amount": 12.5}, "amount"),
        ({"amount": "-3.00"}, "amount"),
        ({"currency": "EUX"}, "currency"),
        ({"method": "barter"}, "method"),
        ({"debtor_external_id": "NOBODY"}, "debtor_external_id"),
        ({"invoice_external_id": "NO-SUCH-INVOICE"}, "invoice_external_id"),
    ],
)
async def test_bad_payment_is_refused_and_records_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: Database,
    debtor: str,
    override: dict[str, Any],
    field: str,
) -> None:
    before = await counts(db)
    body = {"debtor_external_id": debtor, "amount": "10.00", "currency": "EUR", **override}
    assert_problem(await client.post(f"{API}/payments", json=body, headers=auth), 422, field)
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"invoice_external_id": "NO-SUCH-INVOICE"}, "invoice_external_id"),
        ({"reason": ""}, "reason"),
        ({"amount": "1.001"}, "amount"),
    ],
)
async def test_bad_credit_note_is_refused_and_records_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, override: dict[str, Any], field: str
) -> None:
    before = await counts(db)
    body = {
        "invoice_external_id": "INV-1",
        "amount": "10.00",
        "currency": "EUR",
        "reason": "goodwill",
        **override,
    }
    assert_problem(await client.post(f"{API}/credit-notes", json=body, headers=auth), 422, field)
    assert await counts(db) == before


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "tab\there"])
async def test_bad_idempotency_key_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str, key: str
) -> None:
    before = await counts(db)
    r = await client.post(
        BATCHES, json={"invoices": [invoice_json(debtor)]}, headers={**auth, "Idempotency-Key": key}
    )
    assert_problem(r, 422, "header.Idempotency-Key")
    assert await counts(db) == before


async def test_unknown_batch_and_malformed_batch_id(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    missing = "01234567-89ab-7def-8123-456789abcdef"
    assert_problem(await client.get(f"{BATCHES}/{missing}", headers=auth), 404)
    assert_problem(await client.post(f"{BATCHES}/{missing}/approve", headers=auth), 404)
    assert_problem(await client.post(f"{BATCHES}/not-a-uuid/approve", headers=auth), 422, "batch_id")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", f"{API}/debtors/ACME", {"name": "Acme\x00BV"}, "name"),
        ("PUT", f"{API}/debtors/ACME", {"name": "Acme", "address": {"city": "Delft\x00"}}, "address.city"),
        (
            "POST",
            BATCHES,
            {"invoices": [invoice_json("ACME", description="a\x00b")]},
            "invoices.0.description",
        ),
        ("POST", f"{API}/debtors/ACME/pause", {"reason": "\x00"}, "reason"),
        (
            "POST",
            f"{API}/payments",
            {"debtor_external_id": "ACME", "amount": "1.00", "currency": "EUR", "reference": "x\x00"},
            "reference",
        ),
    ],
)
async def test_nul_characters_are_bad_input_not_a_crash(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: Database,
    debtor: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    before = await counts(db)
    assert_problem(await client.request(method, path, json=body, headers=auth), 422, field)
    assert await counts(db) == before
    assert (await client.get(f"{API}/debtors/{debtor}", headers=auth)).json()["name"] == "Debtor ACME"


async def test_nul_in_a_query_is_bad_input(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.get(f"{API}/audit", params={"entity": "debtor", "id": "A\x00"}, headers=auth)
    assert_problem(r, 422, "id")


async def test_a_backslash_u_in_text_is_kept(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    name = "Acme \\u0000 BV"  # a literal backslash, not a NUL character
    r = await client.put(f"{API}/debtors/{debtor}", json={"name": name}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name
