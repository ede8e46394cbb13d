"""Invoice batches from submission to decision, the invoice view, and the operations endpoints."""

from __future__ import annotations

import base64

import httpx
import pytest

from core.db import Database
from tests.api.helpers import (
    API,
    approve,
    assert_problem,
    booked,
    counts,
    currency,
    get_debtor,
    get_invoice,
    invoice_json,
    key_prefix,
    put_debtor,
    submit,
)

BATCHES = f"{API}/invoice-batches"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
async def debtor(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    await put_debtor(client, auth, "ACME", email="ap@acme.example")
    return "ACME"


async def test_a_new_batch_waits_for_approval(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    rows = [invoice_json(debtor, amount="120.50"), invoice_json(debtor, amount="79.50")]
    created = await submit(client, auth, rows)
    assert created["status"] == "pending_approval"
    assert created["count"] == 2
    assert created["total"] == {"amount": "200.00", "currency": "EUR"}
    assert created["created_by"] == f"api_key:{key_prefix(auth)}"
    assert created["decided_by"] is None

    r = await client.get(f"{BATCHES}/{created['id']}", headers=auth)
    assert r.status_code == 200
    assert r.json() == created

    for row in rows:
        inv = await get_invoice(client, auth, row["external_id"])
        assert inv["status"] == "pending_approval"
        assert inv["batch_id"] == created["id"]


async def test_pending_invoices_do_not_count_in_the_balance(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    await submit(client, auth, [invoice_json(debtor, amount="500.00")])
    balance = (await get_debtor(client, auth, debtor))["balance"]
    assert balance == {"currencies": [], "invoices": []}


async def test_approval_books_the_invoices(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    rows = [
        invoice_json(debtor, amount="120.50", due_date="2026-10-31"),
        invoice_json(debtor, amount="30.00", due_date="2026-12-31"),
    ]
    created = await submit(client, auth, rows)
    decided = await approve(client, auth, created["id"])
    assert decided["id"] == created["id"]
    assert decided["status"] == "approved"
    assert decided["decided_by"] == f"api_key:{key_prefix(auth)}"
    assert decided["decided_at"] is not None

    for row in rows:
        assert (await get_invoice(client, auth, row["external_id"]))["status"] == "approved"
    d = await get_debtor(client, auth, debtor)
    eur = currency(d, "EUR")
    assert eur["open"] == {"amount": "150.50", "currency": "EUR"}
    assert eur["overdue"] == {"amount": "120.50", "currency": "EUR"}
    assert [i["external_id"] for i in d["balance"]["invoices"]] == [r["external_id"] for r in rows]


async def test_a_batch_is_decided_once(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    created = await submit(client, auth, [invoice_json(debtor)])
    await approve(client, auth, created["id"])
    before = await counts(db)
    for action in ("approve", "reject"):
        r = await client.post(f"{BATCHES}/{created['id']}/{action}", headers=auth)
        body = assert_problem(r, 409)
        assert "approved" in body["detail"]
        assert f"api_key:{key_prefix(auth)}" in body["detail"]
    assert await counts(db) == before
    assert currency(await get_debtor(client, auth, debtor), "EUR")["open"]["amount"] == "100.00"


async def test_rejection_drops_the_invoices_and_frees_their_ids(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    rows = [invoice_json(debtor), invoice_json(debtor)]
    created = await submit(client, auth, rows)
    r = await client.post(f"{BATCHES}/{created['id']}/reject", json={"note": "wrong VAT rate"}, headers=auth)
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert rejected["status"] == "rejected"
    assert rejected["decision_note"] == "wrong VAT rate"
    for row in rows:
        assert_problem(await client.get(f"{API}/invoices/{row['external_id']}", headers=auth), 404)

    second = await client.post(f"{BATCHES}/{created['id']}/approve", headers=auth)
    assert "rejected" in assert_problem(second, 409)["detail"]

    corrected = [{**row, "amount": "90.00"} for row in rows]
    again = await submit(client, auth, corrected)
    assert again["id"] != created["id"]
    assert again["total"] == {"amount": "180.00", "currency": "EUR"}
    assert (await get_debtor(client, auth, debtor))["balance"]["currencies"] == []


async def test_batches_are_listed_newest_first_and_by_status(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    first = await submit(client, auth, [invoice_json(debtor)])
    second = await submit(client, auth, [invoice_json(debtor)])
    await approve(client, auth, first["id"])

    r = await client.get(BATCHES, headers=auth)
    assert [b["id"] for b in r.json()["batches"]] == [second["id"], first["id"]]
    r = await client.get(BATCHES, params={"status": "pending_approval"}, headers=auth)
    assert [b["id"] for b in r.json()["batches"]] == [second["id"]]
    assert_problem(await client.get(BATCHES, params={"status": "lost"}, headers=auth), 422, "status")


async def test_a_batch_in_two_currencies_totals_each(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    created = await submit(
        client,
        auth,
        [
            invoice_json(debtor, amount="10.00"),
            invoice_json(debtor, amount="2.50", currency="USD"),
            invoice_json(debtor, amount="1000", currency="JPY"),
        ],
    )
    assert created["total"] is None
    assert created["totals"] == [
        {"amount": "10.00", "currency": "EUR"},
        {"amount": "1000", "currency": "JPY"},
        {"amount": "2.50", "currency": "USD"},
    ]


async def test_the_invoice_view(client: httpx.AsyncClient, auth: dict[str, str], debtor: str) -> None:
    row = invoice_json(
        debtor,
        amount="120.50",
        due_date="2026-11-14",
        description="October consulting",
        pdf_base64=base64.b64encode(PDF).decode(),
    )
    await booked(client, auth, row)
    r = await client.post(
        f"{API}/payments",
        json={
            "debtor_external_id": debtor,
            "invoice_external_id": row["external_id"],
            "amount": "20.50",
            "currency": "EUR",
            "received_on": "2026-11-20",
            "reference": "NL91ABNA0417164300",
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text

    inv = await get_invoice(client, auth, row["external_id"])
    assert inv["status"] == "approved"
    assert inv["number"] == row["number"]
    assert inv["debtor_external_id"] == debtor
    assert inv["amount"] == {"amount": "120.50", "currency": "EUR"}
    assert inv["open"] == {"amount": "100.00", "currency": "EUR"}
    assert inv["overdue"] is True
    assert inv["days_overdue"] == 10
    assert inv["description"] == "October consulting"
    assert inv["has_document"] is True
    assert inv["dunning"]["stage"] is None  # booked, no reminder yet
    assert inv["dunning"]["pause"] == {"paused": False, "until": None, "reason": None}
    assert inv["dunning"]["invoice"] == {
        "stage": None,
        "next_action_on": "2026-11-11",  # due 14 Nov: three days before, the default policy's first stage
        "paused": False,
        "paused_until": None,
        "pause_reason": None,
        "disputed": False,
        "dispute_reason": None,
        "promise_date": None,
    }
    # Approval queued the invoice's own delivery (stage "issued"), not sent yet.
    assert [(m["stage"], m["template"], m["status"]) for m in inv["messages"]] == [
        ("issued", "invoice_delivery", "queued")
    ]
    assert [(e["kind"], e["amount"]["amount"], e["effective_date"]) for e in inv["ledger"]] == [
        ("invoice", "120.50", "2026-10-01"),
        ("payment", "-20.50", "2026-11-20"),
    ]

    doc = await client.get(f"{API}/invoices/{row['external_id']}/document", headers=auth)
    assert doc.status_code == 200
    assert doc.headers["content-type"] == "application/pdf"
    assert doc.content == PDF


async def test_an_invoice_without_a_document(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    row = invoice_json(debtor)
    await submit(client, auth, [row])
    inv = await get_invoice(client, auth, row["external_id"])
    assert inv["has_document"] is False
    assert inv["open"] == {"amount": "0.00", "currency": "EUR"}
    assert inv["ledger"] == []
    assert_problem(await client.get(f"{API}/invoices/{row['external_id']}/document", headers=auth), 404)


async def test_an_unknown_invoice_is_a_404_problem(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = assert_problem(await client.get(f"{API}/invoices/NO-SUCH", headers=auth), 404)
    assert "NO-SUCH" in body["detail"]


async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert_problem(await client.get(f"{API}/nothing-here", headers=auth), 404)
    assert_problem(await client.delete(f"{API}/invoice-batches", headers=auth), 405)


async def test_metrics_count_requests_per_route_template(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.get(f"{API}/invoices/NO-SUCH", headers=auth)
    await client.get(f"{API}/debtors/NOBODY-HERE", headers=auth)
    await client.get("/no/such/page/at/all")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    lines = [line for line in r.text.splitlines() if line.startswith("duebot_http_requests_total{")]
    assert any('route="/api/v1/invoices/{external_id}"' in x and 'status="404"' in x for x in lines), lines
    assert any('route="/api/v1/debtors/{external_id}"' in x for x in lines), lines
    assert any('route="unmatched"' in x for x in lines), lines
    # Ids and unknown paths never become labels (they would grow the series without bound).
    assert "NO-SUCH" not in r.text
    assert "NOBODY-HERE" not in r.text
    assert "/no/such" not in r.text


async def test_the_api_describes_itself(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/api/v1/debtors/{external_id}",
        "/api/v1/invoice-batches",
        "/api/v1/invoice-batches/{batch_id}/approve",
        "/api/v1/invoices/{external_id}",
        "/api/v1/payments",
        "/api/v1/credit-notes",
        "/api/v1/audit",
    ):
        assert path in paths
