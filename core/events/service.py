"""Emitting events (inside the caller's transaction) and delivering them as signed webhooks.

Each event is delivered to every configured endpoint as a JSON POST:

    X-Duebot-Event: invoice.paid
    X-Duebot-Delivery: <delivery id>          (stable across retries: use it to drop duplicates)
    X-Duebot-Timestamp: <unix seconds>
    X-Duebot-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

Receivers check the signature and reject old timestamps. A 2xx answer ends the delivery; anything
else is retried with exponential backoff, up to MAX_ATTEMPTS, then the delivery is marked failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, literal, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import new_id, table_of, utcnow
from core.bulk import copy_records
from core.db import Database
from core.events.models import DeliveryState, Event, EventType, WebhookDelivery
from core.ports import Clock
from core.sqlfuncs import new_uuid

EVENT_COLUMNS = ("id", "type", "subject", "payload", "dispatched", "created_at")
MAX_ATTEMPTS = 12  # with the backoff below: about a day and a half
BASE_DELAY = 30.0
MAX_DELAY = 6 * 3600.0
LEASE = timedelta(minutes=5)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


async def emit_many(
    session: AsyncSession, event_type: str, items: Iterable[tuple[str, dict[str, Any]]]
) -> int:
    """Record events (subject, payload) in the caller's transaction."""
    now = utcnow()
    events = [(new_id(), event_type, subject, payload, False, now) for subject, payload in items]
    return await copy_records(session, table_of(Event), EVENT_COLUMNS, events)


async def fan_out(
    session: AsyncSession, endpoints: Sequence[str], now: datetime, *, agency_url: str | None = None
) -> int:
    """One pending delivery per undispatched event and endpoint (set-based), then mark them dispatched.

    The agency URL receives only hand-off events. With no endpoint configured, events are kept as a
    log and marked dispatched. Returns how many deliveries were made.
    """
    pending = select(col(Event.id)).where(not_(col(Event.dispatched))).with_for_update(skip_locked=True)
    ids = list((await session.execute(pending)).scalars().all())
    if not ids:
        return 0
    # The sweep leaves its stage events and the hand-offs' evidence files to this point (writing
    # them is no part of deciding): they are completed here, under the lock just taken, before any
    # delivery is made. See core.dunning.outbound.
    from core.dunning.outbound import complete_pending  # core.dunning imports this module

    ids = await complete_pending(session, ids)
    if not ids:
        return 0
    targets: list[tuple[str, str | None]] = [(url, None) for url in endpoints]
    if agency_url:
        targets.append((agency_url, EventType.handed_to_agency.value))
    made = 0
    for url, only in targets:
        rows = select(
            new_uuid(),
            col(Event.id),
            literal(url),
            literal(DeliveryState.pending.value),
            literal(0),
            literal(now),
        ).where(col(Event.id).in_(ids))
        if only is not None:
            rows = rows.where(col(Event.type) == only)
        result = await session.execute(
            insert(table_of(WebhookDelivery)).from_select(
                ["id", "event_id", "url", "status", "attempts", "next_attempt_at"], rows
            )
        )
        made += int(getattr(result, "rowcount", 0) or 0)
    await session.execute(update(Event).where(col(Event.id).in_(ids)).values(dispatched=True))
    return made


def backoff(attempts: int) -> float:
    """Seconds before the next try: exponential with full jitter, capped."""
    return random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2 ** max(attempts - 1, 0)))


@dataclass
class WebhookStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0


async def deliver(
    db: Database, client: httpx.AsyncClient, *, secret: str, clock: Clock, batch: int = 100
) -> WebhookStats:
    """Send due deliveries. Claims a batch first (SKIP LOCKED), so workers never share one."""
    stats = WebhookStats()
    now = clock.now()
    async with db.session_scope() as session:
        due = (
            select(WebhookDelivery.id)  # type: ignore[call-overload]
            .where(
                col(WebhookDelivery.status) == DeliveryState.pending,
                col(WebhookDelivery.next_attempt_at) <= now,
            )
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        ids = list((await session.execute(due)).scalars().all())
        if ids:
            # The lease: a worker that dies mid-send leaves the row to be retried after LEASE.
            await session.execute(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id).in_(ids))
                .values(next_attempt_at=now + LEASE, attempts=col(WebhookDelivery.attempts) + 1)
            )
        rows = (
            (
                await session.execute(
                    select(WebhookDelivery, Event)
                    .join(Event, col(Event.id) == col(WebhookDelivery.event_id))
                    .where(col(WebhookDelivery.id).in_(ids))
                )
            ).all()
            if ids
            else []
        )
    stats.claimed = len(rows)
    for delivery, event in rows:
        body = json.dumps(
            {
                "id": str(event.id),
                "type": event.type,
                "subject": event.subject,
                "created_at": event.created_at.isoformat(),
                "data": event.payload,
            },
            separators=(",", ":"),
        ).encode()
        ts = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Duebot-Event": event.type,
            "X-Duebot-Delivery": str(delivery.id),
            "X-Duebot-Timestamp": str(ts),
            "X-Duebot-Signature": sign(secret, ts, body),
        }
        code: int | None = None
        error: str | None = None
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        async with db.session_scope() as session:
            values: dict[str, Any] = {"response_code": code, "last_error": error}
            if error is None:
                values |= {"status": DeliveryState.delivered, "delivered_at": now}
                stats.delivered += 1
            elif delivery.attempts >= MAX_ATTEMPTS:
                values |= {"status": DeliveryState.failed}
                stats.failed += 1
            else:
                values |= {
                    "next_attempt_at": now + timedelta(seconds=BASE_DELAY + backoff(delivery.attempts))
                }
                stats.retried += 1
            await session.execute(
                update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery.id).values(**values)
            )
    return stats
