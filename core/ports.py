"""The small protocols through which core talks to the outside (DESIGN.md).

Only the composition roots (api/main.py, worker.py, cli.py) wire concrete adapters into them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()


@dataclass
class FixedClock:
    """A clock that only moves when told to; used by tests, previews and demos."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def today(self) -> date:
        return self.current.date()


@dataclass(frozen=True)
class OutboundMessage:
    channel: str
    address: str
    subject: str | None
    body: str
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_id: str | None
    status: str = "sent"


class DeliveryError(Exception):
    """A channel could not deliver a message.

    ``permanent``: retrying will not help (bounced address, blocked bot, opted out): fall back to the
    next channel. Otherwise retry with backoff, waiting at least ``retry_after`` seconds when the
    provider said so (Telegram retry_after, Slack/SMS Retry-After, WhatsApp 130429).
    """

    def __init__(
        self, reason: str, *, permanent: bool, retry_after: float | None = None, code: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code


class MessageSender(Protocol):
    """One delivery channel (email, SMS, Telegram, WhatsApp)."""

    channel: str

    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver one message or raise DeliveryError."""
        ...


@dataclass(frozen=True)
class ProviderPayment:
    """What a PSP says about one payment (fetched, never taken from a webhook body)."""

    id: str
    status: str  # open, pending, authorized, canceled, expired, failed, paid
    amount_minor: int
    currency: str
    checkout_url: str | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    refunded_minor: int = 0
    charged_back_minor: int = 0


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    status: str
    amount_minor: int
    currency: str


class PaymentProviderError(Exception):
    """The PSP refused or failed. ``retryable``: a 5xx, a timeout or a connection error."""

    def __init__(self, reason: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status


class PaymentNotFound(PaymentProviderError):
    """The PSP does not know this id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False, status=404)


class PaymentProvider(Protocol):
    """A PSP such as Mollie. Errors: PaymentNotFound, PaymentProviderError."""

    name: str

    async def create_payment(
        self,
        *,
        amount_minor: int,
        currency: str,
        description: str,
        metadata: dict[str, Any],
        key: str,
        locale: str | None = None,
    ) -> ProviderPayment:
        """Create a payment; ``key`` is our stable idempotency key (the same key, the same payment)."""
        ...

    async def get_payment(self, provider_id: str) -> ProviderPayment: ...

    async def get_payments(
        self, provider_ids: Sequence[str], *, concurrency: int = 4
    ) -> list[ProviderPayment | PaymentProviderError]:
        """Many payments, ``concurrency`` requests at a time; per id, in order, the payment or the
        error (PaymentNotFound, PaymentProviderError) ``get_payment`` would raise."""
        ...

    async def create_refund(
        self, provider_id: str, *, amount_minor: int, currency: str, description: str, key: str
    ) -> ProviderRefund:
        """Refund (part of) a paid payment, idempotently under ``key``."""
        ...


class JobQueue(Protocol):
    async def enqueue(self, name: str, *args: Any, job_id: str | None = None) -> None: ...
