"""REST v1 dunning: policies per segment (scopes, create/replace, problems) and the dry-run preview."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from core.db import Database
from core.dunning.models import DunningAction
from core.dunning.sweep import sweep
from core.invoices.models import Invoice
from core.messaging.models import Message
from tests import factories
from tests.api.helpers import API, assert_problem, audit, bearer, key_prefix

POLICIES = f"{API}/dunning/policies"
PREVIEW = f"{API}/dunning/preview"


def stage(key: str, offset: int, **over: Any) -> dict[str, Any]:
    return {
        "key": key,
        "offset_days": offset,
        "template": "reminder_overdue",
        "tone": "neutral",
        "channels": ["email", "sms"],
        **over,
    }


def policy_body(**over: Any) -> dict[str, Any]:
    return {
        "name": "Small business",
        "quiet_start_hour": 20,
        "quiet_end_hour": 9,
        "max_messages_per_week": 2,
        "min_gap_hours": 72,
        "interest_rate": "8.00",
        "promise_max_days": 21,
        "promise_grace_days": 2,
        "stages": [
            stage(
                "due_today", 0, template="reminder_due_today", tone="friendly", channels=["whatsapp", "email"]
            ),
            stage("second", 14, template="reminder_second", fee={"amount": "15.00", "currency": "EUR"}),
            stage(
                "handoff", 45, template="agency_handoff", tone="firm", charge_interest=True, action="agency"
            ),
        ],
        **over,
    }


async def row_counts(db: Database) -> dict[str, int]:
    out = {}
    async with db.sessionmaker() as s:
        for table in ("dunning_policies", "dunning_stages", "dunning_actions", "messages", "audit_events"):
            out[table] = int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    return out


# Scopes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", POLICIES, None),
        ("GET", f"{POLICIES}/default", None),
        ("PUT", f"{POLICIES}/smb", policy_body()),
        ("GET", f"{PREVIEW}?date=2026-11-24", None),
    ],
)
async def test_every_endpoint_needs_a_key(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    r = await client.request(method, path, json=body)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


async def test_scopes(client: httpx.AsyncClient, db: Database) -> None:
    reader = bearer(await factories.api_key(db, ["dunning:read"]))
    writer = bearer(await factories.api_key(db, ["dunning:write"]))
    other = bearer(await factories.api_key(db, ["debtors:read", "debtors:write"]))

    assert (await client.get(POLICIES, headers=reader)).status_code == 200
    assert (await client.get(f"{PREVIEW}?date=2026-11-24", headers=reader)).status_code == 200
    body = assert_problem(await client.put(f"{POLICIES}/smb", json=policy_body(), headers=reader), 403)
    assert "dunning:write" in body["detail"]

    assert (await client.put(f"{POLICIES}/smb", json=policy_body(), headers=writer)).status_code == 201
    assert_problem(await client.get(f"{POLICIES}/smb", headers=writer), 403)

    for path in (POLICIES, f"{POLICIES}/smb", PREVIEW):
        assert_problem(await client.get(path, headers=other), 403)
    assert_problem(await client.put(f"{POLICIES}/smb", json=policy_body(), headers=other), 403)


# Policies ---------------------------------------------------------------------------------------------


async def test_the_seeded_default_policy_is_listed_and_shown(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.get(POLICIES, headers=auth)
    assert r.status_code == 200, r.text
    (default,) = r.json()["policies"]
    assert (default["segment"], default["default"], default["interest_rate"]) == ("default", True, "8.00")
    assert [s["key"] for s in default["stages"]] == [
        "before_due",
        "due_today",
        "first_reminder",
        "second_reminder",
        "final_notice",
        "agency",
    ]
    assert default["stages"][3]["fee"] == {"amount": "15.00", "currency": "EUR"}
    assert default["stages"][5]["action"] == "agency"

    one = await client.get(f"{POLICIES}/default", headers=auth)
    assert one.status_code == 200 and one.json() == default


async def test_an_unknown_segment_is_a_404_problem(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = assert_problem(await client.get(f"{POLICIES}/nobody", headers=auth), 404)
    assert body["code"] == "policy_not_found"
    assert "'nobody'" in body["detail"]
    assert_problem(await client.get(f"{POLICIES}/No%20Body", headers=auth), 422, "segment")


async def test_put_creates_then_replaces(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.put(f"{POLICIES}/smb", json=policy_body(), headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["segment"] == "smb" and created["default"] is False
    assert (created["quiet_start_hour"], created["quiet_end_hour"], created["min_gap_hours"]) == (20, 9, 72)
    assert (created["max_messages_per_week"], created["promise_max_days"], created["promise_grace_days"]) == (
        2,
        21,
        2,
    )
    assert [(s["position"], s["key"], s["offset_days"]) for s in created["stages"]] == [
        (0, "due_today", 0),
        (1, "second", 14),
        (2, "handoff", 45),
    ]
    assert created["stages"][0]["channels"] == ["whatsapp", "email"]
    assert created["stages"][1]["fee"] == {"amount": "15.00", "currency": "EUR"}
    assert created["stages"][2]["charge_interest"] is True
    assert (await client.get(f"{POLICIES}/smb", headers=auth)).json() == created

    same = await client.put(f"{POLICIES}/smb", json={**policy_body(), "segment": "smb"}, headers=auth)
    assert same.status_code == 200 and same.json() == created  # nothing changed, not even updated_at

    replaced = await client.put(
        f"{POLICIES}/smb", json=policy_body(interest_rate="9.5", stages=[stage("only", 3)]), headers=auth
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["interest_rate"] == "9.50"
    assert [s["key"] for s in replaced.json()["stages"]] == ["only"]
    assert replaced.json()["created_at"] == created["created_at"]

    listed = (await client.get(POLICIES, headers=auth)).json()["policies"]
    assert [p["segment"] for p in listed] == ["default", "smb"]

    events = await audit(client, auth, "dunning_policy", "smb")
    assert [e["action"] for e in events] == ["dunning_policy.updated", "dunning_policy.created"]
    assert events[0]["actor"] == {"type": "api_key", "id": key_prefix(auth), "name": "test"}
    assert events[0]["before"]["interest_rate"] == "8.00" and events[0]["after"]["interest_rate"] == "9.50"


async def test_the_default_policy_can_be_replaced(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.put(f"{POLICIES}/default", json=policy_body(name="default"), headers=auth)
    assert r.status_code == 200, r.text
    assert [s["key"] for s in r.json()["stages"]] == ["due_today", "second", "handoff"]
    assert r.json()["default"] is True
    assert_problem(await client.delete(f"{POLICIES}/default", headers=auth), 405)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stages": [stage("a", 0), stage("b", 7, channels=["email", "fax"])]}, "stages.1.channels"),
        ({"stages": [stage("a", 0), stage("b", 7, channels=["sms", "sms"])]}, "stages.1.channels"),
        ({"stages": [stage("a", 0), stage("b", 7, channels=[])]}, "stages.1.channels"),
        ({"stages": [stage("a", 0, template="reminder_third")]}, "stages.0.template"),
        ({"stages": [stage("a", 0, tone="angry")]}, "stages.0.tone"),
        ({"stages": [stage("a", 0), stage("b", 0)]}, "stages.1.offset_days"),
        ({"stages": [stage("a", 0), stage("a", 7)]}, "stages.1.key"),
        ({"stages": [stage("a", 7), stage("b", 0)]}, "stages.1.offset_days"),
        ({"stages": [stage("a", 0, action="agency"), stage("b", 7)]}, "stages.0.action"),
        ({"stages": [stage("a", 0, fee={"amount": 15, "currency": "EUR"})]}, "stages.0.fee.amount"),
        ({"stages": [stage("a", 0, fee={"amount": "15.00", "currency": "XYZ"})]}, "stages.0.fee.currency"),
        ({"stages": []}, "stages"),
        ({"interest_rate": 8.5}, "interest_rate"),
        ({"interest_rate": "8.555"}, "interest_rate"),
        ({"interest_rate": "-2"}, "interest_rate"),
        ({"quiet_start_hour": 24}, "quiet_start_hour"),
        ({"segment": "consumer"}, "segment"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_bad_policies_are_refused_by_field(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database, change: dict[str, Any], field: str
) -> None:
    before = await row_counts(db)
    r = await client.put(f"{POLICIES}/smb", json=policy_body(**change), headers=auth)
    body = assert_problem(r, 422, field)
    assert len(body["errors"]) == 1, body
    assert await row_counts(db) == before


async def test_overlapping_stages_get_a_clear_message(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.put(
        f"{POLICIES}/smb",
        json=policy_body(stages=[stage("a", 0), stage("b", 7), stage("c", 7)]),
        headers=auth,
    )
    body = assert_problem(r, 422, "stages.2.offset_days")
    (err,) = body["errors"]
    assert err["code"] == "overlapping_stages"
    assert "stages overlap" in err["message"] and "stages.1" in err["message"]


async def test_a_policy_name_belongs_to_one_segment(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = assert_problem(
        await client.put(f"{POLICIES}/smb", json=policy_body(name="default"), headers=auth), 409, "name"
    )
    assert body["code"] == "policy_name_taken"


async def test_a_non_json_body_is_refused(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.put(
        f"{POLICIES}/smb", content=b"name: x", headers={**auth, "content-type": "application/yaml"}
    )
    assert_problem(r, 415)
    r = await client.put(
        f"{POLICIES}/smb", content=b"{", headers={**auth, "content-type": "application/json"}
    )
    assert_problem(r, 400)


# Preview ----------------------------------------------------------------------------------------------


async def test_the_preview_shows_what_the_sweep_then_does(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    smb = await client.put(f"{POLICIES}/smb", json=policy_body(), headers=auth)
    assert smb.status_code == 201
    ann = await factories.debtor(db, "PV-ANN", segment="smb")
    bob = await factories.debtor(db, "PV-BOB")
    cid = await factories.debtor(db, "PV-CID")
    await factories.batch(
        db,
        [
            factories.invoice_row(ann, external_id="PV-1", number="PV-0001", due_date=date(2026, 11, 20)),
            factories.invoice_row(ann, external_id="PV-2", number="PV-0002", due_date=date(2026, 11, 3)),
            factories.invoice_row(bob, external_id="PV-3", number="PV-0003", due_date=date(2026, 11, 23)),
            factories.invoice_row(bob, external_id="PV-4", number="PV-0004", due_date=date(2026, 10, 25)),
            factories.invoice_row(cid, external_id="PV-5", number="PV-0005", due_date=date(2026, 12, 31)),
            factories.invoice_row(ann, external_id="PV-6", number="PV-0006", due_date=date(2026, 11, 10)),
        ],
    )
    before = await row_counts(db)
    r = await client.get(PREVIEW, params={"date": "2026-11-20"}, headers=auth)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert await row_counts(db) == before  # nothing written

    assert preview["date"] == "2026-11-20"
    assert (preview["count"], preview["messages"]) == (5, 2)
    # ann's invoices follow her segment's policy, bob's the default policy.
    assert preview["by_stage"] == {"second": 1, "due_today": 2, "before_due": 1, "second_reminder": 1}
    assert preview["by_channel"] == {"email": 3, "whatsapp": 2}
    assert [d["external_id"] for d in preview["debtors"]] == ["PV-ANN", "PV-BOB"]
    ann_lines, bob_lines = (d["invoices"] for d in preview["debtors"])
    assert ann_lines == [
        {
            "external_id": "PV-2",
            "number": "PV-0002",
            "stage": "second",
            "template": "reminder_second",
            "tone": "neutral",
            "channels": ["email", "sms"],
        },
        {
            "external_id": "PV-6",
            "number": "PV-0006",
            "stage": "due_today",
            "template": "reminder_due_today",
            "tone": "friendly",
            "channels": ["whatsapp", "email"],
        },
        {
            "external_id": "PV-1",
            "number": "PV-0001",
            "stage": "due_today",
            "template": "reminder_due_today",
            "tone": "friendly",
            "channels": ["whatsapp", "email"],
        },
    ]
    assert [(i["external_id"], i["stage"]) for i in bob_lines] == [
        ("PV-4", "second_reminder"),
        ("PV-3", "before_due"),
    ]
    assert preview["debtors"][0]["name"] == "Debtor PV-ANN"

    async with db.session_scope() as s:
        result = await sweep(s, now=datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
    assert (result.actions, result.messages) == (preview["count"], preview["messages"])
    async with db.sessionmaker() as s:
        rows = await s.execute(
            select(col(Invoice.external_id), col(DunningAction.stage_key))
            .join(Invoice, col(Invoice.id) == col(DunningAction.invoice_id))
            .where(col(DunningAction.sweep_id) == result.sweep_id)
        )
        acted = sorted(rows.all())
        messages = int(
            (
                await s.execute(
                    select(func.count()).select_from(Message).where(col(Message.sweep_id) == result.sweep_id)
                )
            ).scalar_one()
        )
    previewed = sorted(
        (line["external_id"], line["stage"]) for d in preview["debtors"] for line in d["invoices"]
    )
    assert acted == previewed
    assert messages == preview["messages"]

    after = (await client.get(PREVIEW, params={"date": "2026-11-20"}, headers=auth)).json()
    assert (after["count"], after["debtors"], after["by_stage"]) == (0, [], {})


async def test_the_preview_defaults_to_today(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    d = await factories.debtor(db)
    await factories.invoice(db, d, due_date=date(2026, 11, 24))  # the test clock's today
    r = await client.get(PREVIEW, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["date"] == "2026-11-24"
    assert r.json()["by_stage"] == {"due_today": 1}


@pytest.mark.parametrize("value", ["2026-13-01", "tomorrow", "24-11-2026", ""])
async def test_a_bad_preview_date_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> None:
    assert_problem(await client.get(PREVIEW, params={"date": value}, headers=auth), 422, "date")
