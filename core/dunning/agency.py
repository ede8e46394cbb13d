"""Hand-off to a collection agency at a policy's final stage, with the evidence the agency needs.

The sweep marks the invoices of this sweep that reached an ``agency`` stage ``with_agency`` (one
UPDATE) and records one ``invoice.handed_to_agency`` event per debtor handed over, its evidence
still to come (``{"evidence": "pending", ...}``). Building the evidence file reads everything the
debtor ever had (invoices, entries, messages, promises): that is no part of deciding, so the sweep
leaves it to the event fan-out (:func:`complete_hand_offs`, called by
``core.events.service.fan_out`` for the events it claims), which puts the file into the event in its
own transaction before any delivery is made. The event is committed with the sweep, so a worker
that dies before the fan-out loses nothing: the next fan-out completes it. The worker then delivers
the event, signed, to AGENCY_WEBHOOK_URL. Agency payments come back through POST /api/v1/payments
with method ``agency`` and are booked as ``agency_payment``.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import SYSTEM
from core.base import table_of
from core.bulk import among, chunk_size, chunks
from core.debtors.models import ContactPoint, Debtor
from core.dunning.models import DunningAction, DunningStage, DunningState, Promise, StageAction
from core.events.models import Event, EventType
from core.events.service import emit_many
from core.invoices.models import Invoice, InvoiceStatus
from core.ledger.models import LedgerEntry
from core.messaging.models import Message
from core.money import format_minor

PENDING = "pending"  # the evidence of a hand-off event that the fan-out has not built yet


async def hand_over(
    session: AsyncSession, sweep_id: uuid.UUID, now: datetime, reached_agency: Any = None
) -> list[str]:
    """Invoices of this sweep at an agency stage go to the agency. Returns their external ids.

    ``reached_agency`` selects their ids when the caller knows them (the sweep, from its due set);
    else they are found from the sweep's actions. The caller (the sweep) clears their next action:
    the agency stage is a policy's last.
    """
    if reached_agency is None:
        reached_agency = _reached_agency(sweep_id)
    rows = (
        await session.execute(
            update(Invoice)
            .where(col(Invoice.id).in_(reached_agency))
            .values(status=InvoiceStatus.with_agency.value, updated_at=now)
            .returning(col(Invoice.external_id), col(Invoice.debtor_id))
        )
    ).all()
    if not rows:
        return []
    await audit.record_many(
        session,
        SYSTEM,
        "invoice.handed_to_agency",
        "invoice",
        ((r.external_id, None, {"status": InvoiceStatus.with_agency.value}) for r in rows),
    )
    debtor_ids = sorted({r.debtor_id for r in rows})
    debtors = await session.execute(
        select(col(Debtor.id), col(Debtor.external_id)).where(among(session, col(Debtor.id), debtor_ids))
    )
    await emit_many(
        session,
        EventType.handed_to_agency,
        (
            (external_id, {"evidence": PENDING, "debtor": {"external_id": external_id}, "debtor_id": str(d)})
            for d, external_id in sorted(debtors.all(), key=lambda r: r[1])
        ),
    )
    return sorted(r.external_id for r in rows)


def _reached_agency(sweep_id: uuid.UUID) -> Any:
    """The invoices of the sweep's actions at an agency stage."""
    return (
        select(col(DunningAction.invoice_id))
        .join(DunningState, col(DunningState.invoice_id) == col(DunningAction.invoice_id))
        .join(
            DunningStage,
            and_(
                col(DunningStage.policy_id) == col(DunningState.policy_id),
                col(DunningStage.key) == col(DunningAction.stage_key),
            ),
        )
        .where(col(DunningAction.sweep_id) == sweep_id, col(DunningStage.action) == StageAction.agency.value)
    )


async def complete_hand_offs(session: AsyncSession, event_ids: Sequence[uuid.UUID]) -> int:
    """Put the evidence file into those of ``event_ids`` that are hand-offs still without one.

    Called by the fan-out for the events it has claimed (locked), in its transaction: a second
    fan-out skips them, and an event is delivered only with its file. Returns how many it filled.
    """
    pending = [
        (event_id, uuid.UUID(payload["debtor_id"]))
        for part in chunks(list(event_ids), chunk_size(session))
        for event_id, payload in (
            await session.execute(
                select(col(Event.id), col(Event.payload)).where(
                    among(session, col(Event.id), list(part)),
                    col(Event.type) == EventType.handed_to_agency.value,
                )
            )
        ).all()
        if isinstance(payload, dict) and payload.get("evidence") == PENDING
    ]
    if not pending:
        return 0
    files = await evidence_many(session, [debtor_id for _, debtor_id in pending])
    await session.execute(
        update(table_of(Event)).where(table_of(Event).c.id == bindparam("event_id")),
        [{"event_id": event_id, "payload": file} for (event_id, _), file in zip(pending, files, strict=True)],
    )
    return len(pending)


async def evidence(session: AsyncSession, debtor_id: uuid.UUID) -> dict[str, Any]:
    """Everything an agency needs about one debtor: invoices, entries, messages, promises, disputes."""
    return (await evidence_many(session, [debtor_id]))[0]


async def evidence_many(session: AsyncSession, debtor_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """The evidence files of many debtors, in the order given: one query per table, not per debtor."""
    if not debtor_ids:
        return []
    files: list[dict[str, Any]] = []
    for part in chunks(list(debtor_ids), chunk_size(session)):
        files.extend(await _evidence_chunk(session, part))
    return files


def _grouped(rows: Sequence[Any], key: Any) -> dict[uuid.UUID, list[Any]]:
    out: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in rows:
        out[key(row)].append(row)
    return out


async def _evidence_chunk(session: AsyncSession, debtor_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    ids: Any = list(debtor_ids)
    debtors = {
        d.id: d for d in (await session.scalars(select(Debtor).where(among(session, col(Debtor.id), ids))))
    }
    contacts = _grouped(
        (
            await session.scalars(
                select(ContactPoint).where(among(session, col(ContactPoint.debtor_id), ids))
            )
        ).all(),
        lambda c: c.debtor_id,
    )
    invoices = _grouped(
        (
            await session.scalars(
                select(Invoice)
                .where(among(session, col(Invoice.debtor_id), ids))
                .order_by(col(Invoice.due_date), col(Invoice.id))
            )
        ).all(),
        lambda i: i.debtor_id,
    )
    entries = _grouped(
        (
            await session.scalars(
                select(LedgerEntry)
                .where(among(session, col(LedgerEntry.debtor_id), ids))
                .order_by(col(LedgerEntry.created_at), col(LedgerEntry.id))
            )
        ).all(),
        lambda e: e.debtor_id,
    )
    states = {
        s.invoice_id: s
        for s in (
            await session.scalars(
                select(DunningState)  # through the invoices' debtor index and the states' key
                .join(Invoice, col(Invoice.id) == col(DunningState.invoice_id))
                .where(among(session, col(Invoice.debtor_id), ids))
            )
        ).all()
    }
    messages = _grouped(
        (
            await session.execute(
                select(
                    col(DunningAction.debtor_id),
                    col(DunningAction.invoice_id),
                    col(DunningAction.stage_key),
                    Message,
                )
                .join(Message, col(Message.id) == col(DunningAction.message_id))
                .where(among(session, col(DunningAction.debtor_id), ids))
                .order_by(col(Message.created_at), col(DunningAction.invoice_id))
            )
        ).all(),
        lambda row: row[0],
    )
    promises = _grouped(
        (
            await session.scalars(
                select(Promise)
                .where(among(session, col(Promise.debtor_id), ids))
                .order_by(col(Promise.created_at), col(Promise.id))
            )
        ).all(),
        lambda p: p.debtor_id,
    )
    return [
        _file(
            debtors[d],
            contacts.get(d, []),
            invoices.get(d, []),
            entries.get(d, []),
            states,
            [(inv, stage, m) for _, inv, stage, m in messages.get(d, [])],
            promises.get(d, []),
        )
        for d in debtor_ids
    ]


def _file(
    debtor: Debtor,
    contacts: Sequence[ContactPoint],
    invoices: Sequence[Invoice],
    entries: Sequence[LedgerEntry],
    states: dict[uuid.UUID, DunningState],
    messages: Sequence[tuple[uuid.UUID, str, Message]],
    promises: Sequence[Promise],
) -> dict[str, Any]:
    by_id = {i.id: i for i in invoices}

    def money(minor: int, currency: str) -> dict[str, str]:
        return {"amount": format_minor(minor, currency), "currency": currency}

    open_by_invoice: dict[uuid.UUID, int] = {}
    for e in entries:
        if e.invoice_id is not None:
            open_by_invoice[e.invoice_id] = open_by_invoice.get(e.invoice_id, 0) + e.amount_minor
    return {
        "debtor": {
            "external_id": debtor.external_id,
            "name": debtor.name,
            "address": debtor.address,
            "locale": debtor.locale,
            "contacts": [
                {
                    "kind": c.kind,
                    "address": c.address,
                    "opted_out": c.opted_out,
                    "last_delivery_status": c.last_delivery_status,
                }
                for c in contacts
            ],
        },
        "invoices": [
            {
                "external_id": i.external_id,
                "number": i.number,
                "issue_date": i.issue_date.isoformat(),
                "due_date": i.due_date.isoformat(),
                "status": i.status,
                "amount": money(i.amount_minor, i.currency),
                "open": money(open_by_invoice.get(i.id, 0), i.currency),
                "stage": states[i.id].stage_key if i.id in states else None,
                "disputed": states[i.id].disputed if i.id in states else False,
                "dispute_reason": states[i.id].dispute_reason if i.id in states else None,
            }
            for i in invoices
            if i.status != InvoiceStatus.pending_approval
        ],
        "ledger": [
            {
                "invoice": by_id[e.invoice_id].external_id if e.invoice_id in by_id else None,
                "kind": e.kind,
                "amount": money(e.amount_minor, e.currency),
                "date": e.effective_date.isoformat(),
                "description": e.description,
            }
            for e in entries
        ],
        "messages": [
            {
                "invoice": by_id[inv_id].external_id,
                "stage": stage,
                "template": m.template,
                "channel": m.channel,
                "status": m.status,
                "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                "error": m.error,
            }
            for inv_id, stage, m in messages
        ],
        "promises": [
            {
                "invoice": by_id[p.invoice_id].external_id,
                "promised_on": p.promised_on.isoformat(),
                "status": p.status,
                "made_at": p.created_at.isoformat(),
                "source": p.source,
            }
            for p in promises
        ],
    }


CSV_COLUMNS = ("record", "invoice", "date", "kind", "amount", "currency", "status", "detail")


def evidence_csv(file: dict[str, Any]) -> str:
    """The same evidence as one flat CSV, one line per invoice, entry, message and promise."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for i in file["invoices"]:
        writer.writerow(
            (
                "invoice",
                i["external_id"],
                i["due_date"],
                i["number"],
                i["open"]["amount"],
                i["open"]["currency"],
                i["status"],
                i["dispute_reason"] or "",
            )
        )
    for e in file["ledger"]:
        writer.writerow(
            (
                "ledger",
                e["invoice"] or "",
                e["date"],
                e["kind"],
                e["amount"]["amount"],
                e["amount"]["currency"],
                "",
                e["description"] or "",
            )
        )
    for m in file["messages"]:
        writer.writerow(
            (
                "message",
                m["invoice"],
                m["sent_at"] or "",
                m["stage"],
                "",
                "",
                m["status"],
                f"{m['template']} via {m['channel'] or '-'}",
            )
        )
    for p in file["promises"]:
        writer.writerow(("promise", p["invoice"], p["promised_on"], p["source"], "", "", p["status"], ""))
    return out.getvalue()
