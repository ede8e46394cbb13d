"""Input types for refunds and personal payment requests (REST v1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.validation import AmountText, Currency, ExternalId, minor_for

StaffId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@-]+$")]


class RefundIn(BaseModel):
    """POST /api/v1/refunds."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    payment_id: Annotated[str, Field(min_length=1, max_length=64, description="tr_… or our PSP payment id")]
    currency: Currency | None = Field(default=None, description="required with amount")
    amount: AmountText | None = Field(default=None, description="omitted: everything still refundable")
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    requested_by: StaffId = Field(description="the staff member asking (limits apply per staff member)")

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if info.data.get("currency") is None and "currency" not in info.data:
                return value  # the currency's own error is reported
            if info.data.get("currency") is None:
                raise ValueError("give the currency with the amount")
            minor_for(value, info)
        return value


class RefundDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    by: StaffId = Field(description="the staff member deciding")
    reason: Annotated[str, Field(max_length=500)] | None = None


class PaymentRequestIn(BaseModel):
    """POST /api/v1/payment-requests."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    debtor_external_id: ExternalId
    currency: Currency
    amount: AmountText
    reason: Annotated[str, Field(min_length=1, max_length=255)]
    tone: Literal["friendly", "neutral", "firm"] = "neutral"

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str, info: ValidationInfo) -> str:
        minor_for(value, info)
        return value
