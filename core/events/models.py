"""Domain events for the outside world, and their deliveries to webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class EventType(StrEnum):
    stage_reached = "dunning.stage_reached"
    invoice_paid = "invoice.paid"
    promise_broken = "promise.broken"
    handed_to_agency = "invoice.handed_to_agency"


class Event(SQLModel, table=True):
    __tablename__ = "events"

    id: uuid.UUID = id_field()
    type: str = Field(max_length=64, nullable=False)
    subject: str = Field(max_length=128, nullable=False)  # the invoice's external id, usually
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    dispatched: bool = Field(default=False, nullable=False)  # deliveries made for the endpoints
    created_at: datetime = created_field()

    __table_args__ = (
        Index("ix_events_subject", "subject", "created_at"),
        Index(
            "ix_events_undispatched",
            "created_at",
            postgresql_where=text("NOT dispatched"),
            sqlite_where=text("NOT dispatched"),
        ),
    )


class DeliveryState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"  # gave up after the last attempt


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"

    id: uuid.UUID = id_field()
    event_id: uuid.UUID = Field(foreign_key="events.id", nullable=False, ondelete="CASCADE")
    url: str = Field(max_length=500, nullable=False)
    status: str = Field(default=DeliveryState.pending, max_length=16, nullable=False)
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    response_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        UniqueConstraint("event_id", "url", name="uq_webhook_deliveries_event_url"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
