"""REST v1: bank statement upload, the to-be-processed queue of bank lines, and manual assignment.

The upload takes a file, not JSON, so ``upload_router`` is mounted beside the JSON-only v1 router.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from api import idempotency
from api.deps import ServicesDep, UnsupportedMediaType, actor_of, require
from core.access.models import ApiKey
from core.errors import DomainError, FieldError, InvalidInput
from core.money import Money
from core.payments.bank import repository as bank_repo
from core.payments.bank import service as bank
from core.payments.bank.models import BankLine, LineStatus
from core.payments.bank.parsers import Line
from core.payments.bank.schemas import AssignIn

upload_router = APIRouter(tags=["bank"])
router = APIRouter(tags=["bank"])

RAW_TYPES = {"application/xml", "text/xml", "text/plain", "application/octet-stream", ""}


class PayloadTooLarge(DomainError):
    status = 413


async def _file_of(request: Request) -> tuple[bytes, str | None]:
    """The statement bytes: a multipart ``file`` field, or the raw body."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > bank.MAX_STATEMENT_BYTES + 64 * 1024:
        raise PayloadTooLarge(
            f"a bank file may be at most {bank.MAX_STATEMENT_BYTES // (1024 * 1024)} MB",
            "statement_too_large",
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()  # cached: the form parser below reads it again
    if ctype == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(
                "send the statement in a form field named 'file'",
                "missing_file",
                [FieldError(("file",), "required", "missing")],
            )
        return await upload.read(), upload.filename
    if ctype not in RAW_TYPES:
        raise UnsupportedMediaType(
            f"send the statement as multipart/form-data or as the raw body (XML or text), not {ctype}",
            "unsupported_media_type",
        )
    return body, request.headers.get("x-filename")


def _money(minor: int, currency: str) -> dict[str, str]:
    return Money(minor, currency).as_api()


async def _views(session: AsyncSession, lines: Sequence[BankLine]) -> list[dict[str, Any]]:
    debtor_ids = {line.debtor_id for line in lines if line.debtor_id}
    for line in lines:
        for cand in line.candidates or []:
            if "debtor_id" in cand:
                debtor_ids.add(uuid.UUID(cand["debtor_id"]))
    invoice_ids = [line.invoice_id for line in lines if line.invoice_id]
    debtors, invoices = await bank_repo.external_ids(session, list(debtor_ids), invoice_ids)
    return [_line(line, debtors, invoices) for line in lines]


def _line(line: BankLine, debtors: dict[uuid.UUID, str], invoices: dict[uuid.UUID, str]) -> dict[str, Any]:
    candidates = []
    for cand in line.candidates or []:
        shown = {k: v for k, v in cand.items() if k != "debtor_id"}
        if "debtor_id" in cand:
            shown["debtor_external_id"] = debtors.get(uuid.UUID(cand["debtor_id"]))
        candidates.append(shown)
    return {
        "id": str(line.id),
        "position": line.position,
        "source_line": line.source_line,
        "status": line.status,
        "reason": line.reason,
        "rule": line.rule,
        "direction": "credit" if line.credit else "debit",
        "amount": _money(line.amount_minor, line.currency),
        "booking_date": line.booking_date.isoformat(),
        "value_date": line.value_date.isoformat() if line.value_date else None,
        "account_iban": line.account_iban,
        "bank_reference": line.bank_reference,
        "counterparty": {"iban": line.counterparty_iban, "name": line.counterparty_name},
        "reference": line.reference,
        "remittance": line.remittance,
        "debtor_external_id": debtors.get(line.debtor_id) if line.debtor_id else None,
        "invoice_external_id": invoices.get(line.invoice_id) if line.invoice_id else None,
        "payment_id": str(line.payment_id) if line.payment_id else None,
        "candidates": candidates,
    }


def _duplicate(line: Line) -> dict[str, Any]:
    return {
        "position": line.position,
        "source_line": line.source_line,
        "status": "duplicate",
        "bank_reference": line.bank_reference,
        "amount": _money(line.amount_minor, line.currency),
        "booking_date": line.booking_date.isoformat(),
    }


async def result_view(session: AsyncSession, result: bank.ImportResult) -> dict[str, Any]:
    st = result.statement
    return {
        "statement": {
            "id": str(st.id),
            "format": st.format,
            "account_iban": st.account_iban,
            "statement_ref": st.statement_ref,
            "filename": st.filename,
            "imported_at": st.imported_at.isoformat(),
        },
        "created": result.created,
        "summary": {
            "lines": len(result.lines) + len(result.duplicates),
            "matched": result.count(LineStatus.matched),
            "assigned": result.count(LineStatus.assigned),
            "unmatched": result.count(LineStatus.unmatched),
            "ignored": result.count(LineStatus.ignored),
            "duplicates": len(result.duplicates),
        },
        "lines": await _views(session, result.lines),
        "duplicates": [_duplicate(d) for d in result.duplicates],
    }


@upload_router.post(
    "/bank-statements",
    status_code=201,
    summary="Import a CAMT.053 or MT940 statement",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "application/xml": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            }
        }
    },
)
async def import_statement(
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("bank:write"))],
) -> Response:
    """Credit lines are matched and posted; the rest is listed. 201 for a new file, 200 for one
    imported before (nothing changes). A file that does not parse: 422 with its line, nothing stored."""
    data, filename = await _file_of(request)

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        result = await bank.import_statement(
            session, data, actor=actor_of(key), today=services.clock.today(), filename=filename
        )
        return (201 if result.created else 200), await result_view(session, result)

    return await idempotency.run(request, services, key, work)


@router.get("/bank-lines", summary="Bank lines; status=unmatched lists the payments still to be processed")
async def list_lines(
    services: ServicesDep,
    _: Annotated[ApiKey, Depends(require("bank:read"))],
    status: Annotated[LineStatus | None, Query()] = None,
    statement_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        lines = await bank_repo.list_lines(session, status, limit, statement_id)
        return {"lines": await _views(session, lines)}


@router.post("/bank-lines/{line_id}/assign", summary="Post an unmatched bank line to a debtor by hand")
async def assign_line(
    line_id: uuid.UUID,
    body: AssignIn,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("bank:write"))],
) -> Response:
    """Once: a line that is already posted answers 409. The payer's IBAN is learned for the debtor."""

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        line = await bank.assign(session, line_id, body, actor=actor_of(key), today=services.clock.today())
        return 200, (await _views(session, [line]))[0]

    return await idempotency.run(request, services, key, work)
