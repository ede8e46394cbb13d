"""Reminder delivery over Telegram: two worker processes against flood control (issue 3, benchmark 3).

2,000 reminders (``BENCH_TELEGRAM_REMINDERS``) for as many debtors, who share 1,000 chats
(``BENCH_TELEGRAM_CHATS``: two debtors per chat, so the limit per chat matters too), are queued by the
real dunning sweep in ``<bench database>_telegram``. Two worker processes then run the real outbox
delivery (``core.messaging.delivery.deliver`` with the real ``TelegramSender`` and the shared
Redis-backed ``RateLimiter``: 30/s overall, 1/s per chat) in a loop until the outbox is empty, as
the arq job does every tick, against the fake Bot API of tests/fakes/telegram.py running in this
process. The fake enforces Telegram's flood control: more than 30 sends in any second, or two to one
chat within a second, are answered 429 with retry_after (a 50 ms tolerance for the timing jitter
between a grant in Redis and the request's arrival).

Figures: the achieved rate (sends accepted by the fake, from the first to the last) as a fraction of
30/s, goal at least 0.9; and the 429s received, goal 0.

Environment: ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``; keys under a fresh prefix).
The workers are ``python -m bench.telegram_delivery worker …``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench import pg
from bench.report import ROOT, Context, Result, Section, env_int

OVERALL = 30  # per second, Telegram's limit across chats
RATE_GOAL = 0.9
WORKERS = 2
BATCH = 10  # messages a delivery loop claims per pass
LOOPS = 4  # delivery loops per worker process
IDLE = 0.02  # seconds a worker waits when nothing is due
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Outcome:
    reminders: int
    chats: int
    accepted: int
    too_many: int
    first_to_last_s: float
    wall_s: float
    sent_in_db: int
    worker_stats: list[dict[str, Any]]
    worker_cpu_s: float
    too_many_overall: int = 0
    too_many_per_chat: int = 0
    per_second: list[int] = field(default_factory=list)  # accepted sends in each second

    @property
    def rate(self) -> float:
        return (self.accepted - 1) / self.first_to_last_s if self.first_to_last_s > 0 else 0.0


def run(ctx: Context) -> Section:
    reminders = env_int("BENCH_TELEGRAM_REMINDERS", 2_000)
    chats = env_int("BENCH_TELEGRAM_CHATS", 1_000)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    url = pg.sibling_url(ctx.database_url, "telegram")
    print(f"telegram: recreating {url.rsplit('/', 1)[-1]} and migrating", flush=True)
    pg.recreate_and_migrate(url)
    asyncio.run(_seed(url, reminders, chats))
    outcome = asyncio.run(_deliver(ctx, url, redis_url, reminders, chats))
    fraction = outcome.rate / OVERALL
    results = [
        Result.checked(
            "telegram.delivery.rate_fraction_of_30ps", round(fraction, 3), "ratio", ">=", RATE_GOAL
        ),
        Result.checked("telegram.delivery.429s_received", outcome.too_many, "count", "<=", 0),
        Result("telegram.delivery.messages_per_second", round(outcome.rate, 2), "msg/s"),
        Result("telegram.delivery.seconds_2000", round(outcome.first_to_last_s, 2), "s"),
    ]
    return Section("Telegram delivery: two workers under flood control", results, _markdown(outcome))


# Seeding -----------------------------------------------------------------------------------------


def _midday_zone(now: datetime) -> str:
    """An Etc/GMT zone where it is about noon now, so that quiet hours never defer the bench."""
    offset = (12 - now.hour + 12) % 24 - 12  # -12 … 11
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


async def _seed(url: str, reminders: int, chats: int) -> None:
    """Debtors (Telegram first) with a Telegram chat each, an overdue invoice each, swept into reminders."""
    from sqlalchemy import select, update
    from sqlmodel import col

    from core.audit import Actor
    from core.db import Database
    from core.dunning import distribution
    from core.dunning.models import DunningAction
    from core.dunning.sweep import sweep
    from core.invoices import intake
    from core.invoices import service as invoices
    from core.invoices.intake import NewInvoice
    from core.messaging.models import Message, MessageStatus

    now = datetime.now(UTC)
    zone = _midday_zone(now)
    ZoneInfo(zone)  # fail early on a bad name
    ids = [f"TG-{n:05d}" for n in range(reminders)]
    conn = await pg.connect(url)
    try:
        debtor_ids = await pg.seed_debtors(conn, ids)
        await conn.execute("UPDATE debtors SET channel_order = $1, timezone = $2", '["telegram"]', zone)
        await conn.copy_records_to_table(
            "contact_points",
            records=[
                (uuid.uuid4(), debtor_ids[ext], "telegram", str(10_000 + n % chats), True, True, False, now)
                for n, ext in enumerate(ids)
            ],
            columns=["id", "debtor_id", "kind", "address", "verified", "consent", "opted_out", "created_at"],
        )
    finally:
        await conn.close()

    today = now.date()
    rows = [
        NewInvoice(
            external_id=f"TGI-{n:05d}",
            debtor_external_id=ext,
            number=f"2026-T{n:05d}",
            issue_date=today - timedelta(days=37),
            due_date=today - timedelta(days=7),  # the first reminder (+7 days) is due today
            currency="EUR",
            amount_minor=12_345,
        )
        for n, ext in enumerate(ids)
    ]
    actor = Actor("cli", "bench")
    db = Database.from_url(url)
    try:
        async with db.session_scope() as s:
            batch = (
                await intake.create_batch(s, rows, actor=actor, source="bench", max_items=len(rows))
            ).batch
            await invoices.approve(s, batch.id, actor=actor)
            issued = select(col(DunningAction.message_id)).where(
                col(DunningAction.stage_key) == distribution.ISSUED
            )
            await s.execute(
                update(Message)
                .where(col(Message.id).in_(issued))
                .values(status=MessageStatus.sent.value, channel="email", sent_at=now - timedelta(days=30))
            )
            await distribution.mark_issued(s, now - timedelta(days=30))
        async with db.session_scope() as s:
            result = await sweep(s, now=now)
    finally:
        await db.dispose()
    if result.messages != reminders:
        raise SystemExit(f"telegram: the sweep queued {result.messages} reminders, expected {reminders}")
    print(f"telegram: {reminders} reminders queued for {chats} chats", flush=True)


# Delivering --------------------------------------------------------------------------------------


async def _deliver(ctx: Context, url: str, redis_url: str, reminders: int, chats: int) -> Outcome:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.telegram import telegram_api

    prefix = f"bench:telegram:{uuid.uuid4()}"
    async with telegram_api(enforce_limits=True, overall=OVERALL, per_chat=1) as fake:
        started = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUEBOT_")} | {
            "DUEBOT_LOG_LEVEL": "WARNING"
        }
        deadline = str(time.time() + min(ctx.seconds_left(), 20 * 60))
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.telegram_delivery",
                "worker",
                url,
                redis_url,
                fake.base,
                prefix,
                deadline,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(WORKERS)
        ]
        # Both workers start delivering together, once each has imported and connected: the figure
        # is about delivery, not about how long Python takes to load aiogram on a busy machine.
        for p in procs:
            assert p.stdout is not None and p.stdin is not None
            ready = await asyncio.wait_for(p.stdout.readline(), ctx.seconds_left())
            if ready.strip() != b"ready":
                raise SystemExit(f"telegram: a worker did not start: {ready!r}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if any(p.returncode for p in procs):
            raise SystemExit(f"telegram: a worker failed: {[p.returncode for p in procs]}")
        accepted = fake.delivered
        too_many, overall, per_chat = fake.too_many, fake.too_many_overall, fake.too_many_per_chat
        seconds = [int(c.at - accepted[0].at) for c in accepted] if accepted else []
        per_second = [seconds.count(n) for n in range(max(seconds, default=-1) + 1)]
        stats = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    conn = await pg.connect(url)
    try:
        sent_in_db = int(
            await conn.fetchval("SELECT count(*) FROM messages WHERE kind = 'reminder' AND status = 'sent'")
        )
    finally:
        await conn.close()
    span = accepted[-1].at - accepted[0].at if len(accepted) > 1 else 0.0
    return Outcome(
        reminders,
        chats,
        len(accepted),
        too_many,
        span,
        wall,
        sent_in_db,
        stats,
        cpu,
        too_many_overall=overall,
        too_many_per_chat=per_chat,
        per_second=per_second,
    )


async def _worker(url: str, redis_url: str, api_base: str, prefix: str, deadline: float) -> dict[str, Any]:
    """One worker process: deliver until nothing is queued or sending."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from bots.telegram.bot import make_bot
    from bots.telegram.sender import TelegramSender
    from core.db import Database
    from core.messaging.delivery import deliver
    from core.messaging.models import Message
    from core.messaging.ratelimit import RateLimiter
    from core.ports import SystemClock
    from tests.fakes.telegram import TOKEN

    db = Database.from_url(url)
    limiter = RateLimiter(redis_url, key_prefix=prefix)
    sender = TelegramSender(make_bot(TOKEN, api_base))
    totals = {"passes": 0, "claimed": 0, "sent": 0, "requeued": 0, "failed": 0}
    pending = select(func.count()).select_from(Message).where(col(Message.status).in_(("queued", "sending")))
    async with db.sessionmaker() as s:  # connected and ready: tell the bench, wait for the start
        await s.scalar(pending)
    await limiter.acquire("bench-warm-up", "-")
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def loop() -> None:
        # One delivery loop, as one arq job slot would run it; a worker runs LOOPS of them, as arq runs
        # several jobs at once (max_jobs), so that one message's database round trips do not hold up
        # the next.
        while time.time() < deadline:
            stats = await deliver(
                db,
                {"telegram": sender},
                clock=SystemClock(),
                limiter=limiter,
                creditor_name="Bench B.V.",
                batch=BATCH,
            )
            totals["passes"] += 1
            for key in ("claimed", "sent", "requeued", "failed"):
                totals[key] += getattr(stats, key)
            if stats.claimed == 0:
                async with db.sessionmaker() as s:
                    if not await s.scalar(pending):
                        return
                await asyncio.sleep(IDLE)

    try:
        await asyncio.gather(*(loop() for _ in range(LOOPS)))
    finally:
        await sender.aclose()
        await limiter.aclose()
        await db.dispose()
    return totals


def _markdown(o: Outcome) -> str:
    per_worker = "; ".join(
        f"worker {n + 1} ({LOOPS} delivery loops): {s['sent']} sent, {s['requeued']} requeued by the rate limiter, {s['passes']} passes"
        for n, s in enumerate(o.worker_stats)
    )
    return "\n".join(
        [
            f"{o.reminders:,} reminders for {o.reminders:,} debtors in {o.chats:,} Telegram chats, queued by the dunning "
            f"sweep, delivered by {WORKERS} worker processes (the real outbox delivery, TelegramSender and the "
            "Redis-backed rate limiter: 30/s overall, 1/s per chat) through a fake Bot API that answers 429 beyond "
            "30 sends in any second or a second send to one chat within a second.",
            "",
            "| | |",
            "|---|---|",
            f"| sends accepted | {o.accepted:,} ({o.sent_in_db:,} reminders sent in the database) |",
            f"| first to last accepted send | {o.first_to_last_s:.2f} s |",
            f"| achieved rate | {o.rate:.2f}/s = {o.rate / OVERALL:.3f} of 30/s (goal ≥ {RATE_GOAL}) |",
            f"| 429s received | {o.too_many} (goal 0): {o.too_many_overall} over 30/s, {o.too_many_per_chat} per chat |",
            f"| wall clock, worker start-up included | {o.wall_s:.1f} s |",
            f"| sends per second: median, slowest | {_median(o.per_second)}, {min(o.per_second[:-1] or [0])} |",
            f"| CPU time of the two workers (user + system) | {o.worker_cpu_s:.1f} s, "
            f"{1000 * o.worker_cpu_s / max(1, o.accepted):.1f} ms per reminder |",
            "",
            per_worker + ".",
        ]
    )


def _median(values: list[int]) -> float:
    ordered = sorted(values[:-1] or values)  # the last second is partial
    return ordered[len(ordered) // 2] if ordered else 0


def main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] != "worker":
        print(
            "usage: python -m bench.telegram_delivery worker DATABASE_URL REDIS_URL API_BASE PREFIX DEADLINE"
        )
        return 2
    _, url, redis_url, api_base, prefix, deadline = argv
    from core.logging import configure

    configure("WARNING")  # as `duebot worker` with DUEBOT_LOG_LEVEL=WARNING: no line per message
    totals = asyncio.run(_worker(url, redis_url, api_base, prefix, float(deadline)))
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
