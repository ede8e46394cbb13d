"""Mollie webhooks end to end against a bare FastAPI endpoint doing one INSERT (issue 4, benchmark 1).

Both servers run under uvicorn in this process, on loopback, and get the same load: ``BENCH_WEBHOOKS``
(2,000) form POSTs ``id=tr_…`` from ``BENCH_WEBHOOK_CONCURRENCY`` (16) clients.

1. Baseline: a FastAPI app whose one route parses the form and INSERTs one row (SQLAlchemy async
   session on asyncpg, committed). Rate = webhooks / wall clock of the 2,000 POSTs.
2. End to end: duebot's app (``POST /webhooks/mollie``: store the event, commit, enqueue the
   debounced drain job) and the real arq worker (``drain_psp_events``, as ``worker.WorkerSettings``
   registers it, on the in-process Redis substitute) claiming the events in batches, fetching each
   payment from the local fake Mollie through mollie-api-python (4 at a time, in threads) and
   posting the batch to the ledger in one transaction (payment row, ledger entry, invoice paid,
   dunning, audit, outbound event, event closed). Rate = webhooks / wall clock from the first POST
   until the ledger holds all 2,000 payments (polled every 0.2 s: distinct payments with ledger
   entries). That includes the tail after the last POST: the last slot's debounce (1 s), arq's
   poll delay (its default 0.5 s, as ``duebot worker`` runs) and the last batch. Afterwards the run
   checks it was exactly once: 2,000 payment rows, every invoice paid, every event processed; a
   miss fails the bench instead of reporting a rate.

The fake Mollie, both servers, the HTTP clients and the worker share one event loop (and the two
cores with whatever else runs), so everything the end-to-end path does costs the POSTs time too.

The database is ``<BENCH_DATABASE_URL>_payments``: 2,000 debtors, one open invoice each, and a PSP
payment per invoice that the fake Mollie reports as paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import text

from bench import pg
from bench.report import Context, Result, Section, env_int, format_value
from core.audit import Actor
from core.base import table_of
from core.bulk import insert_rows
from core.config import Settings
from core.db import Database
from core.invoices import intake
from core.invoices import service as invoices
from core.invoices.intake import NewInvoice
from core.logging import configure as configure_logging
from core.payments.models import PspPayment, PspPaymentInvoice
from core.ports import SystemClock

RATIO_GOAL = 0.5
BENCH = Actor("cli", "bench")


def run(ctx: Context) -> Section:
    n = env_int("BENCH_WEBHOOKS", 2000)
    concurrency = env_int("BENCH_WEBHOOK_CONCURRENCY", 16, size=False)
    url = pg.sibling_url(ctx.database_url, "payments")
    pg.recreate_and_migrate(url)
    configure_logging("WARNING")  # a log line per webhook would be measured too
    baseline, e2e = asyncio.run(_measure(url, n, concurrency))
    ratio = e2e / baseline
    results = [
        Result("payments.webhook.baseline_rate", round(baseline, 1), "webhooks/s"),
        Result("payments.webhook.e2e_rate", round(e2e, 1), "webhooks/s"),
        Result.checked("payments.webhook.e2e_ratio", round(ratio, 3), "ratio", ">=", RATIO_GOAL),
    ]
    markdown = (
        f"{n:,} Mollie webhooks from {concurrency} concurrent clients, each for a different paid "
        f"payment (one open invoice per debtor).\n\n"
        "| phase | webhooks/s |\n|---|---|\n"
        f"| bare FastAPI endpoint, one INSERT per request | {format_value(baseline)} |\n"
        "| duebot end to end: store, enqueue a debounced drain; the arq worker claims events in "
        "batches, fetches the payments from the fake Mollie, posts each batch to the ledger in one "
        f"transaction; until all {n:,} payments are in the ledger | {format_value(e2e)} |\n\n"
        f"Ratio {ratio:.2f} (goal at least {RATIO_GOAL}). Both servers run under uvicorn in the bench "
        "process; the fake Mollie and the arq worker too (one event loop, two cores shared).\n"
    )
    return Section("Payments: Mollie webhooks end to end against a bare INSERT endpoint", results, markdown)


async def _seed(db: Database, n: int) -> list[str]:
    """n debtors with one approved invoice each and a PSP payment per invoice; the provider ids."""
    conn = await db.engine.connect()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    ids = await pg.seed_debtors(driver, [f"BD-{i}" for i in range(n)])
    await conn.close()
    rows = [
        NewInvoice(
            external_id=f"BI-{i}",
            debtor_external_id=f"BD-{i}",
            number=f"B-{i:06d}",
            issue_date=datetime(2026, 10, 1).date(),
            due_date=datetime(2026, 10, 31).date(),
            currency="EUR",
            amount_minor=10_000 + i,
        )
        for i in range(n)
    ]
    async with db.session_scope() as s:
        made = await intake.create_batch(s, rows, actor=BENCH, source="bench", max_items=n)
        await invoices.approve(s, made.batch.id, actor=BENCH)
        found = await s.execute(text("SELECT id, external_id FROM invoices"))
        invoice_ids = {ext: iid for iid, ext in found.all()}
        now = datetime.now(UTC)
        psp_rows, links = [], []
        for i in range(n):
            pid = uuid.uuid4()
            psp_rows.append(
                {
                    "id": pid,
                    "provider": "mollie",
                    "provider_id": f"tr_bench{i}",
                    "debtor_id": ids[f"BD-{i}"],
                    "purpose": "invoice",
                    "scope": f"invoice:{invoice_ids[f'BI-{i}']}",
                    "amount_minor": 10_000 + i,
                    "currency": "EUR",
                    "description": f"Invoice B-{i:06d}",
                    "status": "open",
                    "checkout_url": None,
                    "expires_at": None,
                    "idempotency_key": f"bench:{i}",
                    "ledger_payment_id": None,
                    "refunded_minor": 0,
                    "charged_back_minor": 0,
                    "created_by": BENCH.label,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            links.append({"psp_payment_id": pid, "invoice_id": invoice_ids[f"BI-{i}"]})
        await insert_rows(s, table_of(PspPayment), psp_rows)
        await insert_rows(s, table_of(PspPaymentInvoice), links)
    return [f"tr_bench{i}" for i in range(n)]


def _name(f: Any) -> str:
    return str(getattr(f, "name", None) or f.__name__)


async def _check_exactly_once(db: Database, n: int) -> None:
    checks = {
        "payments": "SELECT count(*) FROM payments",
        "paid invoices": "SELECT count(*) FROM invoices WHERE status = 'paid'",
        "processed events": "SELECT count(*) FROM psp_events WHERE processed_at IS NOT NULL",
        "posted PSP payments": "SELECT count(*) FROM psp_payments WHERE ledger_payment_id IS NOT NULL",
    }
    async with db.sessionmaker() as s:
        for what, sql in checks.items():
            got = int((await s.execute(text(sql))).scalar_one())
            if got != n:
                raise AssertionError(f"end to end: {got} {what}, expected {n}")


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    from tests.fakes import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    return server, task, port


async def _post_all(port: int, path: str, ids: list[str], concurrency: int) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in ids:
        queue.put_nowait(i)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            while not queue.empty():
                pid = queue.get_nowait()
                r = await c.post(path, data={"id": pid})
                r.raise_for_status()

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def _measure(url: str, n: int, concurrency: int) -> tuple[float, float]:
    import worker
    from api.deps import Services
    from api.main import create_app
    from core.payments.providers.mollie import MollieProvider
    from tests.fakes.mollie import FakeMollie, FakePayment

    db = Database.from_url(url)
    fake = await FakeMollie().start()
    try:
        provider_ids = await _seed(db, n)
        now = datetime.now(UTC)
        for i, pid in enumerate(provider_ids):
            fake.payments[pid] = FakePayment(
                pid, 10_000 + i, "EUR", "bench", None, None, {}, now, now, status="paid"
            )

        # 1. the baseline
        async with db.session_scope() as s:
            await s.execute(
                text("CREATE TABLE bench_webhooks (id uuid PRIMARY KEY, resource_id text NOT NULL)")
            )
        bare = FastAPI()

        @bare.post("/hook")
        async def hook(request: Request) -> Response:
            form = await request.form()
            async with db.session_scope() as s:
                await s.execute(
                    text("INSERT INTO bench_webhooks (id, resource_id) VALUES (:id, :rid)"),
                    {"id": uuid.uuid4(), "rid": str(form.get("id"))},
                )
            return Response(status_code=200)

        server, task, port = await _serve(bare)
        started = time.perf_counter()
        await _post_all(port, "/hook", provider_ids, concurrency)
        baseline = n / (time.perf_counter() - started)
        server.should_exit = True
        await task

        # 2. end to end
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            DUEBOT_SECRET_KEY="bench",  # type: ignore[arg-type]
            mollie_api_key="test_bench",  # type: ignore[arg-type]
            mollie_api_base=fake.url,
        )
        provider = MollieProvider.from_settings(settings)
        pool = worker.embedded_redis_pool()
        clock = SystemClock()
        services = Services(settings=settings, db=db, redis=pool, clock=clock, payments=provider)
        from arq.constants import default_queue_name
        from arq.worker import Worker

        arq_worker = Worker(
            functions=[f for f in worker.WorkerSettings.functions if _name(f) == "drain_psp_events"],
            redis_pool=pool,
            ctx={"db": db, "clock": clock, "payments": provider, "settings": settings},
            handle_signals=False,  # poll_delay and max_jobs: arq's defaults, as `duebot worker` runs
        )
        jobs = asyncio.create_task(arq_worker.async_run())
        server, task, port = await _serve(create_app(services=services))
        started = time.perf_counter()
        await _post_all(port, "/webhooks/mollie", provider_ids, concurrency)
        in_ledger = text("SELECT count(DISTINCT payment_id) FROM ledger_entries WHERE payment_id IS NOT NULL")
        while True:
            async with db.sessionmaker() as s:
                done = int((await s.execute(in_ledger)).scalar_one())
            if done >= n:
                break
            await asyncio.sleep(0.2)
        e2e = n / (time.perf_counter() - started)
        server.should_exit = True
        await task
        # drain jobs of the last slots may still be queued or running (they find nothing): let them end
        running = arq_worker.tasks.values()
        while await pool.zcard(default_queue_name) or any(not t.done() for t in running):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        jobs.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await jobs
        await arq_worker.close()
        await _check_exactly_once(db, n)
        return baseline, e2e
    finally:
        await fake.stop()
        await db.dispose()


if __name__ == "__main__":  # python -m bench.payments: this benchmark alone, printed, nothing written
    import os

    from bench.report import BENCH_DIR, DEFAULT_DATABASE_URL

    section = run(
        Context(
            database_url=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
            work_dir=BENCH_DIR / ".work",
            deadline=time.monotonic() + 3600,
        )
    )
    for r in section.results:
        print(r)
