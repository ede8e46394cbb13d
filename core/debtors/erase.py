"""GDPR erasure: remove a debtor's personal data and keep the ledger (``duebot debtor erase``).

What goes (a demanding DPO's list):

- the debtor's name (becomes :data:`ERASED_NAME`), postal address and pause reason;
- every contact point (email, phone, Telegram, WhatsApp), and the WhatsApp/Telegram chat windows of them;
- every chat linked to the debtor (the channel's chat id, the dialogue state) and its link tokens;
- the IBANs learned from the debtor's payments, and on the bank lines posted to the debtor the
  counterparty name, IBAN and remittance text;
- the invoice PDFs (duebot keeps copies; the accounting system keeps the fiscal originals);
- the outbox: message payloads and errors (addresses, rendered text) of the debtor's messages;
- then a sweep of every text and JSON column of every table (audit trail, events, webhook deliveries,
  PSP events, staff posts, promises, …) for any of those values, each occurrence replaced by
  :data:`REDACTED` (whole words, case-insensitive). Other debtors' master data is not swept; in shared
  text (an audit line naming two people) an over-match is redacted too: erasure errs on that side.
  Keys are left alone: primary keys, foreign keys, unique columns (external ids,
  invoice numbers, hashes) are the ledger's identity, not personal data.

What stays: the debtor row with its external id (the creditor's own key), the invoices, ledger entries,
payments, credit notes, plans and dunning history with their amounts and dates, so balances and totals
recompute identically.

Rule: a debtor with an open balance or an unallocated credit in any currency is refused
(``debtor_has_open_claims``): the claim or the refund still needs who to ask or pay. ``force=True``
erases anyway (e.g. after a write-off decision). Erasing twice is harmless: the second run finds
nothing and writes no audit event. The audit event names the debtor's id and external id and the
counts; it never repeats the erased values.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import JSON, String, Table, Text, UniqueConstraint, delete, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from core import audit
from core.audit import Actor
from core.base import table_of
from core.channels.models import ChatWindow
from core.conversation.models import Chat, ChatInbound, LinkToken
from core.debtors import service as debtors
from core.debtors.models import ContactPoint, Debtor
from core.errors import Conflict
from core.invoices.models import Invoice, InvoiceDocument
from core.ledger.service import debtor_balance
from core.messaging.models import Message
from core.payments.bank.models import BankLine, DebtorBankAccount

ERASED_NAME = "[erased]"
REDACTED = "[redacted]"
MIN_TERM = 3  # shorter values would match unrelated text
# Other debtors' master data is never swept: "Jan Jansen Jr" keeps his name when "Jan Jansen" is erased.
MASTER_DATA = {"debtors", "contact_points"}


@dataclass
class EraseResult:
    external_id: str
    erased: bool  # False: it had been erased before and nothing was left
    forced: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def _address_values(value: Any) -> list[str]:
    """The street lines: city, postal code and country alone are shared with others and stay."""
    if not isinstance(value, dict):
        return []
    return [str(value[k]) for k in ("line1", "line2") if value.get(k)]


async def _open_claims(session: AsyncSession, debtor_id: uuid.UUID) -> list[str]:
    balance = await debtor_balance(session, debtor_id, date.today())
    return sorted(code for code, cur in balance.currencies.items() if cur.open != 0)


async def _terms(session: AsyncSession, debtor: Debtor) -> set[str]:
    terms = {debtor.name} if debtor.name != ERASED_NAME else set()
    terms.update(_address_values(debtor.address))
    points = await session.scalars(
        select(col(ContactPoint.address)).where(col(ContactPoint.debtor_id) == debtor.id)
    )
    terms.update(points)
    for iban, holder in await session.execute(
        select(col(DebtorBankAccount.iban), col(DebtorBankAccount.holder_name)).where(
            col(DebtorBankAccount.debtor_id) == debtor.id
        )
    ):
        terms.update(v for v in (iban, holder) if v)
    for holder_name, line_iban in await session.execute(
        select(col(BankLine.counterparty_name), col(BankLine.counterparty_iban)).where(
            col(BankLine.debtor_id) == debtor.id
        )
    ):
        terms.update(v for v in (holder_name, line_iban) if v)
    chats = await session.scalars(select(col(Chat.chat_id)).where(col(Chat.debtor_id) == debtor.id))
    terms.update(chats)
    return {t.strip() for t in terms if t and len(t.strip()) >= MIN_TERM}


def _searchable(table: Table) -> list[Any]:
    """The text and JSON columns that may hold personal data: not keys, not unique identifiers."""
    unique = {c.name for con in table.constraints if isinstance(con, UniqueConstraint) for c in con.columns}
    out = []
    for column in table.columns:
        if column.primary_key or column.foreign_keys or column.unique or column.name in unique:
            continue
        if isinstance(column.type, String | Text | JSON) or "JSON" in type(column.type).__name__.upper():
            out.append(column)
    return out


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _redact(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, pattern) for v in value]
    return value


async def _sweep(session: AsyncSession, terms: set[str]) -> int:
    """Replace every occurrence of a term in every searchable column; the number of rows changed."""
    if not terms:
        return 0
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    # Whole values only: erasing "Debtor D-1" must not touch "Debtor D-10".
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    needles = {t.lower() for t in terms} | {json.dumps(t)[1:-1].lower() for t in terms}
    changed = 0
    for table in SQLModel.metadata.sorted_tables:
        if table.name in MASTER_DATA:
            continue
        columns = _searchable(table)
        pk = list(table.primary_key.columns)
        if not columns or not pk:
            continue
        for column in columns:
            text = func.lower(column.cast(Text) if not isinstance(column.type, String) else column)
            hits = select(*pk, column).where(or_(*(text.contains(n, autoescape=True) for n in needles)))
            for row in (await session.execute(hits)).all():
                *keys, value = row
                new = _redact(value, pattern)
                if new == value:
                    continue
                where = [k == v for k, v in zip(pk, keys, strict=True)]
                await session.execute(update(table).where(*where).values({column.name: new}))
                changed += 1
    return changed


async def erase(session: AsyncSession, external_id: str, *, actor: Actor, force: bool = False) -> EraseResult:
    """Erase the debtor's personal data; raises NotFound, or Conflict when claims are open and not forced."""
    debtor = await debtors.get(session, external_id, for_update=True)
    open_in = await _open_claims(session, debtor.id)
    if open_in and not force:
        raise Conflict(
            f"debtor {external_id!r} still has an open balance or credit ({', '.join(open_in)}); settle or "
            "write it off first, or erase with --force",
            "debtor_has_open_claims",
        )
    terms = await _terms(session, debtor)
    counts: dict[str, int] = {}

    async def run(name: str, stmt: Any) -> None:
        counts[name] = (await session.execute(stmt)).rowcount or 0  # type: ignore[attr-defined]

    points = list(
        await session.execute(
            select(col(ContactPoint.kind), col(ContactPoint.address)).where(
                col(ContactPoint.debtor_id) == debtor.id
            )
        )
    )
    chats = list(
        await session.execute(
            select(col(Chat.id), col(Chat.channel), col(Chat.chat_id)).where(col(Chat.debtor_id) == debtor.id)
        )
    )
    windows = {(k, a) for k, a in points} | {(ch, cid) for _, ch, cid in chats}
    chat_ids = [c[0] for c in chats]
    await run("link_tokens", delete(table_of(LinkToken)).where(col(LinkToken.debtor_id) == debtor.id))
    await run("chat_inbound", delete(table_of(ChatInbound)).where(col(ChatInbound.chat_pk).in_(chat_ids)))
    await run("chats", delete(table_of(Chat)).where(col(Chat.id).in_(chat_ids)))
    counts["chat_windows"] = 0
    for channel, chat_id in windows:
        await run(
            "_w",
            delete(table_of(ChatWindow)).where(
                col(ChatWindow.channel) == channel, col(ChatWindow.chat_id) == chat_id
            ),
        )
        counts["chat_windows"] += counts.pop("_w")
    await run(
        "contact_points", delete(table_of(ContactPoint)).where(col(ContactPoint.debtor_id) == debtor.id)
    )
    await run(
        "bank_accounts",
        delete(table_of(DebtorBankAccount)).where(col(DebtorBankAccount.debtor_id) == debtor.id),
    )
    await run(
        "bank_lines",
        update(table_of(BankLine))
        .where(
            col(BankLine.debtor_id) == debtor.id,
            col(BankLine.counterparty_name).is_not(None)
            | col(BankLine.counterparty_iban).is_not(None)
            | col(BankLine.remittance).is_not(None),
        )
        .values(counterparty_name=None, counterparty_iban=None, remittance=None),
    )
    invoices = select(col(Invoice.id)).where(col(Invoice.debtor_id) == debtor.id)
    await run(
        "documents", delete(table_of(InvoiceDocument)).where(col(InvoiceDocument.invoice_id).in_(invoices))
    )
    await session.execute(
        update(table_of(Invoice))
        .where(col(Invoice.debtor_id) == debtor.id, col(Invoice.has_document))
        .values(has_document=False)
    )
    await run(
        "messages",
        update(table_of(Message))
        .where(
            col(Message.debtor_id) == debtor.id,
            (col(Message.error).is_not(None)) | (func.length(table_of(Message).c.payload.cast(Text)) > 2),
        )
        .values(payload={}, error=None),
    )
    personal = debtor.name != ERASED_NAME or debtor.address is not None or debtor.pause_reason is not None
    if personal:
        await session.execute(
            update(table_of(Debtor))
            .where(col(Debtor.id) == debtor.id)
            .values(name=ERASED_NAME, address=null(), pause_reason=None)
        )
    counts["redacted"] = await _sweep(session, terms)
    erased = personal or any(counts.values())
    if erased:
        await audit.record(
            session,
            actor,
            "debtor.erased",
            "debtor",
            external_id,
            after={"debtor_id": str(debtor.id), "forced": bool(open_in), "counts": counts},
        )
    await session.flush()
    session.expire_all()
    return EraseResult(external_id=external_id, erased=erased, forced=bool(open_in), counts=counts)
