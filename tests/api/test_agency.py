"""Hand-off to the collection agency at the final stage, the evidence file, and agency payments."""

from __future__ import annotations

import csv
import io
from datetime import date

import httpx
from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.dunning.sweep import sweep
from core.events import service as events
from core.events.models import Event, WebhookDelivery
from core.ports import FixedClock
from tests import factories
from tests.api.helpers import API
from tests.fakes.sms import sms_gateway


async def test_the_final_stage_hands_the_invoice_over_with_its_evidence(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d = await factories.debtor(db, "AGENCY-1")
    inv = await factories.invoice(db, d, issue_date=date(2026, 8, 1), due_date=date(2026, 9, 1))
    promised = await client.post(f"{API}/invoices/{inv}/promise", json={"date": "2026-11-30"}, headers=auth)
    assert promised.status_code == 200
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-12-04"))  # promise + grace passed: broken; 94 days late

    view = (await client.get(f"{API}/invoices/{inv}", headers=auth)).json()
    assert (view["status"], view["dunning"]["stage"]) == ("with_agency", "agency")

    evidence = (await client.get(f"{API}/debtors/{d}/evidence", headers=auth)).json()
    assert evidence["debtor"]["external_id"] == "AGENCY-1"
    assert [i["external_id"] for i in evidence["invoices"]] == [inv]
    assert [p["status"] for p in evidence["promises"]] == ["broken"]
    assert [m["stage"] for m in evidence["messages"]] == [
        "issued",
        "agency",
    ]  # the invoice itself, then dunning
    assert {e["kind"] for e in evidence["ledger"]} == {"invoice", "fee", "interest"}

    sheet = await client.get(f"{API}/debtors/{d}/evidence", params={"format": "csv"}, headers=auth)
    assert sheet.headers["content-type"].startswith("text/csv")
    records = [row["record"] for row in csv.DictReader(io.StringIO(sheet.text))]
    assert records.count("invoice") == 1 and "promise" in records and "message" in records

    # The agency's endpoint gets only the hand-off; a general endpoint gets every event.
    now = factories.at("2026-12-04")
    async with (
        sms_gateway(any_json=True) as agency,
        sms_gateway(any_json=True) as erp,
        httpx.AsyncClient() as http,
    ):
        async with db.session_scope() as s:
            await events.fan_out(s, [erp.url], now, agency_url=agency.url)
        await events.deliver(db, http, secret="s", clock=FixedClock(now))
        assert [r.json["type"] for r in agency.requests] == ["invoice.handed_to_agency"]
        assert agency.requests[0].json["data"]["invoices"][0]["external_id"] == inv
        assert sorted(r.json["type"] for r in erp.requests) == [
            "dunning.stage_reached",
            "invoice.handed_to_agency",
            "promise.broken",
        ]
    async with db.sessionmaker() as s:
        assert len((await s.execute(select(col(WebhookDelivery.id)))).all()) == 4
        assert len((await s.execute(select(col(Event.id)))).all()) == 3


async def test_agency_payments_are_booked_as_such_and_settle_the_invoice(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 8, 1), due_date=date(2026, 9, 1))
    async with db.session_scope() as s:
        await sweep(s, now=factories.at("2026-11-20"))
    view = (await client.get(f"{API}/invoices/{inv}", headers=auth)).json()
    assert view["status"] == "with_agency"
    paid = await client.post(
        f"{API}/payments",
        json={
            "debtor_external_id": d,
            "invoice_external_id": inv,
            "amount": view["open"]["amount"],
            "currency": "EUR",
            "method": "agency",
            "reference": "agency batch 7",
        },
        headers=auth,
    )
    assert paid.status_code == 201, paid.text
    after = (await client.get(f"{API}/invoices/{inv}", headers=auth)).json()
    assert (after["status"], after["open"]["amount"]) == ("paid", "0.00")
    assert after["ledger"][-1]["kind"] == "agency_payment"


async def test_evidence_needs_a_known_debtor_and_the_scope(client: httpx.AsyncClient, db: Database) -> None:
    reader = {"Authorization": f"Bearer {await factories.api_key(db, ['debtors:read'])}"}
    other = {"Authorization": f"Bearer {await factories.api_key(db, ['invoices:read'])}"}
    assert (await client.get(f"{API}/debtors/NOBODY/evidence", headers=reader)).status_code == 404
    d = await factories.debtor(db)
    assert (await client.get(f"{API}/debtors/{d}/evidence", headers=other)).status_code == 403
    assert (
        await client.get(f"{API}/debtors/{d}/evidence", params={"format": "xml"}, headers=reader)
    ).status_code == 422
