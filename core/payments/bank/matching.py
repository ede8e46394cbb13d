"""Which invoice or debtor a bank line pays, by three rules in order.

1. An ISO 11649 RF reference anywhere in the line (structured reference, EndToEndId, remittance text)
   that resolves to an invoice, or to a debtor for a grouped payment.
2. An invoice number in the remittance text: open invoices, or any invoice of a debtor whose IBAN we
   learned. One invoice matches; several are ambiguous and left to a person.
3. The amount plus an IBAN learned for the debtor: exactly one open invoice of that debtor with that
   open amount.

The currency must match the invoice's. Anything else stays unmatched, with a reason and the candidates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.bulk import among
from core.invoices.models import BOOKED_STATUSES, PAYABLE_STATUSES, Invoice
from core.ledger import repository as ledger_repo
from core.payments import reference as references
from core.payments.bank.models import DebtorBankAccount, LineStatus, MatchRule
from core.payments.bank.parsers import Line

_RF = re.compile(r"(?<![A-Z0-9])RF\d{2}(?:[ ]?[A-Z0-9]){1,21}", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-/._]*[A-Za-z0-9])?")
MAX_TOKENS = 200


@dataclass
class Decision:
    status: LineStatus
    rule: MatchRule | None = None
    reason: str | None = None
    debtor_id: uuid.UUID | None = None
    invoice_id: uuid.UUID | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)


def rf_candidates(*texts: str | None) -> list[str]:
    """Valid RF references in the texts, spaces and case forgiven (``rf18 5390 0754 7034``).

    A match may run on into the next word; only prefixes that end where a word ends are tried.
    """
    found: list[str] = []
    for text in texts:
        if not text:
            continue
        for m in _RF.finditer(text):
            raw = m.group()
            ends = [i for i in range(len(raw), 4, -1) if i == len(raw) or raw[i] == " "]
            for end in ends:
                ref = references.normalize(raw[:end])
                if ref is not None:
                    found.append(ref)
                    break
    return list(dict.fromkeys(found))


def tokens(*texts: str | None) -> list[str]:
    out: list[str] = []
    for text in texts:
        if text:
            out.extend(t for t in _TOKEN.findall(text) if len(t) <= 64)
    return list(dict.fromkeys(out))[:MAX_TOKENS]


def _candidate(inv: Any) -> dict[str, Any]:
    return {
        "invoice_external_id": inv.external_id,
        "invoice_number": inv.number,
        "debtor_id": str(inv.debtor_id),
        "currency": inv.currency,
    }


async def known_debtors(session: AsyncSession, iban: str | None) -> list[uuid.UUID]:
    if not iban:
        return []
    stmt = select(col(DebtorBankAccount.debtor_id)).where(col(DebtorBankAccount.iban) == iban)
    return list((await session.scalars(stmt)).all())


async def _invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Any:
    stmt = select(
        col(Invoice.id),
        col(Invoice.external_id),
        col(Invoice.number),
        col(Invoice.debtor_id),
        col(Invoice.currency),
        col(Invoice.status),
    ).where(col(Invoice.id) == invoice_id)
    return (await session.execute(stmt)).one()


async def _by_numbers(
    session: AsyncSession, numbers: Sequence[str], debtors: Iterable[uuid.UUID]
) -> list[Any]:
    if not numbers:
        return []
    payable = col(Invoice.status).in_(PAYABLE_STATUSES)
    debtor_ids = list(debtors)
    visible: Any = payable
    if debtor_ids:
        visible = payable | (
            col(Invoice.debtor_id).in_(debtor_ids) & col(Invoice.status).in_(BOOKED_STATUSES)
        )
    stmt = (
        select(
            col(Invoice.id),
            col(Invoice.external_id),
            col(Invoice.number),
            col(Invoice.debtor_id),
            col(Invoice.currency),
            col(Invoice.status),
        )
        .where(among(session, col(Invoice.number), list(numbers)), visible)
        .order_by(col(Invoice.number))
    )
    return list((await session.execute(stmt)).all())


async def _by_reference(session: AsyncSession, line: Line) -> Decision | None:
    for ref in rf_candidates(line.reference, line.remittance):
        found = await references.resolve(session, ref)
        if found is None:
            continue
        if found.invoice_id is not None:
            inv = await _invoice(session, found.invoice_id)
            if inv.currency != line.currency:
                return Decision(
                    LineStatus.unmatched, reason="currency_mismatch", candidates=[_candidate(inv)]
                )
            return Decision(LineStatus.matched, MatchRule.rf_reference, None, inv.debtor_id, inv.id)
        open_here = await ledger_repo.payable_invoices(session, found.debtor_id, line.currency)
        if not open_here and await _owes_other_currency(session, found.debtor_id, line.currency):
            return Decision(
                LineStatus.unmatched,
                reason="currency_mismatch",
                candidates=[{"debtor_id": str(found.debtor_id), "reference": ref}],
            )
        return Decision(LineStatus.matched, MatchRule.rf_reference, None, found.debtor_id, None)
    return None


async def _owes_other_currency(session: AsyncSession, debtor_id: uuid.UUID, currency: str) -> bool:
    stmt = (
        select(col(Invoice.id))
        .where(
            col(Invoice.debtor_id) == debtor_id,
            col(Invoice.status).in_(PAYABLE_STATUSES),
            col(Invoice.currency) != currency,
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def _by_number(session: AsyncSession, line: Line, known: list[uuid.UUID]) -> Decision | None:
    found = await _by_numbers(session, tokens(line.reference, line.remittance), known)
    if not found:
        return None
    if len(found) > 1 and known:
        mine = [i for i in found if i.debtor_id in known]
        found = mine or found
    if len(found) > 1:
        return Decision(
            LineStatus.unmatched, reason="ambiguous_invoice_number", candidates=[_candidate(i) for i in found]
        )
    inv = found[0]
    if inv.currency != line.currency:
        return Decision(LineStatus.unmatched, reason="currency_mismatch", candidates=[_candidate(inv)])
    return Decision(LineStatus.matched, MatchRule.invoice_number, None, inv.debtor_id, inv.id)


async def _by_iban_and_amount(session: AsyncSession, line: Line, known: list[uuid.UUID]) -> Decision | None:
    if not known:
        return None
    hits: list[tuple[uuid.UUID, Any]] = []
    for debtor_id in known:
        for inv in await ledger_repo.payable_invoices(session, debtor_id, line.currency):
            if int(inv.open_minor) == line.amount_minor:
                hits.append((debtor_id, inv))
    if len(hits) == 1:
        debtor_id, inv = hits[0]
        return Decision(LineStatus.matched, MatchRule.learned_iban, None, debtor_id, inv.id)
    if hits:
        return Decision(
            LineStatus.unmatched,
            reason="ambiguous_amount",
            candidates=[
                {"invoice_external_id": inv.external_id, "debtor_id": str(d), "currency": line.currency}
                for d, inv in hits
            ],
        )
    return Decision(
        LineStatus.unmatched, reason="known_iban_no_amount", candidates=[{"debtor_id": str(d)} for d in known]
    )


async def decide(session: AsyncSession, line: Line) -> Decision:
    """Apply the rules in order; the first that speaks decides."""
    if line.ignore_reason:
        return Decision(LineStatus.ignored, reason=line.ignore_reason)
    by_ref = await _by_reference(session, line)
    if by_ref is not None:
        return by_ref
    known = await known_debtors(session, line.counterparty_iban)
    by_number = await _by_number(session, line, known)
    if by_number is not None:
        return by_number
    by_iban = await _by_iban_and_amount(session, line, known)
    if by_iban is not None:
        return by_iban
    return Decision(LineStatus.unmatched, reason="no_match")
