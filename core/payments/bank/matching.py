"""Which invoice or debtor a bank line pays, by three rules in order.

1. An ISO 11649 RF reference anywhere in the line (structured reference, EndToEndId, remittance text)
   that resolves to an invoice, or to a debtor for a grouped payment.
2. An invoice number in the remittance text: open invoices, or any invoice of a debtor whose IBAN we
   learned. One invoice matches; several are ambiguous and left to a person.
3. The amount plus an IBAN learned for the debtor: exactly one open invoice of that debtor with that
   open amount.

The currency must match the invoice's. Anything else stays unmatched, with a reason and the candidates.

The rules run in memory, line after line in file order, over a ``MatchContext`` that ``load_context``
fills with a few set-based queries (references, learned IBANs, invoice numbers) and a locked
``PaymentBook`` (core/ledger/batch.py) of every debtor a line could pay. Each matched line moves the
book's open amounts and teaches its IBAN at once, so a later line of the same statement sees both,
exactly as if the lines had been imported one by one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.bulk import among, chunk_size, chunks
from core.invoices.models import BOOKED_STATUSES, PAYABLE_STATUSES, Invoice
from core.ledger.batch import BookInvoice, PaymentBook, open_book
from core.payments import reference as references
from core.payments.bank.models import DebtorBankAccount, LineStatus, MatchRule
from core.payments.bank.parsers import Line
from core.payments.models import PaymentReference

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


_PAYABLE = frozenset(s.value for s in PAYABLE_STATUSES)
_BOOKED = frozenset(s.value for s in BOOKED_STATUSES)


@dataclass
class MatchContext:
    book: PaymentBook
    references: dict[str, tuple[uuid.UUID, uuid.UUID | None]]  # RF → (debtor, invoice or None)
    known: dict[str, list[uuid.UUID]]  # IBAN → debtors learned for it (grows as lines match)


def _candidate(inv: BookInvoice) -> dict[str, Any]:
    return {
        "invoice_external_id": inv.external_id,
        "invoice_number": inv.number,
        "debtor_id": str(inv.debtor_id),
        "currency": inv.currency,
    }


async def load_context(session: AsyncSession, lines: Sequence[Line]) -> MatchContext:
    """Everything the rules can look at, for all lines at once; the debtors involved are locked."""
    size = chunk_size(session)
    wanted = sorted({ref for line in lines for ref in rf_candidates(line.reference, line.remittance)})
    refs: dict[str, tuple[uuid.UUID, uuid.UUID | None]] = {}
    for part in chunks(wanted, size):
        stmt = select(
            col(PaymentReference.reference), col(PaymentReference.debtor_id), col(PaymentReference.invoice_id)
        ).where(among(session, col(PaymentReference.reference), part))
        refs.update({r: (d, i) for r, d, i in (await session.execute(stmt)).all()})
    debtors: set[uuid.UUID] = {d for d, _ in refs.values()}
    words: set[str] = set()
    for line in lines:
        if not any(r in refs for r in rf_candidates(line.reference, line.remittance)):
            words.update(tokens(line.reference, line.remittance))
    for part in chunks(sorted(words), size):
        owners = select(col(Invoice.debtor_id)).where(
            among(session, col(Invoice.number), part), col(Invoice.status).in_(BOOKED_STATUSES)
        )
        debtors.update((await session.scalars(owners)).all())
    ibans = sorted({line.counterparty_iban for line in lines if line.counterparty_iban})
    known: dict[str, list[uuid.UUID]] = {}
    for part in chunks(ibans, size):
        accounts = (
            select(col(DebtorBankAccount.iban), col(DebtorBankAccount.debtor_id))
            .where(among(session, col(DebtorBankAccount.iban), part))
            .order_by(col(DebtorBankAccount.created_at), col(DebtorBankAccount.id))
        )
        for iban, debtor_id in (await session.execute(accounts)).all():
            known.setdefault(iban, []).append(debtor_id)
            debtors.add(debtor_id)
    return MatchContext(await open_book(session, debtors), refs, known)


def _by_reference(ctx: MatchContext, line: Line) -> Decision | None:
    for ref in rf_candidates(line.reference, line.remittance):
        found = ctx.references.get(ref)
        if found is None:
            continue
        debtor_id, invoice_id = found
        if invoice_id is not None:
            inv = ctx.book.invoices.get(invoice_id)
            if inv is None:
                continue
            if inv.currency != line.currency:
                return Decision(
                    LineStatus.unmatched, reason="currency_mismatch", candidates=[_candidate(inv)]
                )
            return Decision(LineStatus.matched, MatchRule.rf_reference, None, inv.debtor_id, inv.id)
        open_here = ctx.book.payable(debtor_id, line.currency)
        if not open_here and ctx.book.owes_other_currency(debtor_id, line.currency):
            return Decision(
                LineStatus.unmatched,
                reason="currency_mismatch",
                candidates=[{"debtor_id": str(debtor_id), "reference": ref}],
            )
        return Decision(LineStatus.matched, MatchRule.rf_reference, None, debtor_id, None)
    return None


def _by_number(ctx: MatchContext, line: Line, known: list[uuid.UUID]) -> Decision | None:
    found: list[BookInvoice] = []
    for word in tokens(line.reference, line.remittance):
        inv = ctx.book.by_number.get(word)
        if inv is not None and (inv.status in _PAYABLE or (inv.debtor_id in known and inv.status in _BOOKED)):
            found.append(inv)
    if not found:
        return None
    found.sort(key=lambda i: i.number)
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


def _by_iban_and_amount(ctx: MatchContext, line: Line, known: list[uuid.UUID]) -> Decision | None:
    if not known:
        return None
    hits = [
        (debtor_id, inv)
        for debtor_id in known
        for inv in ctx.book.payable(debtor_id, line.currency)
        if inv.open.get(line.currency, 0) == line.amount_minor
    ]
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


def decide(ctx: MatchContext, line: Line) -> Decision:
    """Apply the rules in order; the first that speaks decides."""
    if line.ignore_reason:
        return Decision(LineStatus.ignored, reason=line.ignore_reason)
    by_ref = _by_reference(ctx, line)
    if by_ref is not None:
        return by_ref
    known = ctx.known.get(line.counterparty_iban or "", []) if line.counterparty_iban else []
    by_number = _by_number(ctx, line, known)
    if by_number is not None:
        return by_number
    by_iban = _by_iban_and_amount(ctx, line, known)
    if by_iban is not None:
        return by_iban
    return Decision(LineStatus.unmatched, reason="no_match")
