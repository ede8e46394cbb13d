"""Input and output types for debtors."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.debtors.models import Channel
from core.validation import Email, LocaleCode, Phone, TimezoneName


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: str | None = Field(default=None, max_length=255)
    line2: str | None = Field(default=None, max_length=255)
    postal_code: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=128)
    country: str | None = Field(default=None, min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")


class DebtorIn(BaseModel):
    """PUT /api/v1/debtors/{external_id}: a full replacement of the debtor's master data."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    email: Email | None = None
    phone: Phone | None = None
    locale: LocaleCode = "en"
    timezone: TimezoneName = "Europe/Amsterdam"
    segment: str = Field(default="default", min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    address: Address | None = None
    channel_order: list[Channel] | None = Field(
        default=None, description="preferred delivery channels, best first"
    )

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value

    @field_validator("channel_order")
    @classmethod
    def _unique(cls, value: list[Channel] | None) -> list[Channel] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("channel_order lists a channel twice")
        return value


class ContactPointOut(BaseModel):
    kind: str
    address: str
    verified: bool
    consent: bool
    opted_out: bool
    last_delivery_status: str | None = None


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)
    until: date | None = Field(
        default=None, description="last day of the pause (inclusive); omitted means until resumed"
    )
