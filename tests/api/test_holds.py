"""Invoice holds through the API: pause, promise to pay, dispute, and how the sweep honours them."""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.dunning.models import Promise
from core.dunning.sweep import SweepResult, sweep
from tests import factories
from tests.api.helpers import API, assert_problem


async def run(db: Database, day: str) -> SweepResult:
    async with db.session_scope() as s:
        return await sweep(s, now=factories.at(day))


async def post(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: dict[str, object] | None = None
) -> httpx.Response:
    return await client.post(f"{API}/invoices/{path}", json=body, headers=auth)


async def overdue_invoice(db: Database) -> str:
    d = await factories.debtor(db)
    return await factories.invoice(db, d, issue_date=date(2026, 10, 1), due_date=date(2026, 11, 1))


async def test_a_promise_holds_dunning_until_its_date_plus_grace_then_breaks(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    r = await post(client, auth, f"{inv}/promise", {"date": "2026-12-01"})
    assert r.status_code == 200, r.text
    assert r.json()["dunning"]["promise_date"] == "2026-12-01"

    assert (await run(db, "2026-11-24")).actions == 0  # first reminder was due 8 Nov: held by the promise
    assert (await run(db, "2026-12-04")).actions == 0  # promised 1 Dec + 3 grace days

    result = await run(db, "2026-12-05")
    assert result.broken_promises == [inv]
    assert result.actions == 1  # dunning resumes, at the latest stage due (final notice, 1 Dec)
    view = (await client.get(f"{API}/invoices/{inv}", headers=auth)).json()
    assert view["dunning"]["invoice"]["promise_date"] is None
    assert view["dunning"]["stage"] == "final_notice"
    assert [m["stage"] for m in view["messages"]] == ["issued", "final_notice"]
    async with db.sessionmaker() as s:
        assert (await s.execute(select(col(Promise.status)))).scalars().all() == ["broken"]
    trail = (await client.get(f"{API}/audit", params={"entity": "invoice", "id": inv}, headers=auth)).json()
    assert "promise.broken" in [e["action"] for e in trail["events"]]


async def test_a_paid_invoice_keeps_its_promise(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    assert (await post(client, auth, f"{inv}/promise", {"date": "2026-11-28"})).status_code == 200
    view = (await client.get(f"{API}/invoices/{inv}", headers=auth)).json()
    paid = await client.post(
        f"{API}/payments",
        json={
            "debtor_external_id": view["debtor_external_id"],
            "invoice_external_id": inv,
            "amount": "100.00",
            "currency": "EUR",
        },
        headers=auth,
    )
    assert paid.status_code == 201, paid.text
    assert (await run(db, "2026-12-20")).actions == 0
    async with db.sessionmaker() as s:
        assert (await s.execute(select(col(Promise.status)))).scalars().all() == ["kept"]


async def test_promises_outside_the_policy_are_refused(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    too_late = await post(client, auth, f"{inv}/promise", {"date": "2027-01-31"})  # policy allows 30 days
    assert_problem(too_late, 422, "date")
    past = await post(client, auth, f"{inv}/promise", {"date": "2026-11-01"})
    assert_problem(past, 422, "date")
    too_much = await post(
        client, auth, f"{inv}/promise", {"date": "2026-12-01", "amount": "100.01", "currency": "EUR"}
    )
    assert_problem(too_much, 422, "amount")
    assert (await post(client, auth, "NOPE-1/promise", {"date": "2026-12-01"})).status_code == 404


async def test_a_dispute_holds_until_resolved(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    r = await post(client, auth, f"{inv}/dispute", {"reason": "never received the goods"})
    assert r.status_code == 200 and r.json()["dunning"]["disputed"] is True
    assert (await post(client, auth, f"{inv}/dispute", {"reason": "again"})).status_code == 409
    assert (await run(db, "2026-11-24")).actions == 0
    assert (
        await post(client, auth, f"{inv}/dispute/resolve", {"note": "delivered on 2 Oct, proof sent"})
    ).status_code == 200
    assert (await run(db, "2026-11-24")).actions == 1
    assert (await post(client, auth, f"{inv}/dispute/resolve", {"note": "twice"})).status_code == 409


async def test_an_invoice_pause_without_end_holds_until_resumed(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    r = await post(client, auth, f"{inv}/pause", {"reason": "customer in hospital"})
    assert r.status_code == 200 and r.json()["dunning"]["paused"] is True
    assert (await run(db, "2027-03-01")).actions == 0
    assert (await post(client, auth, f"{inv}/resume")).status_code == 200
    assert (await run(db, "2027-03-01")).actions == 1
    past = await post(client, auth, f"{inv}/pause", {"reason": "x", "until": "2026-01-01"})
    assert_problem(past, 422, "until")


async def test_a_pause_with_an_end_lifts_by_itself(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    assert (
        await post(client, auth, f"{inv}/pause", {"reason": "holiday", "until": "2026-11-30"})
    ).status_code == 200
    assert (await run(db, "2026-11-30")).actions == 0
    assert (await run(db, "2026-12-01")).actions == 1


async def test_holds_need_a_booked_invoice(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d = await factories.debtor(db)
    pending = await factories.invoice(db, d, approve=False)
    r = await post(client, auth, f"{pending}/dispute", {"reason": "x"})
    assert r.status_code == 409


async def test_the_balance_shows_what_is_promised(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    inv = await overdue_invoice(db)
    view = (await client.get(f"{API}/invoices/{inv}", headers=auth)).json()
    debtor = view["debtor_external_id"]
    await post(client, auth, f"{inv}/promise", {"date": "2026-12-01", "amount": "40.00", "currency": "EUR"})
    eur = (await client.get(f"{API}/debtors/{debtor}", headers=auth)).json()["balance"]["currencies"][0]
    assert (eur["open"]["amount"], eur["promised"]["amount"]) == ("100.00", "40.00")
    await post(client, auth, f"{inv}/promise", {"date": "2026-12-02"})  # a new promise replaces it: all of it
    eur = (await client.get(f"{API}/debtors/{debtor}", headers=auth)).json()["balance"]["currencies"][0]
    assert eur["promised"]["amount"] == "100.00"
