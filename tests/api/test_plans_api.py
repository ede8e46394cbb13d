"""REST v1 for payment plans: propose for a debtor, accept, staff decisions, plan policies, and bad
input answered as problem+json with nothing changed."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy import text

from core.db import Database
from tests import factories
from tests.api.helpers import API, assert_problem


async def debtor_owing(db: Database, *amounts: int) -> tuple[str, list[str]]:
    d = await factories.debtor(db)
    rows = [factories.invoice_row(d, amount_minor=a, due_date=date(2026, 11, 30)) for a in amounts]
    await factories.batch(db, rows)
    return d, [r.external_id for r in rows]


async def plan_rows(db: Database) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(text("SELECT count(*) FROM payment_plans"))).scalar_one())


async def post(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: Any = None
) -> httpx.Response:
    return await client.post(f"{API}{path}", json=body, headers=auth)


async def test_propose_accept_and_see_the_plan_and_the_balance(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d, (inv, _) = await debtor_owing(db, 30_000, 10_000)

    r = await post(client, auth, f"/debtors/{d}/plans", {"instalments": 3})
    assert r.status_code == 201, r.text
    offer = r.json()
    assert (offer["outcome"], offer["state"], offer["total"]) == (
        "accepted",
        "proposed",
        {"amount": "400.00", "currency": "EUR"},
    )
    assert [i["amount"]["amount"] for i in offer["schedule"]] == ["133.34", "133.33", "133.33"]

    r = await post(client, auth, f"/plans/{offer['plan_id']}/accept")
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["state"] == "active" and plan["invoices"] == [inv, _]
    assert [(i["due_on"], i["status"]) for i in plan["instalments"]] == [
        ("2026-12-24", "open"),
        ("2027-01-24", "open"),
        ("2027-02-24", "open"),
    ]
    got = (await client.get(f"{API}/plans/{offer['plan_id']}", headers=auth)).json()
    assert got == plan
    balance = (await client.get(f"{API}/debtors/{d}", headers=auth)).json()["balance"]["currencies"][0]
    assert balance["in_plan"] == {"amount": "400.00", "currency": "EUR"}

    r = await post(client, auth, f"/plans/{offer['plan_id']}/withdraw")
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    balance = (await client.get(f"{API}/debtors/{d}", headers=auth)).json()["balance"]["currencies"][0]
    assert balance["in_plan"] == {"amount": "0.00", "currency": "EUR"}
    assert_problem(await post(client, auth, f"/plans/{offer['plan_id']}/withdraw"), 409)


async def test_a_monthly_amount_out_of_range_goes_to_staff_who_approve(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d, _ = await debtor_owing(db, 40_000)

    r = await post(client, auth, f"/debtors/{d}/plans", {"monthly_amount": "10.00", "currency": "EUR"})
    offer = r.json()
    assert (offer["outcome"], offer["state"], offer["reason_code"]) == (
        "needs_approval",
        "pending_approval",
        "too_many_instalments",
    )
    waiting = (await client.get(f"{API}/plans", headers=auth)).json()["plans"]
    assert [p["id"] for p in waiting] == [offer["plan_id"]]
    early = await post(client, auth, f"/plans/{offer['plan_id']}/accept")
    assert_problem(early, 409)

    r = await post(
        client,
        auth,
        f"/plans/{offer['plan_id']}/decide",
        {"approve": True, "counter": {"instalments": 8}, "note": "long-standing customer"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved_by_staff" and len(r.json()["instalments"]) == 8
    r = await post(client, auth, f"/plans/{offer['plan_id']}/accept")
    assert r.json()["state"] == "active"


async def test_plan_policies_are_read_and_replaced(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    default = (await client.get(f"{API}/plan-policies/default", headers=auth)).json()
    assert (default["max_instalments"], default["min_instalment"], default["interval"]) == (
        6,
        {"amount": "25.00", "currency": "EUR"},
        "monthly",
    )
    body = {
        "max_instalments": 12,
        "min_instalment": {"amount": "50.00", "currency": "EUR"},
        "max_duration_days": 370,
        "down_payment_percent": "10",
        "staff_approval": False,
    }
    r = await client.put(f"{API}/plan-policies/retail", json=body, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["down_payment_percent"] == "10.00" and r.json()["staff_approval"] is False
    r = await client.put(f"{API}/plan-policies/retail", json=body | {"max_instalments": 10}, headers=auth)
    assert r.status_code == 200 and r.json()["max_instalments"] == 10
    segments = [
        p["segment"] for p in (await client.get(f"{API}/plan-policies", headers=auth)).json()["policies"]
    ]
    assert segments == ["default", "retail"]


async def test_bad_input_is_a_problem_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d, _ = await debtor_owing(db, 40_000)
    path = f"/debtors/{d}/plans"

    assert_problem(
        await post(client, auth, path, {"instalments": 3, "monthly_amount": "10.00", "currency": "EUR"}), 422
    )
    assert_problem(
        await post(client, auth, path, {"monthly_amount": 10, "currency": "EUR"}), 422, "monthly_amount"
    )
    assert_problem(
        await post(client, auth, path, {"monthly_amount": "10,00", "currency": "EUR"}), 422, "monthly_amount"
    )
    assert_problem(await post(client, auth, path, {"instalments": 0}), 422, "instalments")
    wrong = {"monthly_amount": "50.00", "currency": "USD"}
    assert_problem(await post(client, auth, path, wrong), 422, "currency")
    assert_problem(await post(client, auth, path, {"instalments": 2, "invoices": ["NOPE"]}), 422, "invoices")
    assert_problem(await post(client, auth, "/debtors/NOBODY/plans", {"instalments": 2}), 404)
    assert_problem(await post(client, auth, "/plans/not-a-uuid/accept"), 422)
    assert_problem(await post(client, auth, "/plans/00000000-0000-0000-0000-000000000000/accept"), 404)
    assert_problem(await client.get(f"{API}/plan-policies/nobody", headers=auth), 404)
    bad_policy = {
        "min_instalment": {"amount": "25.00", "currency": "EUR"},
        "max_total": {"amount": "100.00", "currency": "USD"},
    }
    assert_problem(await client.put(f"{API}/plan-policies/x", json=bad_policy, headers=auth), 422)
    assert await plan_rows(db) == 0


async def test_decide_needs_the_approve_scope(client: httpx.AsyncClient, db: Database) -> None:
    token = await factories.api_key(db, scopes=["plans:write", "plans:read"])
    headers = {"Authorization": f"Bearer {token}"}
    d, _ = await debtor_owing(db, 40_000)
    offer = (await post(client, headers, f"/debtors/{d}/plans", {"instalments": 30})).json()

    assert_problem(await post(client, headers, f"/plans/{offer['plan_id']}/decide", {"approve": True}), 403)
