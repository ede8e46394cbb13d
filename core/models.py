"""Imports every table so that SQLModel.metadata is complete (Alembic and tests use it)."""

from sqlmodel import SQLModel

from core.access.models import ApiKey, IdempotencyRecord
from core.audit import AuditEvent
from core.channels.models import ChatWindow
from core.conversation.models import Chat, ChatInbound, LinkToken
from core.debtors.models import ContactPoint, Debtor
from core.dunning.models import DunningAction, DunningPolicy, DunningStage, DunningState, Promise
from core.events.models import Event, WebhookDelivery
from core.invoices.models import Invoice, InvoiceBatch, InvoiceDocument
from core.ledger.models import CreditNote, LedgerEntry, Payment
from core.messaging.models import Message
from core.payments.bank.models import BankLine, BankStatement, DebtorBankAccount
from core.payments.models import PaymentReference, PspEvent, PspPayment, PspPaymentInvoice, RefundRequest
from core.plans.models import InstalmentReminder, PaymentPlan, PlanInstalment, PlanInvoice, PlanPolicy
from core.staff.models import StaffPost

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "AuditEvent",
    "BankLine",
    "BankStatement",
    "Chat",
    "ChatInbound",
    "ChatWindow",
    "ContactPoint",
    "CreditNote",
    "Debtor",
    "DebtorBankAccount",
    "DunningAction",
    "DunningPolicy",
    "DunningStage",
    "DunningState",
    "Event",
    "IdempotencyRecord",
    "InstalmentReminder",
    "Invoice",
    "InvoiceBatch",
    "InvoiceDocument",
    "LedgerEntry",
    "LinkToken",
    "Message",
    "Payment",
    "PaymentPlan",
    "PaymentReference",
    "PlanInstalment",
    "PlanInvoice",
    "PlanPolicy",
    "Promise",
    "PspEvent",
    "PspPayment",
    "PspPaymentInvoice",
    "RefundRequest",
    "StaffPost",
    "WebhookDelivery",
    "metadata",
]
