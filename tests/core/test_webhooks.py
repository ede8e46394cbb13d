"""Outbound webhooks: events from the domain, signed deliveries to a local receiver, retries."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.dunning.sweep import sweep
from core.events import service as events
from core.events.models import DeliveryState, Event, WebhookDelivery
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from core.ports import FixedClock
from tests import factories
from tests.factories import TEST_ACTOR
from tests.fakes.sms import sms_gateway

SECRET = "whsec-test"


async def test_stage_and_payment_events_reach_the_endpoint_signed(db: Database) -> None:
    d = await factories.debtor(db, "HOOK-1")
    inv = await factories.invoice(db, d, due_date=date(2026, 11, 1))
    now = factories.at("2026-11-24")
    async with db.session_scope() as s:
        await sweep(s, now=now)
        await ledger.record_payment(
            s,
            # 100.00 plus the second reminder's fee the sweep just charged
            PaymentIn(debtor_external_id=d, invoice_external_id=inv, currency="EUR", amount="115.00"),
            actor=TEST_ACTOR,
            today=now.date(),
        )
    async with sms_gateway(any_json=True) as receiver, httpx.AsyncClient() as client:
        async with db.session_scope() as s:
            assert await events.fan_out(s, [receiver.url], now) == 2
        stats = await events.deliver(db, client, secret=SECRET, clock=FixedClock(now))
        assert (stats.claimed, stats.delivered) == (2, 2)
        got = {r.json["type"]: r for r in receiver.requests}
    assert set(got) == {"dunning.stage_reached", "invoice.paid"}
    stage = got["dunning.stage_reached"]
    assert stage.json["subject"] == inv
    assert stage.json["data"] == {
        "invoice": inv,
        "number": stage.json["data"]["number"],
        "debtor": "HOOK-1",
        "stage": "second_reminder",
    }
    ts = int(stage.headers["X-Duebot-Timestamp"])
    assert events.verify(SECRET, ts, stage.body, stage.headers["X-Duebot-Signature"])
    assert not events.verify("another secret", ts, stage.body, stage.headers["X-Duebot-Signature"])
    assert json.loads(stage.body)["id"]  # the event id, stable for de-duplication
    async with httpx.AsyncClient() as client:
        assert (
            await events.deliver(db, client, secret=SECRET, clock=FixedClock(now))
        ).claimed == 0  # nothing twice


async def test_a_failing_endpoint_is_retried_with_backoff_under_the_same_delivery_id(db: Database) -> None:
    now = factories.at("2026-11-24")
    async with db.session_scope() as s:
        await events.emit_many(s, "invoice.paid", [("INV-X", {"invoice": "INV-X"})])
    async with sms_gateway(any_json=True) as receiver, httpx.AsyncClient() as client:
        async with db.session_scope() as s:
            await events.fan_out(s, [receiver.url], now)
        receiver.fail_next(500)
        first = await events.deliver(db, client, secret=SECRET, clock=FixedClock(now))
        assert (first.delivered, first.retried) == (0, 1)
        async with db.sessionmaker() as s:
            row = (await s.execute(select(WebhookDelivery))).scalars().one()
            assert (row.status, row.attempts, row.response_code) == (DeliveryState.pending, 1, 500)
            assert row.next_attempt_at >= now + timedelta(seconds=events.BASE_DELAY)
        assert (
            await events.deliver(db, client, secret=SECRET, clock=FixedClock(now))
        ).claimed == 0  # not yet due
        later = FixedClock(row.next_attempt_at)
        assert (await events.deliver(db, client, secret=SECRET, clock=later)).delivered == 1
        ids = {r.headers["X-Duebot-Delivery"] for r in receiver.requests}
    assert len(receiver.requests) == 2 and len(ids) == 1


async def test_without_endpoints_events_stay_as_a_log(db: Database) -> None:
    async with db.session_scope() as s:
        await events.emit_many(s, "promise.broken", [("INV-Y", {"invoice": "INV-Y"})])
        assert await events.fan_out(s, [], factories.at("2026-11-24")) == 0
    async with db.sessionmaker() as s:
        assert (await s.execute(select(col(Event.dispatched)))).scalars().all() == [True]
        assert (await s.execute(select(WebhookDelivery))).scalars().all() == []


async def test_the_sweep_leaves_its_stage_events_to_the_fan_out_which_writes_them_once(db: Database) -> None:
    d = await factories.debtor(db, "HOOK-2")
    invs = [await factories.invoice(db, d, due_date=date(2026, 11, 1)) for _ in range(2)]
    now = factories.at("2026-11-24")
    async with db.session_scope() as s:
        result = await sweep(s, now=now)
    assert result.actions == 2
    async with db.sessionmaker() as s:  # committed with the sweep: one work item, not one per invoice
        rows = (await s.execute(select(col(Event.type), col(Event.subject)))).all()
        assert rows == [("dunning.stages_pending", str(result.sweep_id))]
    async with sms_gateway(any_json=True) as receiver, httpx.AsyncClient() as client:
        for _ in range(2):  # a second fan-out finds nothing left to write
            async with db.session_scope() as s:
                await events.fan_out(s, [receiver.url], now)
        await events.deliver(db, client, secret=SECRET, clock=FixedClock(now))
        assert sorted(r.json["subject"] for r in receiver.requests) == sorted(invs)
        assert {r.json["type"] for r in receiver.requests} == {"dunning.stage_reached"}
        assert {r.json["created_at"] for r in receiver.requests} == {now.isoformat()}  # dated at the sweep
    async with db.sessionmaker() as s:
        types = (await s.execute(select(col(Event.type), col(Event.dispatched)))).all()
        assert types == [("dunning.stage_reached", True)] * 2
