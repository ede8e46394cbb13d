"""The production paths: ack first and work after the response; the jobs inside the real arq worker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from arq import ArqRedis
from redis.asyncio import Redis

import worker
from bots.slack.seams import StaffHooks
from core.config import Settings
from core.db import Database
from core.ports import FixedClock
from tests import factories
from tests.bots.slack.conftest import STAFF_CHANNEL, Staff, staff_for
from tests.fakes.slack import FakeSlack
from tests.worker.test_worker import burst_worker


@pytest.fixture
async def acking_staff(
    settings: Settings, db: Database, redis: Redis, clock: FixedClock, fake: FakeSlack
) -> AsyncIterator[Staff]:
    async for s in staff_for(settings, db, redis, clock, fake, StaffHooks(), process_before_response=False):
        yield s


async def test_the_command_is_acked_at_once_and_answered_after(acking_staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    response = await acking_staff.command("debtor D-1")
    assert response.status_code == 200 and response.content == b""
    await acking_staff.fake.wait_for("respond", 1)
    assert "*Garage Jansen*" in json.dumps(acking_staff.fake.responses[0]["blocks"])


async def test_the_worker_runs_the_batch_post_job(staff: Staff, db: Database, arq_pool: ArqRedis) -> None:
    await factories.debtor(db, "D-1")
    batch = await factories.batch(db, [factories.invoice_row("D-1")], approve=False)
    job = await arq_pool.enqueue_job(
        "post_batch_for_approval", str(batch.id), _job_id=f"slack-batch:{batch.id}"
    )
    assert job is not None
    ctx = {"settings": staff.settings, "db": db, "clock": staff.clock, "owns_db": False}
    w = burst_worker([worker.post_batch_for_approval], arq_pool, ctx)
    try:
        await w.main()
        assert await job.result(timeout=5) is True
    finally:
        await w.close()
    [post] = staff.fake.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL
    assert "*1 invoice* (test) waiting for approval" in post.body["text"]
