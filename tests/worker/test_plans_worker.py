"""Payment plans in the worker: the real arq Worker runs the plan sweep on its own and inside the
dunning sweep job, and two sweeps racing on committed data remind an instalment once."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from arq import ArqRedis
from sqlalchemy import func, select
from sqlmodel import col

import worker
from core.config import Settings
from core.db import Database
from core.debtors import service as debtors
from core.messaging.models import Message
from core.plans import service as plans
from core.plans.sweep import sweep_instalments
from core.ports import FixedClock
from tests import factories
from tests.worker.test_worker import burst_worker

TODAY = date(2026, 11, 24)


async def active_plan(db: Database) -> tuple[str, Any]:
    """A debtor owing 400.00 (due 30 November) in an active plan of 4 monthly instalments from today."""
    d = await factories.debtor(db)
    await factories.invoice(db, d, amount_minor=40_000, due_date=date(2026, 11, 30))
    async with db.session_scope() as s:
        debtor = await debtors.get(s, d)
        offer = await plans.propose(
            s,
            debtor_id=debtor.id,
            invoice_ids=None,
            instalments=4,
            monthly_amount_minor=None,
            actor="debtor:test",
            today=TODAY,
        )
        assert offer.plan_id is not None
        await plans.accept(s, offer.plan_id, actor="debtor:test", today=TODAY, confirm=False)
    return d, offer.plan_id


async def run_job(pool: ArqRedis, settings: Settings, db: Database, day: str, name: str) -> Any:
    ctx = {"settings": settings, "db": db, "clock": FixedClock(factories.at(day)), "owns_db": False}
    w = burst_worker([worker.sweep_dunning, worker.sweep_plans], pool, ctx)
    try:
        job = await pool.enqueue_job(name)
        assert job is not None
        await w.main()
        return await job.result(timeout=5)
    finally:
        await w.close()


async def test_the_plan_job_reminds_and_the_dunning_job_breaks_a_missed_plan(
    db: Database, arq_pool: ArqRedis, settings: Settings
) -> None:
    _, plan_id = await active_plan(db)

    reminded = await run_job(arq_pool, settings, db, "2026-12-21", "sweep_plans")
    assert reminded["reminders"] == 1
    quiet = await run_job(arq_pool, settings, db, "2026-12-29", "sweep_dunning")
    assert (quiet["actions"], quiet["plans"]["breached"]) == (0, [])  # still in grace, still no dunning

    swept = await run_job(arq_pool, settings, db, "2026-12-30", "sweep_dunning")

    assert swept["plans"]["breached"] == [str(plan_id)]
    assert (swept["actions"], swept["messages"]) == (1, 1)  # dunning took the invoice up in the same job


async def test_two_sweeps_racing_remind_an_instalment_once(committed: Database) -> None:
    await active_plan(committed)

    async def one() -> int:
        async with committed.session_scope() as s:
            return (await sweep_instalments(s, now=factories.at("2026-12-22"))).reminders

    results = await asyncio.gather(one(), one(), one())

    assert sorted(results) == [0, 0, 1]
    async with committed.sessionmaker() as s:
        count = select(func.count()).select_from(Message).where(col(Message.kind) == "instalment_reminder")
        assert (await s.execute(count)).scalar_one() == 1
