"""A Slack workspace over the real services: the hooks come from the composition root
(api/webhooks/slack.py ``slack_hooks``), refunds and payment requests reach Mollie (the fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import select
from sqlmodel import col

from api.deps import Services
from api.main import create_app
from api.webhooks.slack import slack_hooks
from core.audit import AuditEvent
from core.config import Settings
from core.db import Database
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests.bots.slack.conftest import Staff, slack_settings
from tests.fakes.mollie import FakeMollie
from tests.fakes.slack import FakeSlack

POLICY = {
    "refund_max_count_per_month": 4,
    "refund_max_total_per_month": "300.00",
    "refund_staff_max_count_per_month": 2,
    "refund_staff_max_total_per_month": "200.00",
    "refund_second_approval_above": "50.00",
}


async def wired_staff(
    settings: Settings,
    db: Database,
    redis: Redis,
    clock: FixedClock,
    fake: FakeSlack,
    mollie: FakeMollie,
    provider: MollieProvider,
) -> AsyncIterator[Staff]:
    configured = slack_settings(settings, fake).model_copy(
        update={**POLICY, "mollie_api_key": SecretStr("test_duebot"), "mollie_api_base": mollie.url}
    )
    services = Services(settings=configured, db=db, redis=redis, clock=clock, payments=provider)
    app = create_app(services=services)
    app.state.slack_process_before_response = True
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://duebot.test") as http:
        yield Staff(http, fake, configured, db, clock, slack_hooks(services))


async def audits(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessionmaker() as s:
        stmt = select(AuditEvent).where(col(AuditEvent.action) == action).order_by(col(AuditEvent.at))
        return list((await s.scalars(stmt)).all())


def blocks_text(blocks: Any) -> str:
    import json

    return json.dumps(blocks, ensure_ascii=False)
