"""The outbox: every message to a debtor, from decision to delivery receipt."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class MessageStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


# The columns the set-based writers (the dunning and plan sweeps, invoice delivery) queue a message with.
QUEUED_COLUMNS = (
    "id",
    "debtor_id",
    "kind",
    "template",
    "tone",
    "channels",
    "status",
    "attempts",
    "next_attempt_at",
    "sweep_id",
    "payload",
    "created_at",
    "updated_at",
)


class Message(SQLModel, table=True):
    __tablename__ = "messages"

    id: uuid.UUID = id_field()
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, index=True)
    kind: str = Field(max_length=32, nullable=False)  # reminder, invoice, …
    template: str = Field(max_length=64, nullable=False)
    tone: str = Field(max_length=16, nullable=False)
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    channel: str | None = Field(default=None, max_length=16)  # the one that delivered (or was last tried)
    status: str = Field(default=MessageStatus.queued, max_length=16, nullable=False)
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sweep_id: uuid.UUID | None = Field(default=None)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    provider_id: str | None = Field(default=None, max_length=255)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_field()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = created_field()

    __table_args__ = (
        Index(
            "ix_messages_due",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index("ix_messages_sweep_debtor", "sweep_id", "debtor_id"),
        Index(
            "ix_messages_leases",
            "updated_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        Index("ix_messages_provider", "channel", "provider_id"),
    )
