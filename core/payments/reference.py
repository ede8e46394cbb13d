"""ISO 11649 RF creditor references, unique per invoice or per debtor (grouped payments).

The body is 15 random digits, so a reference never leaks an invoice number or a count of invoices.
References are created on first use and kept: a debtor who pays with an old QR code is still matched.
"""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

from core.bulk import insert_ignore
from core.payments.models import PaymentReference

BODY_DIGITS = 15


def make_reference(body: str) -> str:
    """``RF`` + check digits + body, e.g. ``539007547034`` → ``RF18539007547034``."""
    body = body.replace(" ", "").upper()
    if not body or len(body) > 21 or not body.isalnum():
        raise ValueError("an RF reference body is 1 to 21 letters or digits")
    return "RF" + mod_97_10.calc_check_digits(body + "RF") + body


def normalize(candidate: str) -> str | None:
    """A valid RF reference in compact upper-case form, or None (spaces and case are forgiven)."""
    compact = iso11649.compact(candidate)
    return compact if iso11649.is_valid(compact) else None


def printable(reference: str) -> str:
    """Groups of four, as printed on a letter: ``RF18 5390 0754 7034``."""
    return iso11649.format(reference)


def _new_reference() -> str:
    return make_reference(f"{secrets.randbelow(10**BODY_DIGITS):0{BODY_DIGITS}d}")


async def for_invoice(session: AsyncSession, *, invoice_id: uuid.UUID, debtor_id: uuid.UUID) -> str:
    """The invoice's reference, created on first use (safe when two workers race)."""
    return await _get_or_create(session, debtor_id=debtor_id, invoice_id=invoice_id)


async def for_debtor(session: AsyncSession, *, debtor_id: uuid.UUID) -> str:
    """The debtor's reference for paying all open invoices at once."""
    return await _get_or_create(session, debtor_id=debtor_id, invoice_id=None)


async def resolve(session: AsyncSession, candidate: str) -> PaymentReference | None:
    """The invoice or debtor a reference found in a bank line or remittance text stands for."""
    reference = normalize(candidate)
    if reference is None:
        return None
    return await session.get(PaymentReference, reference)


async def _existing(session: AsyncSession, debtor_id: uuid.UUID, invoice_id: uuid.UUID | None) -> str | None:
    query = select(col(PaymentReference.reference))
    if invoice_id is None:
        query = query.where(
            col(PaymentReference.debtor_id) == debtor_id, col(PaymentReference.invoice_id).is_(None)
        )
    else:
        query = query.where(col(PaymentReference.invoice_id) == invoice_id)
    return (await session.execute(query)).scalar_one_or_none()


async def _get_or_create(session: AsyncSession, *, debtor_id: uuid.UUID, invoice_id: uuid.UUID | None) -> str:
    found = await _existing(session, debtor_id, invoice_id)
    if found is not None:
        return found
    for _ in range(5):  # a collision among 10^15 bodies is rare; a racing twin is the usual reason
        await insert_ignore(
            session,
            PaymentReference.__table__,  # type: ignore[attr-defined]
            [{"reference": _new_reference(), "debtor_id": debtor_id, "invoice_id": invoice_id}],
        )
        found = await _existing(session, debtor_id, invoice_id)
        if found is not None:
            return found
    raise RuntimeError("could not allocate a payment reference")  # pragma: no cover
