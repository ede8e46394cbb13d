"""REST v1 exports for finance: payments as MT940, ledger mutations per invoice as CSV (streamed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep, require
from core.access.models import ApiKey
from core.errors import FieldError, InvalidInput
from core.payments import exports
from core.validation import Currency, ExternalId

router = APIRouter(tags=["exports"])


@router.get(
    "/exports/payments.mt940",
    summary="Payments received in a date range, as an MT940 statement",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
async def payments_mt940(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("exports:read"))],
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    currency: Annotated[Currency | None, Query()] = None,
) -> StreamingResponse:
    """One statement per currency: :25: is CREDITOR_IBAN, opening balance 0 on `from`, one :61:/:86:
    per payment (invoice numbers, RF reference, payer), closing balance the total on `to`."""
    exports.check_range(start, end)
    iban = services.settings.creditor_iban
    if not iban:
        raise InvalidInput(
            "set CREDITOR_IBAN: the MT940 export names the account the payments came in on",
            "creditor_iban_missing",
            [FieldError(("CREDITOR_IBAN",), "not configured", "missing")],
        )
    account = iban.replace(" ", "").upper()

    async def body() -> AsyncIterator[bytes]:
        async with services.db.sessionmaker() as session:
            async for chunk in exports.payments_mt940(
                session, start=start, end=end, account_iban=account, currency=currency
            ):
                yield chunk.encode("ascii", "replace")

    name = f"payments-{start.isoformat()}-{end.isoformat()}.sta"
    return StreamingResponse(
        body(),
        media_type="text/plain; charset=us-ascii",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/exports/mutations.csv",
    summary="Everything posted per invoice (ledger entries), as CSV for the ERP journal",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def mutations_csv(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("exports:read"))],
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    invoice: Annotated[ExternalId | None, Query()] = None,
) -> StreamingResponse:
    """With `invoice`: that invoice's entries. Otherwise the entries effective from `from` to `to`,
    grouped per invoice, credit on account last. Amounts are signed decimal strings: positive raises
    what the debtor owes (invoice, fee, interest, refund), negative lowers it (payment, credit note)."""
    exports.check_mutation_filter(start, end, invoice)
    invoice_id = None
    if invoice is not None:
        async with services.db.sessionmaker() as session:
            invoice_id = await exports.invoice_id_of(session, invoice)

    async def body() -> AsyncIterator[bytes]:
        async with services.db.sessionmaker() as session:
            async for chunk in exports.mutations_csv(session, start=start, end=end, invoice_id=invoice_id):
                yield chunk.encode()

    name = f"mutations-{invoice}.csv" if invoice else f"mutations-{start}-{end}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
