"""What the Telegram and WhatsApp sender tests share: a debtor with a reminder queued on a chat channel,
one delivery run, the e-mail fallback and the reminder as the outbox holds it."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import select
from sqlmodel import col

from bots.email.sender import EmailSender, parse_smtp_url
from core.db import Database
from core.debtors import service as debtors
from core.dunning.sweep import sweep
from core.messaging.delivery import DeliveryStats, deliver
from core.messaging.models import Message
from core.messaging.ratelimit import RateLimiter
from core.ports import FixedClock, MessageSender
from tests import factories
from tests.bots.chat import add_contact_point
from tests.conftest import NOW
from tests.fakes.smtp import FakeSmtpServer

CREDITOR = "Acme Supplies B.V."
DUE = date(2026, 11, 17)  # at NOW the first reminder is due


def email_sender(smtp: FakeSmtpServer) -> EmailSender:
    """The fallback channel: e-mail over the fake SMTP server."""
    return EmailSender(parse_smtp_url(smtp.url()), sender=f"{CREDITOR} <billing@acme.test>")


async def remind_on(db: Database, channel: str, address: str) -> str:
    """A debtor who prefers ``channel`` (then e-mail), with an overdue invoice swept into a queued reminder."""
    d = await factories.debtor(db, channel_order=[channel, "email"])
    await add_contact_point(db, d, channel, address)
    await factories.batch(db, [factories.invoice_row(d, due_date=DUE)])
    async with db.session_scope() as s:
        await sweep(s, now=NOW)
    return d


async def run(
    db: Database, senders: dict[str, MessageSender], clock: FixedClock, limiter: RateLimiter | None
) -> DeliveryStats:
    """One delivery run of the outbox, as the worker does it."""
    return await deliver(
        db, senders, clock=clock, limiter=limiter, creditor_name=CREDITOR, rng=random.Random(7)
    )


async def reminder_of(db: Database, debtor_external_id: str) -> Message:
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, debtor_external_id)
        stmt = select(Message).where(col(Message.debtor_id) == debtor.id, col(Message.kind) == "reminder")
        return (await s.scalars(stmt)).one()
