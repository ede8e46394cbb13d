"""PSP webhook events: stored first (``record``), processed by the worker (``process``).

A Mollie webhook carries only a payment id, so processing fetches the payment before believing
anything. One event row is claimed by one worker at a time; a new webhook for the same payment
while one is being processed makes a new waiting row, so no status change is missed.

- unknown at the PSP (404): logged, the event is closed as ``unknown_payment``, nothing changes;
- PSP unreachable (5xx, timeout): the claim is released (the event waits) and the retryable
  PaymentProviderError propagates, for the worker to retry with backoff;
- otherwise ``service.apply_state`` in one transaction, and the event is closed with its outcome.

``pick_up`` finds events that nobody finished (the enqueue after the webhook was lost, Redis was
down, or a worker died) and processes them: the cron job that makes sure nothing is lost.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.errors import FieldError, InvalidInput
from core.payments import repository as repo
from core.payments import service
from core.ports import Clock, PaymentNotFound, PaymentProvider, PaymentProviderError

log = structlog.get_logger(__name__)

MOLLIE_ID = re.compile(r"^tr_[A-Za-z0-9]{1,60}$")
PICK_UP_AFTER = timedelta(seconds=30)


def parse_mollie_id(value: object) -> str:
    """A Mollie payment id from a webhook body, or InvalidInput."""
    if not isinstance(value, str) or not MOLLIE_ID.fullmatch(value.strip()):
        raise InvalidInput(
            "the body must be form-encoded id=tr_…",
            "malformed_webhook",
            [FieldError(("id",), "expected a Mollie payment id such as tr_WDqYK6vllg", "invalid_id")],
        )
    return value.strip()


async def record(db: Database, provider: str, resource_id: str, clock: Clock) -> uuid.UUID:
    """Store a webhook call (its own short transaction); the caller enqueues processing after."""
    async with db.session_scope() as session:
        return await repo.store_event(session, provider, resource_id, clock.now())


@dataclass
class Processed:
    event_id: uuid.UUID
    outcome: str


async def process(db: Database, provider: PaymentProvider, event_id: uuid.UUID, clock: Clock) -> Processed:
    async with db.session_scope() as session:
        event = await repo.claim_event(session, event_id, clock.now())
    if event is None:
        return Processed(event_id, "skipped")
    try:
        snap = await provider.get_payment(event.resource_id)
    except PaymentNotFound as exc:
        log.warning("psp.webhook_unknown_id", provider_id=event.resource_id, error=exc.reason)
        async with db.session_scope() as session:
            await repo.finish_event(session, event.id, clock.now(), "unknown_payment", exc.reason)
        return Processed(event_id, "unknown_payment")
    except PaymentProviderError as exc:
        if not exc.retryable:
            log.error("psp.webhook_failed", provider_id=event.resource_id, error=exc.reason)
            async with db.session_scope() as session:
                await repo.finish_event(session, event.id, clock.now(), "failed", exc.reason)
            return Processed(event_id, "failed")
        await _release(db, event.id, exc.reason, clock)
        raise
    async with db.session_scope() as session:
        outcome = await service.apply_state(session, snap, today=clock.today())
        await repo.finish_event(session, event.id, clock.now(), outcome)
    log.info("psp.webhook_processed", provider_id=snap.id, status=snap.status, outcome=outcome)
    return Processed(event_id, outcome)


async def _release(db: Database, event_id: uuid.UUID, reason: str, clock: Clock) -> None:
    try:
        async with db.session_scope() as session:
            await repo.release_event(session, event_id, reason)
    except IntegrityError:  # a newer webhook for the same payment waits already: it covers this one
        async with db.session_scope() as session:
            await repo.finish_event(session, event_id, clock.now(), "superseded", reason)


async def pick_up(
    db: Database, provider: PaymentProvider, clock: Clock, *, limit: int = 100
) -> dict[str, int]:
    """Process the events nobody finished; a PSP still unreachable leaves them for the next run."""
    async with db.sessionmaker() as session:
        ids = await repo.unprocessed_events(session, clock.now(), older_than=PICK_UP_AFTER, limit=limit)
    counts = {"found": len(ids), "processed": 0, "retry_later": 0}
    for event_id in ids:
        try:
            result = await process(db, provider, event_id, clock)
        except PaymentProviderError:
            counts["retry_later"] += 1
            continue
        counts["processed"] += int(result.outcome != "skipped")
    return counts
