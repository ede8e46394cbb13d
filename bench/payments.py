"""Mollie webhooks end to end against a bare FastAPI endpoint doing one INSERT (issue 4, benchmark 1).

Every party runs in its own process, as in production, and both phases get the same load from the
same driver: ``BENCH_WEBHOOKS`` (2,000) form POSTs ``id=tr_…``, each for a different paid payment,
from ``BENCH_WEBHOOK_CONCURRENCY`` (16) clients of one aiohttp client session in the bench process
(aiohttp: httpx cost ~4 ms of CPU per POST, so the driver would have set the baseline's pace).

1. Baseline: ``python -m bench.payments bare PORT DATABASE_URL``, a uvicorn process (the same
   defaults as ``duebot serve``: uvloop, httptools) whose FastAPI app has one route that parses
   the form and INSERTs one row (SQLAlchemy async session on asyncpg, committed). Rate = webhooks
   / wall clock of the 2,000 POSTs.
2. End to end: ``duebot serve`` (the real app: ``POST /webhooks/mollie`` stores the event in one
   INSERT … ON CONFLICT DO NOTHING, commits and enqueues the debounced drain job in Redis), the
   arq worker (``python -m bench.payments worker``: ``arq.run_worker`` on ``worker.WorkerSettings``
   with its start-up and shut-down, Redis and retries, but only ``drain_psp_events`` and no cron
   jobs: the start-up dunning sweep would measure dunning), and the fake Mollie of
   tests/fakes/mollie.py (``python -m bench.payments fake PORT N``: Mollie is a remote service).
   The worker claims the events in batches, fetches each payment from the fake through
   mollie-api-python and posts the batch to the ledger in one transaction (payment row, ledger
   entry, invoice paid, dunning, audit, outbound event, event closed). Rate = webhooks / wall
   clock from the first POST until the ledger holds all 2,000 payments (polled every 0.1 s:
   distinct payments with ledger entries). That includes the tail after the last POST: the last
   slot's debounce (0.25 s slots), the worker's poll delay (0.1 s, as ``duebot worker`` runs) and
   the last batch. Afterwards the run checks it was exactly once: 2,000 payment rows, every invoice paid,
   every event processed; a miss fails the bench instead of reporting a rate.

Before each phase ``BENCH_WEBHOOK_WARMUP`` (50) webhooks for payments the fake does not know are
POSTed and (end to end) drained as ``unknown_payment``, not counted: connection pools, first
imports. The CPU time each process used during the timed phase is read from the kernel (psutil);
PostgreSQL's and Redis's are not (other load shares them).

Redis: ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); the run uses arq's default
queue there, so no live duebot may use that database. The database is
``<BENCH_DATABASE_URL>_payments``: 2,000 debtors, one open invoice each, and a PSP payment per
invoice that the fake Mollie reports as paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import text

from bench import pg
from bench.procs import Launched, Server, free_port, tail
from bench.report import ROOT, Context, Result, Section, env_int, format_value
from core.audit import Actor
from core.base import table_of
from core.bulk import insert_rows
from core.db import Database
from core.invoices import intake
from core.invoices import service as invoices
from core.invoices.intake import NewInvoice
from core.payments.models import PspPayment, PspPaymentInvoice

RATIO_GOAL = 0.5
BENCH = Actor("cli", "bench")
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
API_KEY = "test_bench"
LOOPBACK = "127.0.0.1"
HEALTH_KEY = "arq:queue:health-check"  # arq writes it on the worker's first poll


@dataclass
class Phase:
    seconds: float  # first POST to done
    posts_seconds: float  # first POST to the last answer
    cpu: dict[str, float] = field(default_factory=dict)  # process → CPU seconds in the phase

    def rate(self, n: int) -> float:
        return n / self.seconds


def run(ctx: Context) -> Section:
    n = env_int("BENCH_WEBHOOKS", 2000)
    concurrency = env_int("BENCH_WEBHOOK_CONCURRENCY", 16, size=False)
    warmup = env_int("BENCH_WEBHOOK_WARMUP", 50, size=False)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    url = pg.sibling_url(ctx.database_url, "payments")
    print(f"payments: recreating {url.rsplit('/', 1)[-1]} and migrating", flush=True)
    pg.recreate_and_migrate(url)
    asyncio.run(_seed(url, n))
    bare, e2e = asyncio.run(_measure(ctx, url, redis_url, n, warmup, concurrency))
    baseline, end_to_end = bare.rate(n), e2e.rate(n)
    ratio = end_to_end / baseline
    results = [
        Result("payments.webhook.baseline_rate", round(baseline, 1), "webhooks/s"),
        Result("payments.webhook.e2e_rate", round(end_to_end, 1), "webhooks/s"),
        Result.checked("payments.webhook.e2e_ratio", round(ratio, 3), "ratio", ">=", RATIO_GOAL),
        Result("payments.webhook.e2e_posts_rate", round(n / e2e.posts_seconds, 1), "webhooks/s"),
        Result("payments.webhook.e2e_tail_s", round(e2e.seconds - e2e.posts_seconds, 2), "s"),
    ]
    return Section(
        "Payments: Mollie webhooks end to end against a bare INSERT endpoint",
        results,
        _markdown(n, concurrency, warmup, bare, e2e),
    )


def _markdown(n: int, concurrency: int, warmup: int, bare: Phase, e2e: Phase) -> str:
    def cpu(phase: Phase, who: str) -> str:
        return f"{phase.cpu[who]:.2f}" if who in phase.cpu else "-"

    ratio = e2e.rate(n) / bare.rate(n)
    return (
        f"{n:,} Mollie webhooks from {concurrency} concurrent clients (one aiohttp session in the bench "
        f"process), each for a different paid payment (one open invoice per debtor), after {warmup} "
        "uncounted warm-up webhooks. Every party runs in its own process: the server under test "
        "(uvicorn, as `duebot serve`), the arq worker (`arq.run_worker` on `worker.WorkerSettings`, "
        "only `drain_psp_events`, no cron jobs), the fake Mollie (tests/fakes/mollie.py), the "
        "driver. PostgreSQL and Redis are local.\n\n"
        "| phase | webhooks/s | all POSTs answered after | done after | CPU s: server | worker | "
        "fake Mollie | driver |\n|---|---|---|---|---|---|---|---|\n"
        f"| bare FastAPI endpoint, one INSERT per request | {format_value(bare.rate(n))} | "
        f"{bare.posts_seconds:.2f} s | {bare.seconds:.2f} s | {cpu(bare, 'server')} | - | - | "
        f"{cpu(bare, 'driver')} |\n"
        "| duebot end to end: store (one INSERT … ON CONFLICT DO NOTHING), enqueue a debounced "
        "drain; the arq worker claims events in batches, fetches the payments from the fake "
        f"Mollie, posts each batch to the ledger in one transaction; until all {n:,} payments are "
        f"in the ledger | {format_value(e2e.rate(n))} | {e2e.posts_seconds:.2f} s | {e2e.seconds:.2f} s | "
        f"{cpu(e2e, 'server')} | {cpu(e2e, 'worker')} | {cpu(e2e, 'fake')} | {cpu(e2e, 'driver')} |\n\n"
        f'Ratio {ratio:.2f} (goal at least {RATIO_GOAL}). "Done after" is the end of the POSTs for '
        "the baseline; end to end it is when the ledger held every payment (polled every 0.1 s), so "
        "it includes the tail after the last POST: the last slot's debounce (0.25 s), the worker's "
        "poll delay (0.1 s) and the last batch. CPU seconds are the processes' own in the timed phase "
        "(PostgreSQL's are not counted). The machine has two cores.\n"
    )


async def _seed(url: str, n: int) -> None:
    """n debtors with one approved invoice each and a PSP payment per invoice (tr_bench0…)."""
    db = Database.from_url(url)
    try:
        await _seed_in(db, n)
    finally:
        await db.dispose()
    conn = await pg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_webhooks (id uuid PRIMARY KEY, resource_id text NOT NULL)")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _seed_in(db: Database, n: int) -> None:
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


# Measuring ---------------------------------------------------------------------------------------


def _env(url: str, redis_url: str, mollie_base: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("DUEBOT_", "BENCH_", "MOLLIE_")) or k in ("DATABASE_URL", "REDIS_URL"))
    }
    return env | {
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "MOLLIE_API_KEY": API_KEY,
        "MOLLIE_API_BASE": mollie_base,
        "DUEBOT_SECRET_KEY": "bench",
        "DUEBOT_LOG_LEVEL": "WARNING",  # a log line per webhook would be measured too
    }


class _Cpu:
    """CPU seconds (user + system) of named processes and of this one, between two reads."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {who: psutil.Process(pid) for who, pid in pids.items()}
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        out = {who: sum(p.cpu_times()[:2]) for who, p in self.procs.items()}
        mine = resource.getrusage(resource.RUSAGE_SELF)
        return out | {"driver": mine.ru_utime + mine.ru_stime}

    def used(self) -> dict[str, float]:
        return {who: after - self.before[who] for who, after in self._read().items()}


@contextlib.asynccontextmanager
async def _driver(concurrency: int) -> AsyncIterator[aiohttp.ClientSession]:
    """The load generator: aiohttp, ``concurrency`` keep-alive connections (httpx cost ~4 ms of CPU
    per POST here, so the driver, not the server, would set the baseline's pace)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


async def _post_all(client: aiohttp.ClientSession, url: str, ids: list[str], concurrency: int) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in ids:
        queue.put_nowait(i)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async def one_client() -> None:
        while not queue.empty():
            pid = queue.get_nowait()
            async with client.post(url, data=f"id={pid}".encode(), headers=headers) as r:
                await r.read()
                r.raise_for_status()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))


async def _until(db: Database, sql: str, n: int, *, every: float = 0.1, within: float = 600.0) -> None:
    deadline = time.monotonic() + within
    while True:
        async with db.sessionmaker() as s:
            if int((await s.execute(text(sql))).scalar_one()) >= n:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"payments: not done within {within:.0f} s: {sql}")
        await asyncio.sleep(every)


async def _measure(
    ctx: Context, url: str, redis_url: str, n: int, warmup: int, concurrency: int
) -> tuple[Phase, Phase]:
    from redis.asyncio import Redis

    ids = [f"tr_bench{i}" for i in range(n)]
    warm = [f"tr_warm{i}" for i in range(warmup)]
    fake_port = free_port()
    mollie_base = f"http://{LOOPBACK}:{fake_port}"
    env = _env(url, redis_url, mollie_base)
    me = [sys.executable, "-m", "bench.payments"]
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fake_log = ctx.work_dir / "payments-fake.log"
    fake = Launched(
        [*me, "fake", str(fake_port), str(n)],
        env=env,
        cwd=ROOT,
        log=fake_log,
        report=fake_log.with_suffix(".rusage.json"),
    )
    db = Database.from_url(url)
    redis = Redis.from_url(redis_url)
    try:
        await _wait_fake(fake, mollie_base, fake_log)
        fake_pid = fake.command_pid()
        assert fake_pid is not None
        await redis.delete("arq:queue", HEALTH_KEY)

        # 1. the baseline
        bare_srv = Server(
            ROOT,
            env=env,
            cwd=ROOT,
            log=ctx.work_dir / "payments-bare.log",
            command=lambda port: [*me, "bare", str(port), url],
        )
        await asyncio.to_thread(bare_srv.start)
        try:
            hook = f"{bare_srv.base_url}/hook"
            async with _driver(concurrency) as c:
                await _post_all(c, hook, warm, concurrency)
                print(f"payments: bare endpoint: {n} webhooks, {concurrency} clients", flush=True)
                cpu = _Cpu({"server": bare_srv.pid})
                started = time.perf_counter()
                await _post_all(c, hook, ids, concurrency)
                posted = time.perf_counter() - started
                bare = Phase(posted, posted, cpu.used())
        finally:
            await asyncio.to_thread(bare_srv.stop)

        # 2. end to end
        worker_log = ctx.work_dir / "payments-worker.log"
        work = Launched(
            [*me, "worker"], env=env, cwd=ROOT, log=worker_log, report=worker_log.with_suffix(".rusage.json")
        )
        api = Server(ctx.bin_dir / "duebot", env=env, cwd=ROOT, log=ctx.work_dir / "payments-api.log")
        try:
            await asyncio.to_thread(api.start)
            await _wait_worker(work, redis, worker_log)
            worker_pid = work.command_pid()
            assert worker_pid is not None
            processed = "SELECT count(*) FROM psp_events WHERE processed_at IS NOT NULL"
            webhook = f"{api.base_url}/webhooks/mollie"
            async with _driver(concurrency) as c:
                await _post_all(c, webhook, warm, concurrency)
                await _until(db, processed, warmup)
                print(f"payments: end to end: {n} webhooks, {concurrency} clients", flush=True)
                cpu = _Cpu({"server": api.pid, "worker": worker_pid, "fake": fake_pid})
                started = time.perf_counter()
                await _post_all(c, webhook, ids, concurrency)
                posted = time.perf_counter() - started
                in_ledger = (
                    "SELECT count(DISTINCT payment_id) FROM ledger_entries WHERE payment_id IS NOT NULL"
                )
                await _until(db, in_ledger, n)
                e2e = Phase(time.perf_counter() - started, posted, cpu.used())
            # drain jobs of the last slots may still be queued (they find nothing): let them end
            await _until(db, processed, warmup + n)
            deadline = time.monotonic() + 10
            while await redis.zcard("arq:queue") and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            await asyncio.to_thread(api.stop)
            work.signal(2)
            done = await asyncio.to_thread(work.finish, 30.0)
            if done.code not in (0, -2, 130):
                raise SystemExit(f"payments: the worker exited with {done.code}:\n{tail(worker_log)}")
        await _check_exactly_once(db, n)
        return bare, e2e
    finally:
        fake.signal(2)
        await asyncio.to_thread(fake.finish, 10.0)
        await redis.aclose()
        await db.dispose()


async def _wait_fake(fake: Launched, base: str, log: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        while time.monotonic() < deadline:
            if not fake.running():
                raise SystemExit(f"payments: the fake Mollie exited:\n{tail(log)}")
            try:
                if (await c.get(f"{base}/v2/payments/tr_bench0")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"payments: the fake Mollie did not answer within {within:.0f} s:\n{tail(log)}")


async def _wait_worker(work: Launched, redis: Any, log: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not work.running():
            raise SystemExit(f"payments: the worker exited:\n{tail(log)}")
        if await redis.exists(HEALTH_KEY):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"payments: the worker did not start within {within:.0f} s:\n{tail(log)}")


async def _check_exactly_once(db: Database, n: int) -> None:
    checks = {
        "payments": "SELECT count(*) FROM payments",
        "paid invoices": "SELECT count(*) FROM invoices WHERE status = 'paid'",
        "processed events": "SELECT count(*) FROM psp_events WHERE processed_at IS NOT NULL "
        "AND resource_id LIKE 'tr_bench%'",
        "posted PSP payments": "SELECT count(*) FROM psp_payments WHERE ledger_payment_id IS NOT NULL",
    }
    async with db.sessionmaker() as s:
        for what, sql in checks.items():
            got = int((await s.execute(text(sql))).scalar_one())
            if got != n:
                raise AssertionError(f"end to end: {got} {what}, expected {n}")


# The processes -----------------------------------------------------------------------------------


def _serve_bare(port: int, url: str) -> None:
    """The baseline: a FastAPI app whose route parses the form and INSERTs one row."""
    import uvicorn

    db = Database.from_url(url)
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

    @bare.get("/healthz")
    async def healthz() -> Response:
        return Response("ok")

    uvicorn.run(bare, host=LOOPBACK, port=port, log_level="warning")


def _serve_fake(port: int, n: int) -> None:
    from tests.fakes.mollie import FakeMollie, FakePayment

    async def main() -> None:
        fake = FakeMollie()
        now = datetime.now(UTC)
        for i in range(n):
            pid = f"tr_bench{i}"
            fake.payments[pid] = FakePayment(
                pid, 10_000 + i, "EUR", "bench", None, None, {}, now, now, status="paid"
            )
        await fake.start(port)
        try:
            await asyncio.Event().wait()  # until SIGINT
        finally:
            await fake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def _run_worker() -> None:
    """``duebot worker`` with only the drain job and no cron jobs."""
    from arq import func
    from arq.worker import run_worker

    import worker
    from core.config import Settings
    from core.logging import configure as configure_logging

    settings = Settings()
    configure_logging(settings.log_level)

    run_worker(
        worker.WorkerSettings,  # type: ignore[arg-type]
        functions=[func(worker.drain_psp_events, keep_result=0)],
        cron_jobs=[],
        redis_settings=worker.redis_settings(settings),
    )


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    if argv[1:2] == ["bare"] and len(argv) == 4:
        _serve_bare(int(argv[2]), argv[3])
    elif argv[1:2] == ["fake"] and len(argv) == 4:
        _serve_fake(int(argv[2]), int(argv[3]))
    elif argv[1:] == ["worker"]:
        _run_worker()
    elif len(argv) == 1:  # this benchmark alone, printed, nothing written
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
        print(section.markdown)
    else:
        print(
            "usage: python -m bench.payments [bare PORT DATABASE_URL | fake PORT N | worker]", file=sys.stderr
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
