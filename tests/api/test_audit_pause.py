"""The audit trail of every change made through the API, and pausing and resuming dunning."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.db import Database
from tests.api.helpers import (
    API,
    approve,
    assert_problem,
    audit,
    booked,
    counts,
    get_debtor,
    get_invoice,
    invoice_json,
    key_prefix,
    put_debtor,
    submit,
)


@pytest.fixture
def actor(auth: dict[str, str]) -> dict[str, Any]:
    return {"type": "api_key", "id": key_prefix(auth), "name": "test"}


@pytest.fixture
async def debtor(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    await put_debtor(client, auth, "ACME", email="ap@acme.example")
    return "ACME"


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in events]


# --------------------------------------------------------------------------- audit


async def test_debtor_changes_are_audited_and_a_no_op_is_not(
    client: httpx.AsyncClient, auth: dict[str, str], actor: dict[str, Any]
) -> None:
    body = {"name": "Acme BV", "email": "AP@Acme.example", "locale": "nl", "phone": "+31 6 12345678"}
    r = await client.put(f"{API}/debtors/ACME", json=body, headers=auth)
    assert r.status_code == 201
    (created,) = await audit(client, auth, "debtor", "ACME")
    assert created["action"] == "debtor.created"
    assert created["actor"] == actor
    assert (created["entity"], created["entity_id"]) == ("debtor", "ACME")
    assert created["before"] is None
    assert created["after"]["name"] == "Acme BV"
    assert created["after"]["locale"] == "nl"
    assert created["after"]["phone"] == "+31612345678"

    r = await client.put(f"{API}/debtors/ACME", json=body, headers=auth)
    assert r.status_code == 200
    assert len(await audit(client, auth, "debtor", "ACME")) == 1

    r = await client.put(f"{API}/debtors/ACME", json={**body, "name": "Acme Holding BV"}, headers=auth)
    assert r.status_code == 200
    assert r.json()["name"] == "Acme Holding BV"
    updated, first = await audit(client, auth, "debtor", "ACME")
    assert first == created
    assert updated["action"] == "debtor.updated"
    assert updated["actor"] == actor
    assert updated["before"]["name"] == "Acme BV"
    assert updated["after"]["name"] == "Acme Holding BV"
    assert updated["before"]["email"] == updated["after"]["email"]


async def test_a_debtor_update_replaces_the_contact_details(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    body = {"name": "Acme", "email": "billing@acme.example", "phone": "+31612345678", "timezone": "UTC"}
    r = await client.put(f"{API}/debtors/{debtor}", json=body, headers=auth)
    assert r.status_code == 200
    d = r.json()
    assert (d["email"], d["phone"], d["timezone"]) == ("billing@acme.example", "+31612345678", "UTC")
    assert sorted(p["kind"] for p in d["contact_points"]) == ["email", "phone"]
    changed = (await audit(client, auth, "debtor", debtor))[0]
    assert changed["before"]["email"] == "ap@acme.example"
    assert changed["after"]["email"] == "billing@acme.example"

    r = await client.put(f"{API}/debtors/{debtor}", json={"name": "Acme"}, headers=auth)
    d = await get_debtor(client, auth, debtor)
    assert (d["email"], d["phone"], d["contact_points"]) == (None, None, [])
    assert d["timezone"] == "Europe/Amsterdam"


async def test_batch_creation_and_approval_are_audited(
    client: httpx.AsyncClient, auth: dict[str, str], actor: dict[str, Any], debtor: str
) -> None:
    row = invoice_json(debtor, amount="12.50")
    batch = await submit(client, auth, [row])
    await approve(client, auth, batch["id"])

    approved, created = await audit(client, auth, "invoice_batch", batch["id"])
    assert created["action"] == "batch.created"
    assert created["actor"] == actor
    assert created["after"]["count"] == 1
    assert created["after"]["status"] == "pending_approval"
    assert approved["action"] == "batch.approved"
    assert approved["actor"] == actor
    assert approved["before"] == {"status": "pending_approval"}
    assert approved["after"]["status"] == "approved"

    events = await audit(client, auth, "invoice", row["external_id"])
    assert actions(events) == ["invoice.approved", "invoice.created"]
    assert events[0]["before"] == {"status": "pending_approval"}
    assert events[0]["after"] == {"status": "approved"}
    assert events[1]["after"]["batch_id"] == batch["id"]


async def test_a_rejected_invoice_lives_on_in_the_audit_trail(
    client: httpx.AsyncClient, auth: dict[str, str], actor: dict[str, Any], debtor: str
) -> None:
    row = invoice_json(debtor)
    batch = await submit(client, auth, [row])
    r = await client.post(f"{API}/invoice-batches/{batch['id']}/reject", json={"note": "dupe"}, headers=auth)
    assert r.status_code == 200
    rejected = (await audit(client, auth, "invoice_batch", batch["id"]))[0]
    assert rejected["action"] == "batch.rejected"
    assert rejected["actor"] == actor
    assert rejected["after"] == {"status": "rejected", "note": "dupe"}
    gone = (await audit(client, auth, "invoice", row["external_id"]))[0]
    assert gone["action"] == "invoice.rejected"
    assert gone["before"]["status"] == "pending_approval"
    assert gone["after"] is None


async def test_payments_and_credit_notes_are_audited(
    client: httpx.AsyncClient, auth: dict[str, str], actor: dict[str, Any], debtor: str
) -> None:
    a = invoice_json(debtor, amount="100.00", number="F-1", due_date="2026-10-01")
    b = invoice_json(debtor, amount="100.00", number="F-2", due_date="2026-11-01")
    await booked(client, auth, a, b)
    r = await client.post(
        f"{API}/payments",
        json={"debtor_external_id": debtor, "amount": "120.00", "currency": "EUR", "reference": "bank 42"},
        headers=auth,
    )
    assert r.status_code == 201
    payment_id = r.json()["id"]
    (recorded,) = await audit(client, auth, "payment", payment_id)
    assert recorded["action"] == "payment.recorded"
    assert recorded["actor"] == actor
    assert recorded["after"]["amount"] == "120.00"
    assert recorded["after"]["reference"] == "bank 42"
    assert recorded["after"]["allocations"] == [
        {"invoice": a["external_id"], "amount": "100.00"},
        {"invoice": b["external_id"], "amount": "20.00"},
    ]
    paid = (await audit(client, auth, "invoice", a["external_id"]))[0]
    assert paid["action"] == "invoice.paid"
    assert paid["before"] == {"status": "approved"}
    assert paid["after"] == {"status": "paid", "payment_id": payment_id}

    r = await client.post(
        f"{API}/credit-notes",
        json={
            "invoice_external_id": b["external_id"],
            "amount": "80.00",
            "currency": "EUR",
            "reason": "late",
        },
        headers=auth,
    )
    assert r.status_code == 201
    (issued,) = await audit(client, auth, "credit_note", r.json()["number"])
    assert issued["action"] == "credit_note.issued"
    assert issued["actor"] == actor
    assert issued["after"] == {
        "invoice": b["external_id"],
        "amount": "80.00",
        "currency": "EUR",
        "reason": "late",
    }
    settled = (await audit(client, auth, "invoice", b["external_id"]))[0]
    assert settled["action"] == "invoice.settled"
    assert settled["before"] == {"status": "approved"}
    assert settled["after"]["status"] == "paid"


async def test_the_trail_filters_by_entity(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    await put_debtor(client, auth, "OTHER")
    events = (await client.get(f"{API}/audit", params={"entity": "debtor"}, headers=auth)).json()["events"]
    assert {e["entity_id"] for e in events} >= {"ACME", "OTHER"}
    assert {e["entity"] for e in events} == {"debtor"}
    assert await audit(client, auth, "debtor", "NOBODY") == []
    limited = await client.get(f"{API}/audit", params={"entity": "debtor", "limit": 1}, headers=auth)
    assert [e["entity_id"] for e in limited.json()["events"]] == ["OTHER"]
    assert_problem(await client.get(f"{API}/audit", params={"limit": 0}, headers=auth), 422, "limit")


# --------------------------------------------------------------------------- pause and resume


async def test_pause_is_stored_shown_and_audited(
    client: httpx.AsyncClient, auth: dict[str, str], actor: dict[str, Any], debtor: str
) -> None:
    row = invoice_json(debtor)
    await booked(client, auth, row)
    r = await client.post(
        f"{API}/debtors/{debtor}/pause",
        json={"reason": "disputed delivery", "until": "2026-12-31"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    state = {"paused": True, "until": "2026-12-31", "reason": "disputed delivery"}
    assert r.json() == {"external_id": debtor, "dunning": state}
    assert (await get_debtor(client, auth, debtor))["dunning"] == state
    assert (await get_invoice(client, auth, row["external_id"]))["dunning"]["pause"] == state

    paused = (await audit(client, auth, "debtor", debtor))[0]
    assert paused["action"] == "debtor.paused"
    assert paused["actor"] == actor
    assert paused["before"] == {"paused": False, "until": None, "reason": None}
    assert paused["after"] == state


async def test_pause_without_an_end_and_ending_today(
    client: httpx.AsyncClient, auth: dict[str, str], debtor: str
) -> None:
    r = await client.post(f"{API}/debtors/{debtor}/pause", json={"reason": "on holiday"}, headers=auth)
    assert r.json()["dunning"] == {"paused": True, "until": None, "reason": "on holiday"}
    r = await client.post(
        f"{API}/debtors/{debtor}/pause", json={"reason": "call back", "until": "2026-11-24"}, headers=auth
    )
    assert r.status_code == 200
    assert (await get_debtor(client, auth, debtor))["dunning"] == {
        "paused": True,
        "until": "2026-11-24",
        "reason": "call back",
    }
    again = (await audit(client, auth, "debtor", debtor))[0]
    assert again["before"]["reason"] == "on holiday"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "late", "until": "2026-11-23"}, "until"),
        ({"reason": "late", "until": "next week"}, "until"),
        ({"reason": ""}, "reason"),
        ({"until": "2026-12-31"}, "reason"),
        ({"reason": "x", "forever": True}, "forever"),
    ],
)
async def test_a_bad_pause_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    db: Database,
    debtor: str,
    body: dict[str, Any],
    field: str,
) -> None:
    before = await counts(db)
    assert_problem(await client.post(f"{API}/debtors/{debtor}/pause", json=body, headers=auth), 422, field)
    assert await counts(db) == before
    assert (await get_debtor(client, auth, debtor))["dunning"]["paused"] is False


async def test_pausing_or_resuming_an_unknown_debtor_is_404(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    before = await counts(db)
    r = await client.post(f"{API}/debtors/NOBODY/pause", json={"reason": "x"}, headers=auth)
    assert "NOBODY" in assert_problem(r, 404)["detail"]
    assert_problem(await client.post(f"{API}/debtors/NOBODY/resume", headers=auth), 404)
    assert await counts(db) == before


async def test_resume_lifts_the_pause(
    client: httpx.AsyncClient, auth: dict[str, str], actor: dict[str, Any], debtor: str
) -> None:
    await client.post(
        f"{API}/debtors/{debtor}/pause", json={"reason": "dispute", "until": "2027-01-31"}, headers=auth
    )
    r = await client.post(f"{API}/debtors/{debtor}/resume", headers=auth)
    assert r.status_code == 200, r.text
    cleared = {"paused": False, "until": None, "reason": None}
    assert r.json()["dunning"] == cleared
    assert (await get_debtor(client, auth, debtor))["dunning"] == cleared

    resumed = (await audit(client, auth, "debtor", debtor))[0]
    assert resumed["action"] == "debtor.resumed"
    assert resumed["actor"] == actor
    assert resumed["before"] == {"paused": True, "until": "2027-01-31", "reason": "dispute"}
    assert resumed["after"] == cleared


async def test_resuming_a_debtor_that_is_not_paused_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, debtor: str
) -> None:
    before = await counts(db)
    r = await client.post(f"{API}/debtors/{debtor}/resume", headers=auth)
    assert r.status_code == 200
    assert r.json()["dunning"]["paused"] is False
    assert await counts(db) == before
