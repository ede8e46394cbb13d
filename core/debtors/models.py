"""Debtors and their contact points."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class ContactKind(StrEnum):
    email = "email"
    phone = "phone"
    telegram = "telegram"
    whatsapp = "whatsapp"


class Channel(StrEnum):
    """Delivery channels; a phone contact point serves SMS."""

    email = "email"
    sms = "sms"
    telegram = "telegram"
    whatsapp = "whatsapp"


DEFAULT_CHANNEL_ORDER: list[str] = [Channel.email, Channel.whatsapp, Channel.telegram, Channel.sms]


class Debtor(SQLModel, table=True):
    __tablename__ = "debtors"

    id: uuid.UUID = id_field()
    external_id: str = Field(max_length=128, unique=True, nullable=False)
    name: str = Field(max_length=255, nullable=False)
    locale: str = Field(default="en", max_length=16, nullable=False)
    timezone: str = Field(default="Europe/Amsterdam", max_length=64, nullable=False)
    segment: str = Field(default="default", max_length=64, nullable=False)
    address: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    channel_order: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHANNEL_ORDER), sa_column=Column(JSONType, nullable=False)
    )
    dunning_paused: bool = Field(default=False, nullable=False)
    paused_until: date | None = Field(default=None)
    pause_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()

    __table_args__ = (Index("ix_debtors_name", "name"),)


class ContactPoint(SQLModel, table=True):
    __tablename__ = "contact_points"

    id: uuid.UUID = id_field()
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, ondelete="CASCADE")
    kind: str = Field(max_length=16, nullable=False)
    address: str = Field(max_length=320, nullable=False)
    verified: bool = Field(default=False, nullable=False)
    consent: bool = Field(default=True, nullable=False)
    opted_out: bool = Field(default=False, nullable=False)
    opted_out_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_delivery_status: str | None = Field(default=None, max_length=32)
    last_delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = created_field()

    __table_args__ = (
        UniqueConstraint("debtor_id", "kind", "address", name="uq_contact_points_debtor_kind_address"),
        Index("ix_contact_points_kind_address", "kind", "address"),
    )
