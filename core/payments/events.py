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

import asyncio
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.errors import FieldError, InvalidInput
from core.payments import posting, service
from core.payments import repository as repo
from core.ports import Clock, PaymentNotFound, PaymentProvider, PaymentProviderError, ProviderPayment

log = structlog.get_logger(__name__)

MOLLIE_ID = re.compile(r"^tr_[A-Za-z0-9]{1,60}$")
PICK_UP_AFTER = timedelta(seconds=30)
DRAIN_BATCH = 300  # events claimed, fetched and posted together
DRAIN_FETCHES = 4  # at most this many threads fetch from the PSP (the client is sync), each a share


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


async def store(db: Database, provider: str, resource_id: str, clock: Clock) -> None:
    """Store a webhook call for the drain (one INSERT … ON CONFLICT DO NOTHING, committed by
    itself: ``Database.one_statement``); the caller then enqueues the drain."""
    async with db.one_statement() as conn:
        await repo.add_event(conn, provider, resource_id, clock.now())


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


# --------------------------------------------------------------------------- draining in batches


async def drain(
    db: Database,
    provider: PaymentProvider,
    clock: Clock,
    *,
    batch: int | None = None,
    fetches: int | None = None,
) -> dict[str, int]:
    """Process waiting events in batches until a round finds fewer than ``batch`` (everything
    that waited); what ``process`` does per event.

    Each round claims up to ``batch`` events (a short transaction; rows another drainer holds are
    skipped), fetches their payments from the PSP, ``fetches`` at a time, and applies every fetched
    payment in one transaction (``posting.apply_states``). Several events of one payment (a stale
    claim and a new webhook) share one fetch. A payment the PSP does not know closes its events as
    ``unknown_payment``; a non-retryable refusal as ``failed``. When the PSP is unreachable for any
    payment, its events are released (they wait) and, after the rest of the round (and of the
    next one, fetched already) is applied, the retryable PaymentProviderError is raised, for the
    worker to retry the drain with backoff.

    The rounds overlap: after a full round's payments are fetched, the next round is claimed and
    its fetches start (in threads) while this round is applied (on the event loop, mostly waiting
    for the database). Rounds are applied in the order they were fetched, so a newer webhook of a
    payment, in a later round, is applied after the older one with a state fetched after it.
    """
    counts: Counter[str] = Counter()
    batch = batch or DRAIN_BATCH
    fetches = fetches or DRAIN_FETCHES
    claimed = await _claim(db, clock, batch)
    fetching = _fetch(provider, claimed, fetches)
    unreachable: PaymentProviderError | None = None
    try:
        while claimed:
            counts["claimed"] += len(claimed)
            by_payment, fetched = await fetching
            # Fewer than a full batch: everything that waited was claimed (by this drainer or, SKIP
            # LOCKED, another one); what came in since belongs to a later debounce slot, whose job
            # drains it in a full batch, instead of this one chasing a trickle with small rounds.
            going_on = len(claimed) == batch and unreachable is None
            claimed = await _claim(db, clock, batch) if going_on else []
            fetching = _fetch(provider, claimed, fetches)
            unreachable = await _round(db, clock, by_payment, fetched, counts) or unreachable
    finally:
        if not fetching.done():  # an error while a round was being fetched: its claims go stale
            fetching.cancel()
    if unreachable is not None:
        raise unreachable
    return dict(counts)


async def _claim(db: Database, clock: Clock, batch: int) -> list[repo.Claimed]:
    async with db.session_scope() as session:
        return await repo.claim_events(session, clock.now(), limit=batch)


Fetched = tuple[dict[str, list[uuid.UUID]], list[ProviderPayment | PaymentProviderError]]


def _fetch(provider: PaymentProvider, claimed: list[repo.Claimed], fetches: int) -> asyncio.Future[Fetched]:
    """Start fetching the payments of the claimed events (one fetch per payment)."""
    by_payment: dict[str, list[uuid.UUID]] = defaultdict(list)
    for event in claimed:
        by_payment[event.resource_id].append(event.id)

    async def fetch() -> Fetched:
        if not by_payment:
            return by_payment, []
        return by_payment, await provider.get_payments(list(by_payment), concurrency=fetches)

    return asyncio.ensure_future(fetch())


class Drainer:
    """One ``drain`` at a time in this process; a drain asked for while one runs joins it.

    Debounced drain jobs of consecutive slots would otherwise run side by side in one worker when
    webhooks keep arriving, each with its own fetch threads and smaller rounds (SKIP LOCKED splits
    the waiting events between them): more CPU per event and a later last payment. Instead a job
    that finds a drain running tells it to go on (``joined``) and returns; the running drain, on
    finishing, drains again when it was told to during its run, so the events that the joining job
    was enqueued for are claimed either by the round in progress or by the next one. If the running
    drain fails, the events wait: its retry or the ``pick_up`` cron finds them. Drainers in other
    processes are independent (SKIP LOCKED keeps them apart). A drain goes on again for at most
    ``max_run`` seconds (well within arq's job timeout); under webhooks that keep coming, the
    next slot's job starts the next one.
    """

    def __init__(self, max_run: float = 60.0) -> None:
        self.running = False
        self.again = False
        self.max_run = max_run

    async def drain(
        self, db: Database, provider: PaymentProvider, clock: Clock, **kwargs: int | None
    ) -> dict[str, int]:
        if self.running:
            self.again = True
            return {"joined": 1}
        self.running = True
        counts: Counter[str] = Counter()
        until = time.monotonic() + self.max_run
        try:
            while True:
                self.again = False
                counts.update(await drain(db, provider, clock, **kwargs))
                # no await between this test and the reset in ``finally``
                if not self.again or time.monotonic() > until:
                    return dict(counts)
        finally:
            self.running = False


async def _round(
    db: Database,
    clock: Clock,
    by_payment: dict[str, list[uuid.UUID]],
    fetched: list[ProviderPayment | PaymentProviderError],
    counts: Counter[str],
) -> PaymentProviderError | None:
    """Apply one round's fetched payments; the retryable error of a payment the PSP did not
    answer for (its events released), if any."""
    snaps: list[ProviderPayment] = []
    closed: list[tuple[uuid.UUID, str, str | None]] = []
    unreachable: PaymentProviderError | None = None
    for provider_id, got in zip(by_payment, fetched, strict=True):
        if isinstance(got, ProviderPayment):
            snaps.append(got)
        elif isinstance(got, PaymentNotFound):
            log.warning("psp.webhook_unknown_id", provider_id=provider_id, error=got.reason)
            closed += [(e, "unknown_payment", got.reason) for e in by_payment[provider_id]]
        elif not got.retryable:
            log.error("psp.webhook_failed", provider_id=provider_id, error=got.reason)
            closed += [(e, "failed", got.reason) for e in by_payment[provider_id]]
        else:
            unreachable = got
            counts["retry_later"] += len(by_payment[provider_id])
            for event_id in by_payment[provider_id]:
                await _release(db, event_id, got.reason, clock)
    counts["closed"] += len(closed)
    try:
        async with db.session_scope() as session:
            outcomes = await posting.apply_states(session, snaps, today=clock.today())
            done: list[tuple[uuid.UUID, str, str | None]] = [
                (e, outcomes[s.id], None) for s in snaps for e in by_payment[s.id]
            ]
            await repo.finish_events(session, clock.now(), closed + done)
    except Exception:  # e.g. a deadlock with another writer: apply each payment on its own
        log.exception("psp.drain_batch_failed", events=sum(map(len, by_payment.values())))
        await _one_by_one(db, clock, snaps, by_payment, closed, counts)
        return unreachable
    counts["processed"] += len(done)
    log.info("psp.webhooks_processed", events=len(done), payments=len(snaps))
    return unreachable


async def _one_by_one(
    db: Database,
    clock: Clock,
    snaps: list[ProviderPayment],
    by_payment: dict[str, list[uuid.UUID]],
    closed: list[tuple[uuid.UUID, str, str | None]],
    counts: Counter[str],
) -> None:
    """The fallback after a failed batch: each payment in its own transaction. One that fails
    again keeps its events claimed; ``pick_up`` retries them when the claim goes stale."""
    async with db.session_scope() as session:
        await repo.finish_events(session, clock.now(), closed)
    for snap in snaps:
        try:
            async with db.session_scope() as session:
                outcome = await service.apply_state(session, snap, today=clock.today())
                await repo.finish_events(
                    session, clock.now(), [(e, outcome, None) for e in by_payment[snap.id]]
                )
        except Exception:
            log.exception("psp.webhook_apply_failed", provider_id=snap.id)
            continue
        counts["processed"] += len(by_payment[snap.id])
