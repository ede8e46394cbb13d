"""Every service call that changes state leaves an audit event: who, what, before and after."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from core import audit
from core.access import service as access
from core.audit import Actor, AuditEvent
from core.db import Database
from core.debtors import service as debtors
from core.debtors.schemas import DebtorIn
from core.errors import DomainError
from core.invoices import intake
from core.invoices import service as invoices
from core.ledger import service as ledger
from core.ledger.schemas import CreditNoteIn, PaymentIn
from tests import factories

TODAY = date(2026, 11, 24)


@dataclass
class Trail:
    """The events of one actor, made unique per test."""

    db: Database
    actor: Actor

    async def events(self, action: str | None = None) -> list[AuditEvent]:
        stmt = select(AuditEvent).where(col(AuditEvent.actor_id) == self.actor.id)
        if action:
            stmt = stmt.where(col(AuditEvent.action) == action)
        async with self.db.sessionmaker() as s:
            found = list((await s.scalars(stmt.order_by(col(AuditEvent.at), col(AuditEvent.id)))).all())
        for e in found:
            assert (e.actor_type, e.actor_id, e.actor_name) == (self.actor.type, self.actor.id, "Ann")
        return found

    async def one(self, action: str) -> AuditEvent:
        found = await self.events(action)
        assert len(found) == 1, [e.action for e in await self.events()]
        return found[0]


@pytest.fixture
def trail(db: Database) -> Trail:
    return Trail(db, Actor("staff", f"U{uuid.uuid4().hex[:10]}", "Ann"))


async def test_debtor_create_update_and_no_op(db: Database, trail: Trail) -> None:
    async with db.session_scope() as s:
        await debtors.upsert(s, "AUD-1", DebtorIn(name="Acme", email="ap@acme.example"), trail.actor)
    created = await trail.one("debtor.created")
    assert (created.entity, created.entity_id, created.before) == ("debtor", "AUD-1", None)
    assert created.after is not None
    assert (created.after["name"], created.after["email"]) == ("Acme", "ap@acme.example")

    async with db.session_scope() as s:
        await debtors.upsert(s, "AUD-1", DebtorIn(name="Acme BV", email="ap@acme.example"), trail.actor)
    updated = await trail.one("debtor.updated")
    assert updated.before is not None and updated.after is not None
    assert (updated.before["name"], updated.after["name"]) == ("Acme", "Acme BV")

    async with db.session_scope() as s:  # the same data again changes nothing, so records nothing
        await debtors.upsert(s, "AUD-1", DebtorIn(name="Acme BV", email="ap@acme.example"), trail.actor)
    assert len(await trail.events()) == 2


async def test_pause_and_resume(db: Database, trail: Trail) -> None:
    d = await factories.debtor(db)
    async with db.session_scope() as s:
        await debtors.pause(s, d, reason="dispute", until=date(2026, 12, 31), today=TODAY, actor=trail.actor)
    paused = await trail.one("debtor.paused")
    assert paused.before == {"paused": False, "until": None, "reason": None}
    assert paused.after == {"paused": True, "until": "2026-12-31", "reason": "dispute"}

    async with db.session_scope() as s:
        await debtors.resume(s, d, actor=trail.actor)
        await debtors.resume(s, d, actor=trail.actor)  # already resumed: no second event
    resumed = await trail.one("debtor.resumed")
    assert (resumed.before, resumed.after) == (paused.after, paused.before)


async def test_batch_created_approved_and_rejected(db: Database, trail: Trail) -> None:
    d = await factories.debtor(db)
    rows = [factories.invoice_row(d, amount_minor=1_000), factories.invoice_row(d, amount_minor=2_000)]
    async with db.session_scope() as s:
        result = await intake.create_batch(s, rows, actor=trail.actor, source="api", max_items=10)
    batch_id = str(result.batch.id)
    created = await trail.one("batch.created")
    assert (created.entity, created.entity_id, created.before) == ("invoice_batch", batch_id, None)
    assert created.after == {
        "status": "pending_approval",
        "count": 2,
        "totals": {"EUR": 3_000},
        "source": "api",
    }
    inv_events = await trail.events("invoice.created")
    assert sorted(e.entity_id for e in inv_events) == sorted(r.external_id for r in rows)
    assert all(e.after and e.after["status"] == "pending_approval" for e in inv_events)

    async with db.session_scope() as s:
        await invoices.approve(s, result.batch.id, actor=trail.actor, note="looks right")
    approved = await trail.one("batch.approved")
    assert approved.before == {"status": "pending_approval"}
    assert approved.after == {"status": "approved", "note": "looks right"}
    per_invoice = await trail.events("invoice.approved")
    assert {(e.entity_id, str(e.before), str(e.after)) for e in per_invoice} == {
        (r.external_id, "{'status': 'pending_approval'}", "{'status': 'approved'}") for r in rows
    }

    other = [factories.invoice_row(d)]
    async with db.session_scope() as s:
        second = await intake.create_batch(s, other, actor=trail.actor, source="api", max_items=10)
        await invoices.reject(s, second.batch.id, actor=trail.actor, note="duplicate send")
    rejected = await trail.one("batch.rejected")
    assert (rejected.entity_id, rejected.after) == (
        str(second.batch.id),
        {"status": "rejected", "note": "duplicate send"},
    )
    (gone,) = await trail.events("invoice.rejected")
    assert gone.entity_id == other[0].external_id
    assert gone.before == {"status": "pending_approval", "batch_id": str(second.batch.id)}
    assert gone.after is None


async def test_a_decision_taken_twice_is_refused_and_recorded_once(db: Database, trail: Trail) -> None:
    d = await factories.debtor(db)
    async with db.session_scope() as s:
        result = await intake.create_batch(
            s, [factories.invoice_row(d)], actor=trail.actor, source="api", max_items=10
        )
        await invoices.approve(s, result.batch.id, actor=trail.actor)
    with pytest.raises(DomainError) as exc:
        async with db.session_scope() as s:
            await invoices.approve(s, result.batch.id, actor=trail.actor)
    assert exc.value.code == "already_decided"
    assert "already approved by staff:" in exc.value.message
    assert len(await trail.events("batch.approved")) == 1


async def test_refused_work_leaves_no_events(db: Database, trail: Trail) -> None:
    rows = [factories.invoice_row("NOBODY-AT-ALL")]
    with pytest.raises(DomainError):
        async with db.session_scope() as s:
            await intake.create_batch(s, rows, actor=trail.actor, source="api", max_items=10)
    assert await trail.events() == []


async def test_payment_and_the_invoices_it_settles(db: Database, trail: Trail) -> None:
    d = await factories.debtor(db)
    first = await factories.invoice(db, d, amount_minor=3_000, due_date=date(2026, 10, 1))
    second = await factories.invoice(db, d, amount_minor=5_000, due_date=date(2026, 10, 15))
    data = PaymentIn(debtor_external_id=d, currency="EUR", amount="40.00", reference="bank 123")
    async with db.session_scope() as s:
        result = await ledger.record_payment(s, data, actor=trail.actor, today=TODAY)

    recorded = await trail.one("payment.recorded")
    assert (recorded.entity, recorded.entity_id, recorded.before) == ("payment", str(result.payment.id), None)
    assert recorded.after == {
        "debtor": d,
        "amount": "40.00",
        "currency": "EUR",
        "method": "bank_transfer",
        "reference": "bank 123",
        "allocations": [{"invoice": first, "amount": "30.00"}, {"invoice": second, "amount": "10.00"}],
    }
    paid = await trail.one("invoice.paid")
    assert paid.entity_id == first
    # The before state is the status the invoice really had (booked and delivered: open).
    assert paid.before == {"status": "open"}
    assert paid.after == {"status": "paid", "payment_id": str(result.payment.id)}


async def test_credit_note_and_settlement(db: Database, trail: Trail) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=2_500)
    data = CreditNoteIn(invoice_external_id=inv, currency="EUR", amount="25.00", reason="returned goods")
    async with db.session_scope() as s:
        note = await ledger.record_credit_note(s, data, actor=trail.actor, today=TODAY)
    issued = await trail.one("credit_note.issued")
    assert (issued.entity, issued.entity_id) == ("credit_note", note.number)
    assert issued.after == {"invoice": inv, "amount": "25.00", "currency": "EUR", "reason": "returned goods"}
    settled = await trail.one("invoice.settled")
    assert settled.entity_id == inv
    assert settled.before == {"status": "open"}
    assert settled.after == {"status": "paid", "credit_note": note.number}


async def test_api_key_created_and_revoked_share_one_trail(db: Database, trail: Trail) -> None:
    async with db.session_scope() as s:
        _, key = await access.create_key(s, "erp", ["invoices:write"], trail.actor)
    created = await trail.one("api_key.created")
    assert created.after == {"name": "erp", "scopes": ["invoices:write"]}
    assert "key_hash" not in str(created.after)

    async with db.session_scope() as s:
        assert await access.revoke(s, key.prefix, trail.actor)
        assert not await access.revoke(s, key.prefix, trail.actor)  # already revoked: nothing to record
    revoked = await trail.one("api_key.revoked")
    assert revoked.entity_id == created.entity_id == str(key.id)
    assert revoked.before is not None and revoked.after is not None
    assert (revoked.before["revoked_at"], revoked.after["revoked_at"] is not None) == (None, True)

    async with db.sessionmaker() as s:
        history = await audit.trail(s, entity="api_key", entity_id=str(key.id))
    assert [e.action for e in history] == ["api_key.revoked", "api_key.created"]


async def test_trail_filters_by_entity(db: Database, trail: Trail) -> None:
    d = await factories.debtor(db)
    async with db.session_scope() as s:
        await debtors.pause(s, d, reason="holiday", until=None, today=TODAY, actor=trail.actor)
        await debtors.resume(s, d, actor=trail.actor)
    async with db.sessionmaker() as s:
        events: list[Any] = list(await audit.trail(s, entity="debtor", entity_id=d))
    assert [e.action for e in events] == ["debtor.resumed", "debtor.paused", "debtor.created"]
