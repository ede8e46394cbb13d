"""Conversation state in our database: chats, one-time link tokens, inbound ids already handled.

State lives here (not in a bot framework's FSM), so that every channel, every API replica and the
worker's reminders share it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class Chat(SQLModel, table=True):
    """One chat on one channel (a Telegram chat, a WhatsApp number, a demo session).

    ``debtor_id`` is set once the chat is linked (token) or identified (invoice number + amount);
    until then the chat sees no debtor data. ``flow``/``step``/``data`` hold the dialogue in progress.
    ``failures`` holds the times (ISO) of failed identify attempts within the last hour.
    """

    __tablename__ = "chats"

    id: uuid.UUID = id_field()
    channel: str = Field(max_length=16, nullable=False)
    chat_id: str = Field(max_length=128, nullable=False)
    debtor_id: uuid.UUID | None = Field(
        default=None, foreign_key="debtors.id", nullable=True, index=True, ondelete="SET NULL"
    )
    locale: str = Field(default="en", max_length=16, nullable=False)
    flow: str | None = Field(default=None, max_length=32)
    step: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    failures: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    linked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_inbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()

    __table_args__ = (UniqueConstraint("channel", "chat_id", name="uq_chats_channel_chat_id"),)


class LinkToken(SQLModel, table=True):
    """A one-time deep-link token; only its SHA-256 is kept."""

    __tablename__ = "link_tokens"

    id: uuid.UUID = id_field()
    token_hash: str = Field(max_length=64, unique=True, nullable=False)
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, index=True, ondelete="CASCADE")
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: uuid.UUID | None = Field(default=None, foreign_key="chats.id", ondelete="SET NULL")
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()


class ChatInbound(SQLModel, table=True):
    """Provider message ids already handled per chat: a redelivered update is answered once."""

    __tablename__ = "chat_inbound"

    chat_pk: uuid.UUID = Field(foreign_key="chats.id", primary_key=True, ondelete="CASCADE")
    message_id: str = Field(max_length=128, primary_key=True)
    created_at: datetime = created_field()
