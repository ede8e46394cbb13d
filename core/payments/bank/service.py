"""Importing a bank statement: parse, store each line once, match, post matched payments, learn IBANs.

Idempotency rule (README "Bank statements and exports"):
- A file is stored once per SHA-256 of its bytes; importing the same file again changes nothing.
- Every line has a unique key. A line with a bank reference (CAMT ``AcctSvcrRef``, MT940 ``//`` bank
  reference) is keyed by account + bank reference + place in its entry + direction + amount + currency,
  so the same transaction in two overlapping statements (or in a CAMT and an MT940 export of the same
  account) is stored and posted once. A line without a bank reference is keyed by account + statement
  id + its position in that statement, so a re-sent copy of the same statement is recognised too.
- Lines are matched and posted set-based (core/payments/bank/batch.py), under a per-account lock.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import new_id, utcnow
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.invoices import repository as invoice_repo
from core.invoices.models import Invoice
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from core.money import format_minor
from core.payments.bank import batch
from core.payments.bank import repository as repo
from core.payments.bank.batch import line_key as line_key
from core.payments.bank.models import BankLine, BankStatement, LineStatus, MatchRule
from core.payments.bank.parsers import Line, ParsedFile, parse
from core.payments.bank.schemas import AssignIn

MAX_STATEMENT_BYTES = 50 * 1024 * 1024


@dataclass
class ImportResult:
    statement: BankStatement
    created: bool
    lines: list[BankLine] = field(default_factory=list)
    duplicates: list[Line] = field(default_factory=list)  # already imported through another file

    def count(self, status: LineStatus) -> int:
        return sum(1 for line in self.lines if line.status == status)


async def import_statement(
    session: AsyncSession, data: bytes, *, actor: Actor, today: date, filename: str | None = None
) -> ImportResult:
    """All or nothing: a file that does not parse raises InvalidInput before anything is written."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise InvalidInput(
            f"the bank file is larger than {MAX_STATEMENT_BYTES // (1024 * 1024)} MB",
            "statement_too_large",
            [FieldError(("file",), "too large", "too_large")],
        )
    parsed = parse(data)
    digest = hashlib.sha256(data).hexdigest()
    await _serialise_account(session, parsed.account_iban)
    existing = await repo.statement_by_hash(session, digest)
    if existing is not None:
        return ImportResult(existing, False, list(await repo.lines_of(session, existing.id)))
    statement_id = new_id()
    row: dict[str, Any] = {
        "id": statement_id,
        "format": parsed.format,
        "account_iban": parsed.account_iban,
        "statement_ref": parsed.statement_ref or "-",
        "content_sha256": digest,
        "filename": (filename or "")[:255] or None,
        "line_count": len(parsed.lines),
        "imported_by": actor.label,
        "imported_at": utcnow(),
    }
    if not await repo.claim_statement(session, row):  # a twin upload committed first
        twin = await repo.statement_by_hash(session, digest)
        assert twin is not None
        return ImportResult(twin, False, list(await repo.lines_of(session, twin.id)))
    result = ImportResult(BankStatement(**row), True)
    await batch.import_lines(session, statement_id, parsed.lines, result, actor=actor)
    await audit.record(
        session,
        actor,
        "bank_statement.imported",
        "bank_statement",
        statement_id,
        after=_summary(parsed, result),
    )
    return result


async def _serialise_account(session: AsyncSession, account: str | None) -> None:
    """One import per account at a time (PostgreSQL; SQLite writers queue anyway): overlapping
    statements then never wait on each other's debtor locks in opposite orders."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"duebot.bank:{account}".encode()).digest()[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _summary(parsed: ParsedFile, result: ImportResult) -> dict[str, Any]:
    return {
        "format": parsed.format,
        "account_iban": parsed.account_iban,
        "statement_ref": parsed.statement_ref,
        "lines": len(parsed.lines),
        "matched": result.count(LineStatus.matched),
        "unmatched": result.count(LineStatus.unmatched),
        "ignored": result.count(LineStatus.ignored),
        "duplicates": len(result.duplicates),
    }


async def _post(
    session: AsyncSession,
    line: Line | BankLine,
    *,
    debtor_id: uuid.UUID,
    invoice_id: uuid.UUID | None,
    actor: Actor,
    today: date,
    source: str,
) -> uuid.UUID:
    """Book the payment through the ledger service (FIFO, credit on account) and learn the IBAN."""
    debtor = await session.get(Debtor, debtor_id)
    if debtor is None:
        raise NotFound("the debtor no longer exists", "unknown_debtor")
    invoice_external_id = None
    if invoice_id is not None:
        invoice = await session.get(Invoice, invoice_id)
        invoice_external_id = invoice.external_id if invoice is not None else None
    result = await ledger.record_payment(
        session,
        PaymentIn(
            debtor_external_id=debtor.external_id,
            invoice_external_id=invoice_external_id,
            currency=line.currency,
            amount=format_minor(line.amount_minor, line.currency),
            received_on=line.booking_date,
            method="bank_transfer",
            reference=(line.bank_reference or line.reference or None),
        ),
        actor=actor,
        today=today,
    )
    if line.counterparty_iban:
        new = await repo.learn_account(
            session,
            debtor_id=debtor_id,
            iban=line.counterparty_iban,
            holder=line.counterparty_name,
            source=source,
        )
        if new:
            await audit.record(
                session,
                actor,
                "debtor.bank_account_learned",
                "debtor",
                debtor.external_id,
                after={"iban": line.counterparty_iban, "holder_name": line.counterparty_name, "from": source},
            )
    return result.payment.id


async def assign(
    session: AsyncSession, line_id: uuid.UUID, data: AssignIn, *, actor: Actor, today: date
) -> BankLine:
    """Post a to-be-processed line by hand, once: a line that is no longer unmatched answers 409."""
    line = await repo.line_for_update(session, line_id)
    if line is None:
        raise NotFound("no such bank line", "unknown_bank_line")
    if line.status != LineStatus.unmatched:
        raise Conflict(
            f"the bank line is {line.status}; only unmatched lines can be assigned", "bank_line_not_unmatched"
        )
    debtor = await debtor_repo.get_by_external_id(session, data.debtor_external_id)
    if debtor is None:
        raise InvalidInput(
            f"unknown debtor {data.debtor_external_id!r}",
            "unknown_debtor",
            [FieldError(("debtor_external_id",), "unknown debtor", "unknown_debtor")],
        )
    invoice_id = None
    if data.invoice_external_id is not None:
        invoice = await invoice_repo.get_by_external_id(session, data.invoice_external_id)
        if invoice is None or invoice.debtor_id != debtor.id:
            raise InvalidInput(
                "the invoice does not exist for this debtor",
                "unknown_invoice",
                [FieldError(("invoice_external_id",), "unknown invoice for this debtor", "unknown_invoice")],
            )
        invoice_id = invoice.id
    before = {"status": line.status, "reason": line.reason}
    payment_id = await _post(
        session, line, debtor_id=debtor.id, invoice_id=invoice_id, actor=actor, today=today, source="manual"
    )
    line.status = LineStatus.assigned
    line.rule = MatchRule.manual
    line.reason = None
    line.debtor_id = debtor.id
    line.invoice_id = invoice_id
    line.payment_id = payment_id
    line.resolved_at = utcnow()
    line.resolved_by = actor.label
    await session.flush()
    await audit.record(
        session,
        actor,
        "bank_line.assigned",
        "bank_line",
        line.id,
        before=before,
        after={
            "status": line.status,
            "debtor": debtor.external_id,
            "invoice": data.invoice_external_id,
            "payment_id": str(payment_id),
            "note": data.note,
        },
    )
    return line
