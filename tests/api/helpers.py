"""Plain helpers for the REST tests: request bodies, problem+json checks and row counts."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from sqlalchemy import text

from core.db import Database

API = "/api/v1"
PROBLEM = "application/problem+json"
TABLES = (
    "debtors",
    "contact_points",
    "invoice_batches",
    "invoices",
    "ledger_entries",
    "payments",
    "credit_notes",
    "audit_events",
    "idempotency_records",
)
_seq = itertools.count(1)


def invoice_json(debtor_external_id: str, **over: Any) -> dict[str, Any]:
    """One invoice of a batch body, as the ERP sends it: issued 1 Oct, due 31 Oct 2026, 100.00 EUR."""
    n = next(_seq)
    return {
        "external_id": f"API-INV-{n}",
        "debtor_external_id": debtor_external_id,
        "number": f"API-2026-{n:05d}",
        "issue_date": "2026-10-01",
        "due_date": "2026-10-31",
        "amount": "100.00",
        "currency": "EUR",
        **over,
    }


def key_prefix(headers: dict[str, str]) -> str:
    """The public prefix of the bearer key (what the audit trail names as the actor)."""
    return headers["Authorization"].removeprefix("Bearer ").split("_")[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Check the RFC 9457 shape; with ``field``, that an ``errors`` entry names that field."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"].startswith("https://")
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, f"{field!r} not among {fields}: {body}"
        for e in body["errors"]:
            assert e["message"]
    return body


async def counts(db: Database) -> dict[str, int]:
    """Rows per table: compare before and after a refused request to prove nothing changed."""
    out: dict[str, int] = {}
    async with db.sessionmaker() as s:
        for table in TABLES:
            out[table] = int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    return out


async def put_debtor(client: httpx.AsyncClient, auth: dict[str, str], external_id: str, **fields: Any) -> Any:
    body = {"name": f"Debtor {external_id}", **fields}
    r = await client.put(f"{API}/debtors/{external_id}", json=body, headers=auth)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def submit(
    client: httpx.AsyncClient, auth: dict[str, str], invoices: list[dict[str, Any]], status: int = 201
) -> Any:
    r = await client.post(f"{API}/invoice-batches", json={"invoices": invoices}, headers=auth)
    assert r.status_code == status, r.text
    return r.json()


async def approve(client: httpx.AsyncClient, auth: dict[str, str], batch_id: str) -> Any:
    r = await client.post(f"{API}/invoice-batches/{batch_id}/approve", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


async def booked(client: httpx.AsyncClient, auth: dict[str, str], *invoices: dict[str, Any]) -> None:
    """Submit the invoices as one batch and approve it."""
    batch = await submit(client, auth, list(invoices))
    await approve(client, auth, batch["id"])


async def get_debtor(client: httpx.AsyncClient, auth: dict[str, str], external_id: str) -> Any:
    r = await client.get(f"{API}/debtors/{external_id}", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


async def get_invoice(client: httpx.AsyncClient, auth: dict[str, str], external_id: str) -> Any:
    r = await client.get(f"{API}/invoices/{external_id}", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def currency(debtor: dict[str, Any], code: str) -> dict[str, Any]:
    found = [c for c in debtor["balance"]["currencies"] if c["currency"] == code]
    assert len(found) == 1, debtor["balance"]
    return found[0]


def invoice_balance(debtor: dict[str, Any], external_id: str) -> dict[str, Any]:
    found = [i for i in debtor["balance"]["invoices"] if i["external_id"] == external_id]
    assert len(found) == 1, debtor["balance"]
    return found[0]


async def audit(
    client: httpx.AsyncClient, auth: dict[str, str], entity: str, entity_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"{API}/audit", params={"entity": entity, "id": entity_id}, headers=auth)
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events
