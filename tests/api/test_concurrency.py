"""Races through real, separate connections: committed data, cleaned up afterwards.

The rest of the suite runs inside one rolled-back transaction, which cannot show what two
concurrent requests do to each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from api.deps import Services
from api.main import create_app
from core.config import Settings
from core.db import Database
from core.invoices.models import Invoice, InvoiceBatch
from core.ledger.models import LedgerEntry
from core.ports import FixedClock
from tests import factories
from tests.api.helpers import API, invoice_json


@pytest.fixture
async def live(
    committed: Database, settings: Settings, redis: Redis, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    services = Services(settings=settings, db=committed, redis=redis, clock=clock)
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://duebot.test") as client:
        yield client


async def _count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_two_requests_with_one_idempotency_key_create_one_batch(
    committed: Database, live: httpx.AsyncClient
) -> None:
    key = await factories.api_key(committed, scopes=["*"])
    debtor = await factories.debtor(committed)
    body = {"invoices": [invoice_json(debtor) for _ in range(3)]}
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "race-1"}

    first, second = await asyncio.gather(
        live.post(f"{API}/invoice-batches", json=body, headers=headers),
        live.post(f"{API}/invoice-batches", json=body, headers=headers),
    )

    assert sorted([first.status_code, second.status_code]) == [201, 201], (first.text, second.text)
    assert first.json() == second.json()
    assert {first.headers.get("idempotent-replayed"), second.headers.get("idempotent-replayed")} == {
        None,
        "true",
    }
    assert await _count(committed, InvoiceBatch) == 1
    assert await _count(committed, Invoice) == 3


async def test_two_approvals_at_once_make_one_decision(committed: Database, live: httpx.AsyncClient) -> None:
    key = await factories.api_key(committed, scopes=["*"])
    debtor = await factories.debtor(committed)
    batch = await factories.batch(committed, [factories.invoice_row(debtor) for _ in range(4)], approve=False)
    auth = {"Authorization": f"Bearer {key}"}

    answers = await asyncio.gather(
        live.post(f"{API}/invoice-batches/{batch.id}/approve", headers=auth),
        live.post(f"{API}/invoice-batches/{batch.id}/approve", headers=auth),
    )

    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert "already approved" in loser.json()["detail"]
    assert await _count(committed, LedgerEntry) == 4  # each invoice booked once
