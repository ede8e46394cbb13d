"""Input and output types for payments, credit notes and balances."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.validation import AmountText, Currency, ExternalId, minor_for


class PaymentIn(BaseModel):
    """POST /api/v1/payments: a payment received outside the PSP (bank transfer, cash, cheque)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    debtor_external_id: ExternalId
    invoice_external_id: ExternalId | None = Field(
        default=None, description="allocate to this invoice; without it, oldest due first"
    )
    currency: Currency
    amount: AmountText
    received_on: date | None = None
    method: Annotated[str, Field(pattern=r"^(bank_transfer|cash|cheque|card|agency|other)$")] = Field(
        default="bank_transfer",
        description="`agency`: collected by the collection agency (booked as agency_payment)",
    )
    reference: Annotated[str, Field(max_length=255)] | None = None

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str, info: ValidationInfo) -> str:
        minor_for(value, info)
        return value


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    invoice_external_id: ExternalId
    number: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    currency: Currency
    amount: AmountText
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    issued_on: date | None = None

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str, info: ValidationInfo) -> str:
        minor_for(value, info)
        return value
