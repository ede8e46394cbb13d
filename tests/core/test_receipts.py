"""Delivery receipts move a message forward only: sent → delivered → read, or → failed."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import select
from sqlmodel import col

from bots.sms.sender import SmsSender
from core.db import Database
from core.debtors import service as debtors
from core.debtors.models import ContactPoint
from core.dunning.sweep import sweep
from core.messaging.delivery import deliver
from core.messaging.models import Message
from core.messaging.receipts import apply_receipt
from core.ports import FixedClock
from tests import factories
from tests.conftest import NOW
from tests.fakes.sms import sms_gateway


async def _sent_by_sms(db: Database, clock: FixedClock) -> tuple[str, str]:
    """A reminder delivered through the fake SMS gateway: (debtor external id, provider id)."""
    d = await factories.debtor(db, email=None, phone="+31612345678")
    await factories.invoice(db, d, due_date=date(2026, 11, 17))
    async with db.session_scope() as s:
        await sweep(s, now=NOW)
    async with sms_gateway() as gateway, SmsSender(gateway.url, clock=clock) as sms:
        stats = await deliver(
            db, {"sms": sms}, clock=clock, limiter=None, creditor_name="Acme", rng=random.Random(1)
        )
    assert stats.sent == 1
    message = await _message(db, d)
    assert message.provider_id is not None
    return d, message.provider_id


async def _message(db: Database, debtor_external_id: str) -> Message:
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, debtor_external_id)
        reminders = select(Message).where(
            col(Message.debtor_id) == debtor.id, col(Message.kind) == "reminder"
        )
        return (await s.scalars(reminders)).one()


async def _receipt(db: Database, provider_id: str, status: str, **kw: str) -> bool:
    async with db.session_scope() as s:
        return await apply_receipt(s, "sms", provider_id, status, now=NOW, **kw)


async def test_receipts_move_forward_and_never_back(db: Database, clock: FixedClock) -> None:
    d, provider_id = await _sent_by_sms(db, clock)

    assert await _receipt(db, provider_id, "delivered")
    assert await _receipt(db, provider_id, "read")
    assert not await _receipt(db, provider_id, "delivered")  # late: ignored
    assert not await _receipt(db, provider_id, "sent")
    assert not await _receipt(db, provider_id, "failed", error="too late")
    assert (await _message(db, d)).status == "read"


async def test_unknown_ids_statuses_and_channels_are_ignored(db: Database, clock: FixedClock) -> None:
    d, provider_id = await _sent_by_sms(db, clock)

    assert not await _receipt(db, "sms-does-not-exist", "delivered")
    assert not await _receipt(db, provider_id, "exploded")
    async with db.session_scope() as s:
        assert not await apply_receipt(s, "whatsapp", provider_id, "delivered")
    assert (await _message(db, d)).status == "sent"


async def test_a_failed_receipt_fails_the_message_and_marks_the_number(
    db: Database, clock: FixedClock
) -> None:
    d, provider_id = await _sent_by_sms(db, clock)
    assert await _receipt(db, provider_id, "delivered")

    assert await _receipt(db, provider_id, "failed", error="handset unreachable", code="blocked")

    message = await _message(db, d)
    assert (message.status, message.error) == ("failed", "sms: handset unreachable")
    async with db.sessionmaker() as s:
        point = (await s.scalars(select(ContactPoint).where(col(ContactPoint.kind) == "phone"))).one()
    assert point.last_delivery_status == "blocked"
    assert not await _receipt(db, provider_id, "read")  # failed is final
