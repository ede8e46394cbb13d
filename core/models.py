"""Imports every table so that SQLModel.metadata is complete (Alembic and tests use it)."""

from sqlmodel import SQLModel

from core.access.models import ApiKey, IdempotencyRecord
from core.audit import AuditEvent
from core.channels.models import ChatWindow
from core.debtors.models import ContactPoint, Debtor
from core.dunning.models import DunningAction, DunningPolicy, DunningStage, DunningState, Promise
from core.events.models import Event, WebhookDelivery
from core.invoices.models import Invoice, InvoiceBatch, InvoiceDocument
from core.ledger.models import CreditNote, LedgerEntry, Payment
from core.messaging.models import Message
from core.payments.models import PaymentReference

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "AuditEvent",
    "ChatWindow",
    "ContactPoint",
    "CreditNote",
    "Debtor",
    "DunningAction",
    "DunningPolicy",
    "DunningStage",
    "DunningState",
    "Event",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceBatch",
    "InvoiceDocument",
    "LedgerEntry",
    "Message",
    "Payment",
    "PaymentReference",
    "Promise",
    "WebhookDelivery",
    "metadata",
]
