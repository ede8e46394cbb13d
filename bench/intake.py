"""Invoice intake: the API in chunks and the CSV importer, against a raw COPY of the same rows.

Three phases, each from empty invoice tables (debtors and the API key stay):

1. COPY: asyncpg ``copy_records_to_table('invoices')`` of prepared records, plus the batch row,
   in one transaction. Best case for the database; the denominator of both ratios.
2. API: `duebot serve` in a subprocess; sequential POST /api/v1/invoice-batches of 1,000 invoices
   each over one keep-alive httpx connection. Peak RSS of the server from os.wait4 after SIGINT.
3. CSV: `duebot import FILE` in a subprocess (the whole file is one batch). Wall clock includes
   the interpreter's start-up. Peak RSS from os.wait4.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from bench import data, pg
from bench.procs import Server, run_measured, tail
from bench.report import Context, Result, Section, env_int, format_value
from core.base import new_id

CHUNK = 1000
API_RATIO_GOAL = 0.10
CSV_RATIO_GOAL = 0.25
RSS_LIMIT_MB = 300.0


@dataclass
class Phase:
    name: str
    seconds: float
    invoices: int
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.invoices / self.seconds


@dataclass
class Setup:
    invoices: int
    debtors: int
    rows: list[data.Row]
    debtor_ids: dict[str, uuid.UUID]
    token: str
    pg_version: str
    pg_settings: str


def run(ctx: Context) -> Section:
    n_invoices = env_int("BENCH_INVOICES", 100_000)
    n_debtors = env_int("BENCH_DEBTORS", 20_000)
    copy_repeats = env_int("BENCH_COPY_REPEATS", 5, size=False)
    idempotency = os.environ.get("BENCH_IDEMPOTENCY", "1") != "0"

    print(f"intake: recreating {ctx.database_url.rsplit('/', 1)[-1]} and migrating", flush=True)
    pg.recreate_and_migrate(ctx.database_url)
    setup = asyncio.run(_setup(ctx, n_invoices, n_debtors))
    ctx.facts["PostgreSQL"] = setup.pg_version
    ctx.facts["PostgreSQL settings"] = setup.pg_settings

    copies = [asyncio.run(_copy_phase(ctx, setup)) for _ in range(copy_repeats)]
    copy = sorted(copies, key=lambda p: p.seconds)[len(copies) // 2]  # the median run
    print(f"intake: COPY {copy.rate:,.0f} invoices/s (median of {len(copies)})", flush=True)

    api, latencies, server_rss = _api_phase(ctx, setup, idempotency)
    print(f"intake: API {api.rate:,.0f} invoices/s, server peak RSS {api.peak_rss_mb:.0f} MB", flush=True)

    csv_phase, csv_bytes = _csv_phase(ctx, setup)
    print(
        f"intake: CSV {csv_phase.rate:,.0f} invoices/s, peak RSS {csv_phase.peak_rss_mb:.0f} MB", flush=True
    )

    assert api.peak_rss_mb is not None and csv_phase.peak_rss_mb is not None
    results = [
        Result("intake.copy.invoices_per_s", round(copy.rate, 1), "invoices/s"),
        Result("intake.api.invoices_per_s", round(api.rate, 1), "invoices/s"),
        Result("intake.csv.invoices_per_s", round(csv_phase.rate, 1), "invoices/s"),
        Result.checked(
            "intake.api.ratio_to_copy", round(api.rate / copy.rate, 4), "ratio", ">=", API_RATIO_GOAL
        ),
        Result.checked(
            "intake.csv.ratio_to_copy", round(csv_phase.rate / copy.rate, 4), "ratio", ">=", CSV_RATIO_GOAL
        ),
        Result.checked("intake.api.peak_rss_mb", round(api.peak_rss_mb, 1), "MB", "<", RSS_LIMIT_MB),
        Result.checked("intake.csv.peak_rss_mb", round(csv_phase.peak_rss_mb, 1), "MB", "<", RSS_LIMIT_MB),
    ]
    markdown = _markdown(setup, copies, copy, api, csv_phase, latencies, server_rss, csv_bytes, idempotency)
    return Section("Invoice intake: API and CSV against COPY", results, markdown)


async def _setup(ctx: Context, n_invoices: int, n_debtors: int) -> Setup:
    debtors = data.debtor_external_ids(n_debtors)
    rows = data.invoices(n_invoices, debtors)
    conn = await pg.connect(ctx.database_url)
    try:
        debtor_ids = await pg.seed_debtors(conn, debtors)
        version = await pg.server_version(conn)
        settings = await pg.settings_summary(conn)
    finally:
        await conn.close()
    token = await pg.create_api_key(ctx.database_url)
    return Setup(n_invoices, n_debtors, rows, debtor_ids, token, version, settings)


async def _expect_invoices(ctx: Context, expected: int, phase: str) -> None:
    conn = await pg.connect(ctx.database_url)
    try:
        found = await pg.count(conn, "invoices")
    finally:
        await conn.close()
    if found != expected:
        raise RuntimeError(f"{phase}: expected {expected} invoices in the database, found {found}")


async def _empty(ctx: Context) -> None:
    conn = await pg.connect(ctx.database_url)
    try:
        await pg.empty_intake_tables(conn)
    finally:
        await conn.close()


async def _copy_phase(ctx: Context, setup: Setup) -> Phase:
    conn = await pg.connect(ctx.database_url)
    try:
        await pg.empty_intake_tables(conn)
        now = datetime.now(UTC)
        batch_id = new_id()
        records = data.copy_records(setup.rows, setup.debtor_ids, batch_id, now)
        totals = json.dumps({"EUR": sum(r.amount_minor for r in setup.rows)})
        start = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO invoice_batches (id, status, source, count, totals, created_by, created_at)"
                " VALUES ($1, 'pending_approval', 'copy', $2, $3::jsonb, 'cli:bench', $4)",
                batch_id,
                len(records),
                totals,
                now,
            )
            await conn.copy_records_to_table("invoices", records=records, columns=list(data.COPY_COLUMNS))
        seconds = time.perf_counter() - start
        found = await pg.count(conn, "invoices")
    finally:
        await conn.close()
    if found != setup.invoices:
        raise RuntimeError(f"COPY: expected {setup.invoices} invoices, found {found}")
    return Phase("COPY", seconds, setup.invoices)


def _api_phase(
    ctx: Context, setup: Setup, idempotency: bool
) -> tuple[Phase, list[float], tuple[float, float | None]]:
    asyncio.run(_empty(ctx))
    bodies = data.api_bodies(setup.rows, CHUNK)
    var_dir = ctx.work_dir / "var"
    var_dir.mkdir(exist_ok=True)
    server = Server(
        ctx.bin_dir / "duebot",
        env=ctx.subprocess_env(var_dir),
        cwd=ctx.work_dir,
        log=ctx.work_dir / "server.log",
    )
    headers = {"Authorization": f"Bearer {setup.token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    try:
        server.start()
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120.0) as client:
            # Warm-up without writing: authentication, the connection pool, the keep-alive connection.
            warm = client.get("/api/v1/invoice-batches", params={"limit": 1})
            if warm.status_code != 200:
                raise RuntimeError(f"warm-up answered {warm.status_code}: {warm.text[:500]}")
            idle_rss = server.rss_mb()
            start = time.perf_counter()
            for i, body in enumerate(bodies):
                if time.monotonic() > ctx.deadline:
                    raise TimeoutError("the bench ran out of time during the API phase")
                extra = {"Idempotency-Key": f"bench-{i}"} if idempotency else None
                sent = time.perf_counter()
                answer = client.post("/api/v1/invoice-batches", content=body, headers=extra)
                latencies.append(time.perf_counter() - sent)
                if answer.status_code != 201:
                    raise RuntimeError(f"request {i} answered {answer.status_code}: {answer.text[:500]}")
            seconds = time.perf_counter() - start
        hwm_before_stop = server.hwm_mb()
    except BaseException:
        server.stop()
        print(tail(server.log))
        raise
    stopped = server.stop(timeout=min(60.0, ctx.seconds_left()))
    if stopped.code != 0:
        print(f"intake: note: the server exited with {stopped.code}:\n{tail(server.log)}")
    asyncio.run(_expect_invoices(ctx, setup.invoices, "API"))
    return Phase("API", seconds, setup.invoices, stopped.peak_rss_mb), latencies, (idle_rss, hwm_before_stop)


def _csv_phase(ctx: Context, setup: Setup) -> tuple[Phase, int]:
    csv_path = ctx.work_dir / "invoices.csv"
    size = data.write_csv(setup.rows, csv_path)
    asyncio.run(_empty(ctx))
    var_dir = ctx.work_dir / "var"
    var_dir.mkdir(exist_ok=True)
    log = ctx.work_dir / "import.log"
    done = run_measured(
        [str(ctx.bin_dir / "duebot"), "import", str(csv_path)],
        env=ctx.subprocess_env(var_dir),
        cwd=ctx.work_dir,
        log=log,
        timeout=ctx.seconds_left(),
    )
    if done.code != 0:
        raise RuntimeError(f"duebot import exited with {done.code}:\n{tail(log)}")
    asyncio.run(_expect_invoices(ctx, setup.invoices, "CSV"))
    return Phase("CSV", done.wall_s, setup.invoices, done.peak_rss_mb), size


def _markdown(
    setup: Setup,
    copies: list[Phase],
    copy: Phase,
    api: Phase,
    csv_phase: Phase,
    latencies: list[float],
    server_rss: tuple[float, float | None],
    csv_bytes: int,
    idempotency: bool,
) -> str:
    def row(p: Phase, ratio_goal: float | None) -> str:
        ratio = p.rate / copy.rate
        goal = f"≥ {ratio_goal:.2f}" if ratio_goal is not None else "baseline"
        rss = f"{p.peak_rss_mb:.0f}" if p.peak_rss_mb is not None else "n/a"
        return f"| {p.name} | {p.seconds:.2f} | {format_value(p.rate)} | {ratio:.3f} | {goal} | {rss} |"

    idle_rss, hwm = server_rss
    hwm_text = f"{hwm:.0f} MB" if hwm is not None else "unknown"
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"""
**Data.** {setup.invoices:,} invoices for {setup.debtors:,} debtors (invoice *i* belongs to debtor
*i* mod {setup.debtors:,}, so a chunk of {CHUNK:,} touches {min(CHUNK, setup.debtors):,} debtors),
all EUR, amounts 1.00 to 999.99, no description, no PDF. The debtors are seeded once with COPY;
before each phase `invoices`, `invoice_documents`, `invoice_batches`, `audit_events` and
`idempotency_records` are truncated and the database is checkpointed. After each phase the bench
checks that exactly {setup.invoices:,} invoices exist.

| Path | Seconds | Invoices/s | Ratio to COPY | Goal | Peak RSS (MB) |
|---|---:|---:|---:|---|---:|
{row(copy, None)}
{row(api, API_RATIO_GOAL)}
{row(csv_phase, CSV_RATIO_GOAL)}

**COPY** (the baseline): one asyncpg connection, `INSERT` of the batch row and
`copy_records_to_table('invoices', ...)` of prepared tuples with the columns the intake writes, in
one transaction, timed from `BEGIN` to `COMMIT`. Building the tuples is not timed. Run
{len(copies)} times from empty tables; the median is used
({", ".join(f"{p.seconds:.2f} s" for p in copies)}).

**API**: `duebot serve` (uvicorn, one process) in a subprocess with its own `DATABASE_URL`,
`DUEBOT_LOG_LEVEL=WARNING` and an API key created through `core.access.service.create_key`.
After `/healthz` answers and one authenticated `GET` warms the connection pool,
{len(latencies)} `POST /api/v1/invoice-batches` requests of {CHUNK:,} invoices each go out one after
the other over one keep-alive httpx connection{", each with its own `Idempotency-Key`" if idempotency else ""};
every one must answer 201. Timed from the first request to the last answer; the JSON bodies are
serialised before. Per request: median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms,
max {ms[-1]:.0f} ms. Peak RSS is `ru_maxrss` from `os.wait4()` on the server process after SIGINT
(its whole life: start-up, the warm-up, all requests, shutdown). Its RSS before the first POST
was {idle_rss:.0f} MB (psutil) and its `VmHWM` just before SIGINT {hwm_text} (`/proc/PID/status`).

**CSV**: the rows are written to a {csv_bytes / 1024 / 1024:.1f} MB CSV file beforehand
(`external_id,debtor_external_id,number,issue_date,due_date,amount,currency`), then
`duebot import FILE` runs as a subprocess and imports the whole file as one batch. Timed is the
subprocess's wall clock from spawn to exit, interpreter start-up and imports included; it must
exit 0. Peak RSS is `ru_maxrss` from `os.wait4()`.

**How peak RSS is taken.** Each subprocess is started through `bench/launch.py`, a stdlib-only
launcher (`python -I -S`, about 10 MB) that spawns the command, forwards SIGINT, reaps it with
`os.wait4()` and reports `ru_maxrss` (KiB on Linux) and the wall clock. Started straight from the
bench, a child would report the bench's own peak instead whenever that is larger: at `exec` Linux
keeps the old address space's high-water mark in the process's `maxrss`, and CPython's
`subprocess` spawns with vfork, so that old address space is the bench's, which holds all the rows
(its own peak in this run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB). The RSS goal is under {RSS_LIMIT_MB:.0f} MB for both processes.
""".strip()
