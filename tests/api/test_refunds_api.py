"""POST /api/v1/refunds (+ approve, decline) and POST /api/v1/payment-requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from stdnum import iso11649

from api.deps import Services
from core.config import Settings
from core.db import Database
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests import factories
from tests.api.helpers import API, assert_problem, audit
from tests.api.test_mollie_webhook import app_client
from tests.core.test_refunds import paid
from tests.fakes.mollie import FakeMollie

POLICY = {
    "refund_staff_max_count_per_month": 2,
    "refund_second_approval_above": "50.00",
    "creditor_name": "Acme Supplies B.V.",
    "creditor_iban": "NL91ABNA0417164300",
}


@pytest.fixture
async def api(
    settings: Settings, db: Database, redis: Redis, clock: FixedClock, provider: MollieProvider
) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update=POLICY)
    async with app_client(Services(configured, db, redis, clock, payments=provider)) as c:
        yield c


def refund(payment: str, amount: str | None = "10.00", by: str = "U-ANNA") -> dict[str, object]:
    body: dict[str, object] = {"payment_id": payment, "reason": "damaged goods", "requested_by": by}
    if amount is not None:
        body.update(amount=amount, currency="EUR")
    return body


async def test_a_refund_within_the_policy_is_executed_at_once_and_audited(
    api: httpx.AsyncClient,
    db: Database,
    auth: dict[str, str],
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await api.post(f"{API}/refunds", json=refund(tr), headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "executed" and body["amount"] == {"amount": "10.00", "currency": "EUR"}
    assert body["provider_refund_id"].startswith("re_") and body["needs_second_approval"] is False
    actions = [e["action"] for e in await audit(api, auth, "refund", body["id"])]
    assert actions == ["refund.executed", "refund.requested"]

    headers = {**auth, "Idempotency-Key": "refund-once"}  # a double request never refunds twice
    first = await api.post(f"{API}/refunds", json=refund(tr, "5.00"), headers=headers)
    second = await api.post(f"{API}/refunds", json=refund(tr, "5.00"), headers=headers)
    assert first.json() == second.json() and len(mollie.refund_creates) == 2


async def test_a_large_refund_waits_for_a_second_approver(
    api: httpx.AsyncClient,
    db: Database,
    auth: dict[str, str],
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    r = await api.post(f"{API}/refunds", json=refund(tr, "75.00"), headers=auth)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "requested" and body["needs_second_approval"] is True
    assert mollie.refund_creates == []
    same = await api.post(f"{API}/refunds/{body['id']}/approve", json={"by": "U-ANNA"}, headers=auth)
    assert_problem(same, 403)
    ok = await api.post(f"{API}/refunds/{body['id']}/approve", json={"by": "U-BOB"}, headers=auth)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "executed" and ok.json()["approved_by"] == "staff:U-BOB"
    assert_problem(
        await api.post(f"{API}/refunds/{body['id']}/approve", json={"by": "U-C"}, headers=auth), 409
    )


async def test_a_refund_can_be_declined(
    api: httpx.AsyncClient,
    db: Database,
    auth: dict[str, str],
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    rid = (await api.post(f"{API}/refunds", json=refund(tr, "75.00"), headers=auth)).json()["id"]
    r = await api.post(f"{API}/refunds/{rid}/decline", json={"by": "U-BOB", "reason": "no"}, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "declined"
    assert_problem(await api.post(f"{API}/refunds/nope/approve", json={"by": "U-BOB"}, headers=auth), 404)


async def test_refusals_carry_the_reason(
    api: httpx.AsyncClient,
    db: Database,
    auth: dict[str, str],
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
) -> None:
    _, tr = await paid(db, provider, mollie, clock, 10_000)
    over = assert_problem(
        await api.post(f"{API}/refunds", json=refund(tr, "100.01"), headers=auth), 422, "amount"
    )
    assert over["code"] == "exceeds_refundable" and "100.00" in over["detail"]
    for _ in range(2):
        assert (await api.post(f"{API}/refunds", json=refund(tr, "1.00"), headers=auth)).status_code == 201
    limit = assert_problem(await api.post(f"{API}/refunds", json=refund(tr, "1.00"), headers=auth), 422)
    assert limit["code"] == "refund_count_limit" and "U-ANNA" in limit["detail"]
    assert_problem(await api.post(f"{API}/refunds", json=refund("tr_unknown"), headers=auth), 404)
    assert_problem(
        await api.post(f"{API}/refunds", json={**refund(tr), "amount": 10}, headers=auth), 422, "amount"
    )
    body = {"payment_id": tr, "amount": "1.00", "reason": "x", "requested_by": "U-ANNA"}
    assert_problem(await api.post(f"{API}/refunds", json=body, headers=auth), 422, "amount")


async def test_mollie_down_leaves_the_refund_approved_for_the_worker(
    api: httpx.AsyncClient,
    db: Database,
    auth: dict[str, str],
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
    settings: Settings,
) -> None:
    import worker

    _, tr = await paid(db, provider, mollie, clock, 10_000)
    mollie.fail_next(503)
    r = await api.post(f"{API}/refunds", json=refund(tr), headers=auth)
    assert r.status_code == 202 and r.json()["status"] == "approved" and "503" in r.json()["error"]
    ctx = {"db": db, "clock": clock, "payments": provider, "settings": settings}
    assert await worker.execute_refunds(ctx) == {"found": 1, "executed": 1}
    assert mollie.payments[tr].refunded_minor == 1_000


async def test_a_payment_request_is_queued_with_its_pay_options(
    api: httpx.AsyncClient, db: Database, auth: dict[str, str], mollie: FakeMollie
) -> None:
    d = await factories.debtor(db)
    body = {"debtor_external_id": d, "amount": "42.50", "currency": "EUR", "reason": "Extra pallets"}
    r = await api.post(f"{API}/payment-requests", json=body, headers=auth)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "queued" and out["amount"] == {"amount": "42.50", "currency": "EUR"}
    assert out["checkout"]["url"].startswith("https://www.mollie.com/checkout/")
    assert iso11649.is_valid(out["reference"]) and out["epc"]["payload"].endswith(out["reference"])
    assert mollie.creates[0].json["description"] == "Extra pallets"
    unknown = {**body, "debtor_external_id": "nobody"}
    assert_problem(
        await api.post(f"{API}/payment-requests", json=unknown, headers=auth), 422, "debtor_external_id"
    )
    assert_problem(
        await api.post(f"{API}/payment-requests", json={**body, "amount": "0"}, headers=auth), 422, "amount"
    )
