"""Domain objects → JSON for REST v1. Money always leaves as {"amount": "12.50", "currency": "EUR"}."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.audit import AuditEvent
from core.debtors.models import ContactPoint, Debtor
from core.debtors.service import pause_state
from core.invoices.models import InvoiceBatch
from core.invoices.service import InvoiceView
from core.ledger.service import DebtorBalance, PaymentResult
from core.money import Money


def money(minor: int, currency: str) -> dict[str, str]:
    return Money(minor, currency).as_api()


def debtor(d: Debtor, points: Sequence[ContactPoint], balance: DebtorBalance) -> dict[str, Any]:
    return {
        "external_id": d.external_id,
        "name": d.name,
        "email": next((p.address for p in points if p.kind == "email"), None),
        "phone": next((p.address for p in points if p.kind == "phone"), None),
        "locale": d.locale,
        "timezone": d.timezone,
        "segment": d.segment,
        "address": d.address,
        "channel_order": d.channel_order,
        "contact_points": [
            {
                "kind": p.kind,
                "address": p.address,
                "verified": p.verified,
                "consent": p.consent,
                "opted_out": p.opted_out,
                "last_delivery_status": p.last_delivery_status,
            }
            for p in points
        ],
        "dunning": pause_state(d),
        "balance": balance_view(balance),
        "updated_at": d.updated_at.isoformat(),
    }


def balance_view(balance: DebtorBalance) -> dict[str, Any]:
    return {
        "currencies": [
            {
                "currency": c.currency,
                "open": money(c.open, c.currency),
                "overdue": money(c.overdue, c.currency),
                "fees_and_interest": money(c.fees_and_interest, c.currency),
                "promised": money(c.promised, c.currency),
                "in_plan": money(c.in_plan, c.currency),
                "credit": money(c.credit, c.currency),
            }
            for c in sorted(balance.currencies.values(), key=lambda c: c.currency)
        ],
        "invoices": [
            {
                "external_id": i.external_id,
                "number": i.number,
                "status": i.status,
                "issue_date": i.issue_date.isoformat(),
                "due_date": i.due_date.isoformat(),
                "amount": i.amount.as_api(),
                "open": i.open.as_api(),
                "fees_and_interest": i.fees_and_interest.as_api(),
                "overdue": i.overdue,
                "days_overdue": i.days_overdue,
            }
            for i in balance.invoices
        ],
    }


def batch(b: InvoiceBatch) -> dict[str, Any]:
    totals = [money(int(v), k) for k, v in sorted(b.totals.items())]
    return {
        "id": str(b.id),
        "status": b.status,
        "source": b.source,
        "count": b.count,
        "total": totals[0] if len(totals) == 1 else None,
        "totals": totals,
        "created_by": b.created_by,
        "created_at": b.created_at.isoformat(),
        "decided_by": b.decided_by,
        "decided_at": b.decided_at.isoformat() if b.decided_at else None,
        "decision_note": b.decision_note,
    }


def invoice(v: InvoiceView) -> dict[str, Any]:
    inv = v.invoice
    return {
        "external_id": inv.external_id,
        "number": inv.number,
        "debtor_external_id": v.debtor.external_id,
        "batch_id": str(inv.batch_id) if inv.batch_id else None,
        "status": inv.status,
        "issue_date": inv.issue_date.isoformat(),
        "due_date": inv.due_date.isoformat(),
        "amount": money(inv.amount_minor, inv.currency),
        "open": money(v.open_minor, inv.currency),
        "fees_and_interest": money(v.fees_minor, inv.currency),
        "overdue": v.overdue,
        "days_overdue": v.days_overdue,
        "description": inv.description,
        "has_document": inv.has_document,
        "dunning": {
            "stage": (v.dunning or {}).get("stage"),
            "pause": v.pause,
            "invoice": v.dunning,
        },
        "messages": v.messages,
        "ledger": [
            {
                "kind": e.kind,
                "amount": money(e.amount_minor, e.currency),
                "effective_date": e.effective_date.isoformat(),
                "description": e.description,
                "created_by": e.created_by,
            }
            for e in v.entries
        ],
    }


def payment(r: PaymentResult, debtor_external_id: str) -> dict[str, Any]:
    p = r.payment
    return {
        "id": str(p.id),
        "debtor_external_id": debtor_external_id,
        "amount": money(p.amount_minor, p.currency),
        "method": p.method,
        "reference": p.reference,
        "received_on": p.received_on.isoformat(),
        "allocations": [
            {"invoice_external_id": a.invoice_external_id, "amount": a.amount.as_api()} for a in r.allocations
        ],
    }


def audit_event(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "at": e.at.isoformat(),
        "actor": {"type": e.actor_type, "id": e.actor_id, "name": e.actor_name},
        "action": e.action,
        "entity": e.entity,
        "entity_id": e.entity_id,
        "before": e.before,
        "after": e.after,
    }
