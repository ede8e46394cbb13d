"""Input and output types for invoices and batches. The CSV importer uses the same row type."""

from __future__ import annotations

import base64
import binascii
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from core.validation import AmountText, Currency, ExternalId, check_not_before, minor_for

MAX_PDF_BYTES = 5 * 1024 * 1024


class InvoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: ExternalId
    debtor_external_id: ExternalId
    number: Annotated[str, Field(min_length=1, max_length=64)]
    issue_date: date
    due_date: date
    currency: Currency
    amount: AmountText
    description: Annotated[str, Field(max_length=1000)] | None = None
    pdf_base64: str | None = Field(default=None, description="the invoice PDF, base64-encoded")

    # Filled by validation: minor units of ``amount`` and the decoded PDF.
    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, value: date, info: ValidationInfo) -> date:
        return check_not_before(value, info, "issue_date", "due_date")

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str, info: ValidationInfo) -> str:
        minor_for(value, info)
        return value

    @field_validator("pdf_base64")
    @classmethod
    def _pdf(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("invalid_base64", "pdf_base64 is not valid base64") from None
        if not raw.startswith(b"%PDF-"):
            raise PydanticCustomError("not_a_pdf", "pdf_base64 does not hold a PDF document")
        if len(raw) > MAX_PDF_BYTES:
            raise PydanticCustomError("too_large", "the PDF is larger than 5 MB")
        return value


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The intake refuses an empty batch with its own problem (empty_batch); the schema says so too.
    invoices: list[InvoiceIn] = Field(json_schema_extra={"minItems": 1})


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)
