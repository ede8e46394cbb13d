"""Staff → debtor: a message from a person (a hand-off answer, a plan decision) into the chat.

``relay_to_debtor`` puts the message on the outbox (``messages``, kind ``chat``) for the chat's
channel; the delivery worker sends it to the chat with that channel's MessageSender (no contact
rules: it answers the debtor's own request). For the demo chat page there is no sender: the message
is stored as sent, and the page fetches it (``pending_for_demo``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import Actor
from core.conversation import repository as repo
from core.conversation import texts
from core.conversation.models import Chat
from core.debtors.models import Debtor
from core.errors import NotFound
from core.messaging.models import Message, MessageStatus

KIND = "chat"
TEMPLATE = "chat_staff_message"


async def relay_to_debtor(
    session: AsyncSession,
    chat_or_debtor: Chat | uuid.UUID,
    text: str,
    *,
    staff: Actor,
    now: datetime,
) -> Message:
    """Queue ``text`` from ``staff`` for the chat (or the debtor's most recent chat)."""
    if isinstance(chat_or_debtor, Chat):
        chat: Chat | None = chat_or_debtor
    else:
        chats = await repo.chats_of(session, chat_or_debtor)
        chat = chats[0] if chats else None
    if chat is None or chat.debtor_id is None:
        raise NotFound("this debtor has no linked chat to answer in", "no_chat")
    debtor = await session.get(Debtor, chat.debtor_id)
    assert debtor is not None
    body = texts.render(
        "prefs.staff_message", debtor.locale, text=text.strip()[:3000], staff=staff.name or ""
    )
    demo = chat.channel == "demo"
    message = Message(
        debtor_id=debtor.id,
        kind=KIND,
        template=TEMPLATE,
        tone="neutral",
        channels=[chat.channel],
        channel=chat.channel,
        status=MessageStatus.sent.value if demo else MessageStatus.queued.value,
        next_attempt_at=None if demo else now,
        sent_at=now if demo else None,
        payload={"chat_id": chat.chat_id, "text": body, "staff": staff.label},
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    await session.flush()
    await audit.record(
        session,
        staff,
        "chat.staff_message",
        "debtor",
        debtor.external_id,
        after={"channel": chat.channel, "message_id": str(message.id)},
    )
    return message


async def pending_for_demo(session: AsyncSession, chat_id: str, after: datetime | None) -> list[Message]:
    """Staff messages for a demo chat since ``after`` (the page polls with its last timestamp)."""
    stmt = select(Message).where(
        col(Message.kind) == KIND, col(Message.channel) == "demo", col(Message.debtor_id).is_not(None)
    )
    if after is not None:
        stmt = stmt.where(col(Message.created_at) > after)
    found = (await session.scalars(stmt.order_by(col(Message.created_at)))).all()
    return [m for m in found if m.payload.get("chat_id") == chat_id]
