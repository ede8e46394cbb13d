"""What the chat adapters tell core about a chat: it wrote to us, or it blocked us.

``record_inbound`` keeps the last inbound time per chat (WhatsApp's 24-hour window, see
:func:`window_open`). ``mark_blocked`` marks every contact point that is this chat as ``blocked``,
so that delivery skips it and falls back to the next channel (core/messaging/delivery.py), and writes
an audit event per point. A chat that writes to us again is no longer blocked: ``record_inbound``
clears the mark (a Telegram user who unblocked the bot and pressed Start).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import SYSTEM, Actor
from core.channels import repository as repo

WINDOW = timedelta(hours=24)
BLOCKED = "blocked"
UNBLOCKED = "unblocked"
KIND_OF_CHANNEL = {"telegram": "telegram", "whatsapp": "whatsapp"}


async def record_inbound(session: AsyncSession, channel: str, chat_id: str, at: datetime) -> None:
    """The chat wrote to us at ``at``; a contact point marked blocked for it is usable again."""
    kind = KIND_OF_CHANNEL.get(channel)
    if kind is None:
        await repo.touch(session, channel, chat_id, at)
        return
    unblocked = await repo.touch_and_set_status(
        session, channel, chat_id, at, kind=kind, status=BLOCKED, new_status=UNBLOCKED
    )
    await audit_unblocked(session, chat_id, unblocked)


def inbound_params(channel: str, chat_id: str, at: datetime) -> dict[str, Any]:
    """:func:`record_inbound` as the binds of ``repository.touch_and_set_status_statement()``, for a
    caller that runs that statement inside its own and then passes the ids it returned to
    :func:`audit_unblocked`. A channel without contact points gets a kind that no point has, so
    only its window is touched (as :func:`record_inbound` does)."""
    kind = KIND_OF_CHANNEL.get(channel, "")
    return {
        "w_channel": channel,
        "w_chat_id": chat_id,
        "w_at": at,
        **repo.status_params(chat_id, kind=kind, status=BLOCKED, new_status=UNBLOCKED),
    }


async def audit_unblocked(session: AsyncSession, chat_id: str, point_ids: Iterable[uuid.UUID]) -> None:
    """An audit event per contact point of the chat that is usable again."""
    for point_id in point_ids:
        await audit.record(
            session,
            Actor("debtor", chat_id),
            "contact_point.unblocked",
            "contact_point",
            point_id,
            before={"last_delivery_status": BLOCKED},
            after={"last_delivery_status": UNBLOCKED},
        )


async def last_inbound(session: AsyncSession, channel: str, chat_id: str) -> datetime | None:
    return await repo.last_inbound(session, channel, chat_id)


async def window_open(
    session: AsyncSession, channel: str, chat_id: str, now: datetime, *, window: timedelta = WINDOW
) -> bool:
    """True when the chat wrote to us less than ``window`` ago (free-form messages are allowed)."""
    last = await repo.last_inbound(session, channel, chat_id)
    return last is not None and now - last < window


async def mark_blocked(
    session: AsyncSession, channel: str, chat_id: str, at: datetime, *, reason: str = ""
) -> int:
    """The chat blocked us (Telegram 403): mark its contact points; returns how many changed."""
    kind = KIND_OF_CHANNEL.get(channel, channel)
    changed = 0
    for point in await repo.points_at(session, kind, chat_id):
        if point.last_delivery_status == BLOCKED:
            continue
        before = point.last_delivery_status
        await repo.set_point_status(session, point.id, BLOCKED, at)
        await audit.record(
            session,
            SYSTEM,
            "contact_point.blocked",
            "contact_point",
            point.id,
            before={"last_delivery_status": before},
            after={"last_delivery_status": BLOCKED, "reason": reason[:200]},
        )
        changed += 1
    return changed
