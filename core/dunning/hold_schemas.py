"""Input types for invoice holds: pause, promise to pay, dispute."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.validation import AmountText, Currency, minor_for


class InvoicePauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]
    until: date | None = Field(default=None, description="last day of the pause; omitted: until resumed")


class PromiseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: date
    currency: Currency | None = None
    amount: AmountText | None = Field(default=None, description="omitted: the whole open amount")

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            minor_for(value, info)
        return value


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, Field(min_length=1, max_length=1000)]
