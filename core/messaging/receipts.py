"""Delivery receipts: a provider tells what became of a message it accepted.

They come from WhatsApp statuses (sent, delivered, read, failed), SMS gateway callbacks, bounces of
SMTP mail and Telegram errors. A message only moves forward: ``sent → delivered → read``, or from
``sent``/``delivered`` to ``failed``. A receipt that would move it back (a late ``delivered`` after
``read``), one for a message that is not out yet or already ended, and one for a provider id we do not
know are ignored. A ``failed`` receipt also marks the contact point the message went to (``bounced``
or ``blocked`` when the error code says so, else ``failed``), so that later messages fall back.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core.base import utcnow
from core.messaging import repository as repo
from core.messaging.delivery import contact_status
from core.messaging.models import MessageStatus
from core.ports import DeliveryError

log = structlog.get_logger(__name__)

RANK = {MessageStatus.sent.value: 1, MessageStatus.delivered.value: 2, MessageStatus.read.value: 3}
FAILABLE = (MessageStatus.sent.value, MessageStatus.delivered.value)


async def apply_receipt(
    session: AsyncSession,
    channel: str,
    provider_id: str,
    status: str,
    error: str | None = None,
    *,
    code: str = "",
    now: datetime | None = None,
) -> bool:
    """Apply one receipt; True when it changed the message. The caller commits.

    ``status``: sent, delivered, read or failed (anything else is ignored). ``error`` and ``code``
    describe a failure (``code`` as in :class:`core.ports.DeliveryError`, e.g. "403", "bounced").
    """
    status = status.strip().lower()
    if status not in RANK and status != MessageStatus.failed.value:
        log.info("receipt.unknown_status", channel=channel, provider_id=provider_id, status=status)
        return False
    message = await repo.by_provider_id(session, channel, provider_id)
    if message is None:
        log.info("receipt.unknown_message", channel=channel, provider_id=provider_id, status=status)
        return False
    now = now or utcnow()
    current = message.status
    if status == MessageStatus.failed.value:
        if current not in FAILABLE:
            return False
        reason = error or "the provider reported the message as failed"
        moved = await repo.move_status(
            session, message.id, current, status=status, error=f"{channel}: {reason}", updated_at=now
        )
        point = (message.payload.get("delivery") or {}).get("to")
        if moved and point:
            failure = DeliveryError(reason, permanent=True, code=code)
            await repo.mark_points(session, [(uuid.UUID(point), contact_status(failure))], now)
        return moved
    if current not in RANK or RANK[status] <= RANK[current]:
        return False  # not out yet, already ended, or a step back
    return await repo.move_status(session, message.id, current, status=status, updated_at=now)
