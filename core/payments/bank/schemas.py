"""Input types for the to-be-processed queue."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.validation import ExternalId


class AssignIn(BaseModel):
    """POST /api/v1/bank-lines/{id}/assign: post an unmatched line to a debtor (and invoice) by hand."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    debtor_external_id: ExternalId
    invoice_external_id: ExternalId | None = Field(
        default=None, description="allocate to this invoice; without it, oldest due first"
    )
    note: Annotated[str, Field(max_length=500)] | None = None
