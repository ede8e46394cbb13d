"""Shared by the Telegram and WhatsApp tests: a small conversation handler, contact points, look-ups.

The handler stands in for the conversation engine (another module) so that these tests exercise the
channel translation only: it answers what it received, offers two options, and sends the invoice
PDF and a QR image when asked for ``/invoices`` or the ``invoices`` option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.audit import AuditEvent
from core.channels.models import ChatWindow
from core.conversation.schemas import Attachment, Inbound, Option, Reply
from core.db import Database
from core.debtors import service as debtors
from core.debtors.models import ContactPoint

PDF = b"%PDF-1.4\n% an invoice\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n a QR code"
YES_NO = (Option("yes", "Yes"), Option("no", "No"))


@dataclass
class EchoHandler:
    """Records every Inbound; answers "You said: …" / "You chose: …" with Yes/No buttons."""

    seen: list[Inbound] = field(default_factory=list)

    async def __call__(self, session: AsyncSession, inbound: Inbound) -> list[Reply]:
        self.seen.append(inbound)
        if inbound.text == "/invoices" or inbound.choice == "invoices":
            return [
                Reply(
                    "invoices",
                    "Here is invoice 2026-00042.",
                    attachments=(
                        Attachment(
                            "document", "2026-00042.pdf", PDF, "application/pdf", caption="Invoice 2026-00042"
                        ),
                        Attachment("image", "pay.png", PNG, "image/png", caption="Scan to pay"),
                    ),
                )
            ]
        said = f"You said: {inbound.text}" if inbound.text is not None else f"You chose: {inbound.choice}"
        return [Reply("echo", said, options=YES_NO)]


async def add_contact_point(db: Database, debtor_external_id: str, kind: str, address: str) -> None:
    async with db.session_scope() as s:
        debtor = await debtors.get(s, debtor_external_id)
        s.add(ContactPoint(debtor_id=debtor.id, kind=kind, address=address, verified=True))


async def point(db: Database, kind: str, address: str) -> ContactPoint:
    async with db.sessionmaker() as s:
        stmt = select(ContactPoint).where(
            col(ContactPoint.kind) == kind, col(ContactPoint.address) == address
        )
        return (await s.scalars(stmt)).one()


async def audit_actions(db: Database, entity_id: object) -> list[str]:
    async with db.sessionmaker() as s:
        stmt = (
            select(AuditEvent).where(col(AuditEvent.entity_id) == str(entity_id)).order_by(col(AuditEvent.at))
        )
        return [e.action for e in (await s.scalars(stmt)).all()]


async def windows(db: Database) -> list[ChatWindow]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(ChatWindow))).all())


class Waits(list[float]):
    """The back-off waits a bot asked for, recorded instead of slept: pass ``waits.sleep`` as its sleep."""

    async def sleep(self, seconds: float) -> None:
        self.append(seconds)
