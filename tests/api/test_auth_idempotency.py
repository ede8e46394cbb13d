"""API keys and scopes; Idempotency-Key replays, conflicts and what is never stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from core.access import service as access
from core.access.service import SCOPES
from core.db import Database
from tests import factories
from tests.api.helpers import (
    API,
    assert_problem,
    bearer,
    booked,
    counts,
    currency,
    get_debtor,
    invoice_json,
    put_debtor,
    submit,
)

BATCHES = f"{API}/invoice-batches"


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{API}/debtors/ACME"), ("POST", BATCHES), ("GET", f"{API}/audit")],
)
async def test_no_key_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, db: Database, method: str, path: str
) -> None:
    before = await counts(db)
    r = await client.request(method, path, json={"invoices": []} if method == "POST" else None)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    assert await counts(db) == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer dbk_000000000000_nope",
        "Bearer not-a-duebot-key",
        "dbk_000000000000_nope",
    ],
)
async def test_unknown_or_malformed_key_is_401(client: httpx.AsyncClient, authorization: str) -> None:
    r = await client.get(f"{API}/debtors/ACME", headers={"Authorization": authorization})
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


async def test_a_key_with_a_wrong_secret_is_401(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    token = auth["Authorization"].removeprefix("Bearer ")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_problem(await client.get(f"{API}/invoice-batches", headers=bearer(forged)), 401)


async def test_a_revoked_key_stops_working(client: httpx.AsyncClient, db: Database) -> None:
    token = await factories.api_key(db, scopes=["*"])
    assert (await client.get(f"{API}/invoice-batches", headers=bearer(token))).status_code == 200
    async with db.session_scope() as s:
        assert await access.revoke(s, token.split("_")[1], factories.TEST_ACTOR)
    r = await client.get(f"{API}/invoice-batches", headers=bearer(token))
    body = assert_problem(r, 401)
    assert "revoked" in body["detail"]


ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("debtors:write", "PUT", f"{API}/debtors/ACME", {"name": "Acme"}),
    ("debtors:write", "POST", f"{API}/debtors/ACME/pause", {"reason": "dispute"}),
    ("debtors:write", "POST", f"{API}/debtors/ACME/resume", None),
    ("debtors:read", "GET", f"{API}/debtors/ACME", None),
    ("invoices:write", "POST", BATCHES, {"invoices": [invoice_json("ACME")]}),
    ("invoices:read", "GET", BATCHES, None),
    ("invoices:read", "GET", f"{API}/invoices/INV-1", None),
    ("invoices:approve", "POST", f"{BATCHES}/01234567-89ab-7def-8123-456789abcdef/approve", None),
    ("invoices:approve", "POST", f"{BATCHES}/01234567-89ab-7def-8123-456789abcdef/reject", None),
    (
        "payments:write",
        "POST",
        f"{API}/payments",
        {"debtor_external_id": "ACME", "amount": "1.00", "currency": "EUR"},
    ),
    (
        "payments:write",
        "POST",
        f"{API}/credit-notes",
        {"invoice_external_id": "INV-1", "amount": "1.00", "currency": "EUR", "reason": "x"},
    ),
    ("audit:read", "GET", f"{API}/audit", None),
]


@pytest.mark.parametrize(("scope", "method", "path", "body"), ENDPOINTS)
async def test_every_endpoint_needs_its_scope(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: Database,
    scope: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await put_debtor(client, auth, "ACME")
    others = await factories.api_key(db, scopes=[s for s in SCOPES if s != scope])
    before = await counts(db)
    r = await client.request(method, path, json=body, headers=bearer(others))
    problem = assert_problem(r, 403)
    assert scope in problem["detail"]
    assert await counts(db) == before

    only = await factories.api_key(db, scopes=[scope])
    r = await client.request(method, path, json=body, headers=bearer(only))
    assert r.status_code not in (401, 403), r.text


# --------------------------------------------------------------------------- Idempotency-Key


@pytest.fixture
async def debtor(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    await put_debtor(client, auth, "ACME")
    return "ACME"


async def _batches(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get(BATCHES, headers=auth)
    assert r.status_code == 200
    batches: list[dict[str, Any]] = r.json()["batches"]
    return batches


async def test_same_key_and_body_replays_the_first_answer(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    body = {"invoices": [invoice_json(debtor), invoice_json(debtor)]}
    headers = {**auth, "Idempotency-Key": "batch-2026-11-24"}
    first = await client.post(BATCHES, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = await counts(db)

    # The same JSON with its keys in another order and other whitespace is the same request.
    again = await client.post(
        BATCHES,
        content=json.dumps(body, sort_keys=True, indent=2),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await counts(db) == after_first
    assert [b["id"] for b in await _batches(client, auth)] == [first.json()["id"]]


async def test_same_key_with_another_body_is_409_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    headers = {**auth, "Idempotency-Key": "k-1"}
    first = await client.post(BATCHES, json={"invoices": [invoice_json(debtor)]}, headers=headers)
    assert first.status_code == 201
    before = await counts(db)
    other = invoice_json(debtor)
    r = await client.post(BATCHES, json={"invoices": [other]}, headers=headers)
    assert_problem(r, 409)
    assert await counts(db) == before
    assert_problem(await client.get(f"{API}/invoices/{other['external_id']}", headers=auth), 404)


async def test_same_key_on_another_endpoint_is_409(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    headers = {**auth, "Idempotency-Key": "shared"}
    r = await client.post(f"{API}/debtors/{debtor}/pause", json={"reason": "call"}, headers=headers)
    assert r.status_code == 200
    before = await counts(db)
    r = await client.post(f"{API}/debtors/{debtor}/resume", headers=headers)
    assert_problem(r, 409)
    assert await counts(db) == before
    assert (await get_debtor(client, auth, debtor))["dunning"]["paused"] is True


async def test_payment_replay_books_the_money_once(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    await booked(client, auth, invoice_json(debtor, amount="100.00"))
    payment = {"debtor_external_id": debtor, "amount": "40.00", "currency": "EUR"}
    headers = {**auth, "Idempotency-Key": "pay-1"}
    first = await client.post(f"{API}/payments", json=payment, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(f"{API}/payments", json=payment, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert currency(await get_debtor(client, auth, debtor), "EUR")["open"]["amount"] == "60.00"


async def test_the_same_key_from_another_api_key_is_independent(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    await booked(client, auth, invoice_json(debtor, amount="100.00"))
    other = bearer(await factories.api_key(db, scopes=["payments:write"], name="bank-sync"))
    payment = {"debtor_external_id": debtor, "amount": "10.00", "currency": "EUR"}
    a = await client.post(f"{API}/payments", json=payment, headers={**auth, "Idempotency-Key": "same"})
    b = await client.post(f"{API}/payments", json=payment, headers={**other, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert currency(await get_debtor(client, auth, debtor), "EUR")["open"]["amount"] == "80.00"


async def test_a_request_refused_by_validation_is_not_remembered(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    headers = {**auth, "Idempotency-Key": "retry-me"}
    bad = invoice_json(debtor, amount="12.345")
    assert_problem(await client.post(BATCHES, json={"invoices": [bad]}, headers=headers), 422)
    fixed = {**bad, "amount": "12.35"}
    r = await client.post(BATCHES, json={"invoices": [fixed]}, headers=headers)
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    assert r.json()["total"] == {"amount": "12.35", "currency": "EUR"}


async def test_a_request_refused_by_the_domain_is_not_remembered(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    headers = {**auth, "Idempotency-Key": "before-the-debtor"}
    body = {"invoices": [invoice_json("LATE")]}
    before = await counts(db)
    assert_problem(
        await client.post(BATCHES, json=body, headers=headers), 422, "invoices.0.debtor_external_id"
    )
    assert await counts(db) == before

    await put_debtor(client, auth, "LATE")
    r = await client.post(BATCHES, json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    replay = await client.post(BATCHES, json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == r.json()


async def test_resending_a_batch_without_a_key_returns_the_existing_batch(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    rows = [invoice_json(debtor), invoice_json(debtor, currency="USD", amount="5.00")]
    first = await submit(client, auth, rows)
    before = await counts(db)
    again = await submit(client, auth, list(reversed(rows)), status=200)
    assert again == first
    assert await counts(db) == before
    assert len(await _batches(client, auth)) == 1


async def test_resending_an_approved_batch_shows_it_approved_and_books_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    rows = [invoice_json(debtor, amount="70.00")]
    await booked(client, auth, *rows)
    before = await counts(db)
    again = await submit(client, auth, rows, status=200)
    assert again["status"] == "approved"
    assert await counts(db) == before
    assert currency(await get_debtor(client, auth, debtor), "EUR")["open"]["amount"] == "70.00"
