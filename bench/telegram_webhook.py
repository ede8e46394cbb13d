"""Telegram updates through the webhook, answered by the conversation engine (issue 5's benchmark).

5,000 updates (``BENCH_TGWEBHOOK_UPDATES``) are POSTed to ``/webhooks/telegram`` of a uvicorn
process (uvloop, httptools; as ``duebot serve``) running the real app: the secret check, aiogram's
Dispatcher and router, ``bots.chat.converse`` (one unit of work per update) with the real
conversation engine ``core.conversation.engine.handle``, the pure renderer and ``sendMessage``
through aiogram to the fake Bot API of tests/fakes/telegram.py, which runs in this process and
records when each call arrives. Every update is ``/balance`` from its own linked chat (a debtor
with an open invoice in ``<bench database>_tgwebhook``), so the engine reads the chat, the debtor
and the ledger, and writes the inbound id, exactly as for a debtor asking for their balance.
The fake enforces no flood control here (it is off by default; every update has its own chat anyway,
so Telegram's 1/s per chat would not apply): the figure is the bot's, not Telegram's.

The driver (httpx in this process) keeps at most ``BENCH_TGWEBHOOK_CONCURRENCY`` (default 8) updates
outstanding, from the POST until the fake received the reply, as a closed loop: the webhook
answers 200 at once and works in the background, so an open loop would only measure how fast
updates pile up in the backlog. Latency is from just before the POST to the reply's arrival at the
fake; the rate is updates over the time from the first POST to the last reply.

The baseline, in the same run with the same driver, fake, updates and concurrency: a bare aiogram
Dispatcher with an echo handler (``message.answer(message.text)``) behind the same kind of
endpoint, a minimal Starlette route in the same uvicorn set-up that checks the secret, validates the
update and hands it to the Dispatcher in the background with the same bound (``bots.chat.Backlog``,
4 at a time). Measuring both over HTTP keeps the shared costs (the driver, HTTP, the fake) on both
sides, so that the ratio shows what duebot adds: FastAPI, the engine and its database work.

Both servers first answer ``BENCH_TGWEBHOOK_WARMUP`` (default 100) updates from other chats that
are not counted (connection pools, pydantic models, first imports).

The servers are ``python -m bench.telegram_webhook serve duebot|echo PORT DATABASE_URL API_BASE``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import pg
from bench.procs import Launched, free_port, tail
from bench.report import ROOT, Context, Result, Section, env_int

RATE_GOAL = 0.5  # of the bare Dispatcher's rate
P99_GOAL_MS = 50.0
SECRET = "bench-telegram-secret"
CHAT_BASE = 70_000_000
LOOPBACK = "127.0.0.1"
BACKGROUND = 4  # updates handled at once by either server (TelegramBot's default)


@dataclass
class Phase:
    name: str
    updates: int
    answered: int  # updates whose reply reached the fake
    errors: int  # non-200 answers or replies that never came
    seconds: float  # first POST to last reply
    latencies_ms: list[float]
    driver_cpu_s: float  # this process: httpx and the fake
    server_cpu_s: float
    server_rss_mb: float
    sends: int  # sendMessage calls the fake received

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(ctx: Context) -> Section:
    updates = env_int("BENCH_TGWEBHOOK_UPDATES", 5_000)
    warmup = env_int("BENCH_TGWEBHOOK_WARMUP", 100, size=False)
    concurrency = env_int("BENCH_TGWEBHOOK_CONCURRENCY", 8, size=False)
    url = pg.sibling_url(ctx.database_url, "tgwebhook")
    print(f"tgwebhook: recreating {url.rsplit('/', 1)[-1]} and migrating", flush=True)
    pg.recreate_and_migrate(url)
    asyncio.run(_seed(url, warmup + updates))
    echo, duebot = asyncio.run(_measure(ctx, url, updates, warmup, concurrency))
    ratio = duebot.rate / echo.rate if echo.rate > 0 else 0.0
    results = [
        Result.checked(
            "telegram.webhook.rate_fraction_of_aiogram", round(ratio, 3), "ratio", ">=", RATE_GOAL
        ),
        Result.checked("telegram.webhook.p99_ms", round(duebot.percentile(0.99), 2), "ms", "<", P99_GOAL_MS),
        Result("telegram.webhook.updates_per_second", round(duebot.rate, 1), "updates/s"),
        Result("telegram.webhook.p50_ms", round(duebot.percentile(0.5), 2), "ms"),
        Result("telegram.webhook.aiogram_echo_updates_per_second", round(echo.rate, 1), "updates/s"),
        Result("telegram.webhook.aiogram_echo_p99_ms", round(echo.percentile(0.99), 2), "ms"),
        Result("telegram.webhook.errors", duebot.errors + echo.errors, "count"),
    ]
    return Section(
        "Telegram webhook: updates answered by the engine",
        results,
        _markdown(duebot, echo, concurrency, warmup),
    )


# Seeding -----------------------------------------------------------------------------------------


async def _seed(url: str, chats: int) -> None:
    """Debtors with an open invoice each and a Telegram chat linked to each of them."""
    from core.audit import Actor
    from core.db import Database
    from core.invoices import intake
    from core.invoices import service as invoices
    from core.invoices.intake import NewInvoice

    now = datetime.now(UTC)
    ids = [f"TW-{n:05d}" for n in range(chats)]
    conn = await pg.connect(url)
    try:
        debtor_ids = await pg.seed_debtors(conn, ids)
        await conn.execute("UPDATE debtors SET channel_order = $1", '["telegram"]')
        await conn.copy_records_to_table(
            "contact_points",
            records=[
                (uuid.uuid4(), debtor_ids[ext], "telegram", str(CHAT_BASE + n), True, True, False, now)
                for n, ext in enumerate(ids)
            ],
            columns=["id", "debtor_id", "kind", "address", "verified", "consent", "opted_out", "created_at"],
        )
        await conn.copy_records_to_table(
            "chats",
            records=[
                (
                    uuid.uuid4(),
                    "telegram",
                    str(CHAT_BASE + n),
                    debtor_ids[ext],
                    "en",
                    "{}",
                    "[]",
                    now,
                    now,
                    now,
                )
                for n, ext in enumerate(ids)
            ],
            columns=[
                "id",
                "channel",
                "chat_id",
                "debtor_id",
                "locale",
                "data",
                "failures",
                "linked_at",
                "created_at",
                "updated_at",
            ],
        )
    finally:
        await conn.close()
    today = now.date()
    rows = [
        NewInvoice(
            external_id=f"TWI-{n:05d}",
            debtor_external_id=ext,
            number=f"2026-W{n:05d}",
            issue_date=today - timedelta(days=40),
            due_date=today - timedelta(days=10),
            currency="EUR",
            amount_minor=12_345 + n,
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
    finally:
        await db.dispose()
    conn = await pg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"tgwebhook: {chats} linked chats with an open invoice each", flush=True)


# Measuring ---------------------------------------------------------------------------------------


def _update(n: int, chat: int, text: str) -> bytes:
    user = {"id": chat, "is_bot": False, "first_name": "Bench", "last_name": str(n), "language_code": "en"}
    message: dict[str, Any] = {
        "message_id": n + 1,
        "date": int(time.time()),
        "chat": {"id": chat, "type": "private", "first_name": "Bench"},
        "from": user,
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return json.dumps({"update_id": 500_000 + n, "message": message}).encode()


async def _measure(
    ctx: Context, url: str, updates: int, warmup: int, concurrency: int
) -> tuple[Phase, Phase]:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.telegram import telegram_api

    warm = [(n, CHAT_BASE + n) for n in range(warmup)]
    timed = [(n, CHAT_BASE + n) for n in range(warmup, warmup + updates)]
    async with telegram_api() as fake:
        echo = await _phase(ctx, "echo", url, fake, warm, timed, concurrency)
        duebot = await _phase(ctx, "duebot", url, fake, warm, timed, concurrency)
    return echo, duebot


async def _phase(
    ctx: Context,
    kind: str,
    url: str,
    fake: Any,
    warm: list[tuple[int, int]],
    timed: list[tuple[int, int]],
    concurrency: int,
) -> Phase:
    import httpx
    import psutil

    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUEBOT_", "BENCH_"))}
    env |= {"DUEBOT_LOG_LEVEL": "WARNING", "REDIS_URL": "", "DUEBOT_SECRET_KEY": "bench"}
    log = ctx.work_dir / f"tgwebhook-{kind}.log"
    server = Launched(
        [sys.executable, "-m", "bench.telegram_webhook", "serve", kind, str(port), url, fake.base],
        env=env,
        cwd=ROOT,
        log=log,
        report=log.with_suffix(".rusage.json"),
    )
    text = "/balance"  # the echo handler repeats it
    try:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
            await _wait_ready(client, server, log)
            pid = server.command_pid()
            assert pid is not None
            proc = psutil.Process(pid)
            await _drive(client, fake, [(c, _update(n, c, text)) for n, c in warm], concurrency)
            cpu_before = sum(proc.cpu_times()[:2])
            mine_before = resource.getrusage(resource.RUSAGE_SELF)
            calls_before = len(fake.calls)
            print(f"tgwebhook: {kind}: {len(timed)} updates, {concurrency} outstanding", flush=True)
            sent_at, errors = await _drive(
                client, fake, [(c, _update(n, c, text)) for n, c in timed], concurrency
            )
            mine_after = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu = sum(proc.cpu_times()[:2]) - cpu_before
            rss = proc.memory_info().rss / 1024 / 1024
    finally:
        server.signal(2)
        exit_ = server.finish(30.0)
    if exit_.code not in (0, -2, 130):
        raise SystemExit(f"tgwebhook: the {kind} server exited with {exit_.code}:\n{tail(log)}")
    replies: dict[str, float] = {}
    sends = 0
    for call in fake.calls[calls_before:]:
        if call.method == "sendMessage" and call.chat_id is not None:
            sends += 1
            replies.setdefault(call.chat_id, call.at)
    latencies = [1000 * (replies[str(c)] - t) for c, t in sent_at.items() if str(c) in replies]
    first = min(sent_at.values(), default=0.0)
    last = max((replies[str(c)] for c in sent_at if str(c) in replies), default=first)
    driver_cpu = (mine_after.ru_utime + mine_after.ru_stime) - (mine_before.ru_utime + mine_before.ru_stime)
    return Phase(
        kind,
        len(timed),
        len(latencies),
        errors + len(timed) - len(latencies),
        last - first,
        latencies,
        driver_cpu,
        server_cpu,
        rss,
        sends,
    )


async def _wait_ready(client: Any, server: Launched, log: Path, within: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not server.running():
            raise SystemExit(f"tgwebhook: the server exited:\n{tail(log)}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"tgwebhook: the server did not answer within {within:.0f} s:\n{tail(log)}")


async def _drive(
    client: Any, fake: Any, updates: list[tuple[int, bytes]], concurrency: int
) -> tuple[dict[int, float], int]:
    """POST every update, at most ``concurrency`` outstanding until the fake has its reply.

    Returns when each update was POSTed (time.monotonic(), the fake's clock) and the errors.
    """
    waiting: dict[str, asyncio.Event] = {}
    seen = len(fake.calls)
    stop = False

    async def watch() -> None:
        nonlocal seen
        while not stop:
            async with fake.sent:
                await fake.sent.wait_for(lambda known=seen: stop or len(fake.calls) > known)
            calls = fake.calls[seen:]
            seen += len(calls)
            for call in calls:
                event = waiting.get(call.chat_id) if call.method == "sendMessage" else None
                if event is not None:
                    event.set()

    slots = asyncio.Semaphore(concurrency)
    sent_at: dict[int, float] = {}
    errors = 0
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}

    async def one(chat: int, body: bytes) -> None:
        nonlocal errors
        event = waiting[str(chat)] = asyncio.Event()
        try:
            sent_at[chat] = time.monotonic()
            response = await client.post("/webhooks/telegram", content=body, headers=headers)
            if response.status_code != 200:
                errors += 1
                return
            await asyncio.wait_for(event.wait(), 30.0)
        except TimeoutError:
            errors += 1
        finally:
            slots.release()

    watcher = asyncio.create_task(watch())
    tasks = []
    for chat, body in updates:
        await slots.acquire()
        tasks.append(asyncio.create_task(one(chat, body)))
    await asyncio.gather(*tasks)
    stop = True
    async with fake.sent:
        fake.sent.notify_all()
    await watcher
    return sent_at, errors


# The servers -------------------------------------------------------------------------------------


async def _duebot_app(url: str, api_base: str) -> tuple[Any, Any]:
    """The real app with the Telegram bot bound to the real conversation engine."""
    from api.deps import Services
    from api.main import create_app
    from bots.telegram.bot import TelegramBot, make_bot
    from core.config import Settings
    from core.conversation import engine
    from core.db import Database
    from core.ports import SystemClock
    from core.redis import connect as connect_redis
    from tests.fakes.telegram import TOKEN

    settings = Settings(
        database_url=url,
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=SECRET,
        telegram_api_base=api_base,
    )
    clock = SystemClock()
    db = Database.from_url(url)
    redis = connect_redis(settings)
    services = Services(settings=settings, db=db, redis=redis, clock=clock)
    deps = engine.ConversationDeps(settings=settings, clock=clock)
    handler = functools.partial(engine.handle, deps=deps)
    bot = TelegramBot(make_bot(TOKEN, api_base), handler, db, clock=clock, concurrency=BACKGROUND)
    app = create_app(settings, services)
    app.state.telegram = bot

    async def close() -> None:
        await bot.aclose()
        await redis.aclose()
        await db.dispose()

    return app, close


def _echo_app(api_base: str) -> tuple[Any, Any]:
    """A bare aiogram Dispatcher with an echo handler behind a minimal Starlette route."""
    import secrets

    from aiogram import Dispatcher, Router
    from aiogram.types import Message, Update
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from bots.chat import Backlog
    from bots.telegram.bot import make_bot
    from tests.fakes.telegram import TOKEN

    bot = make_bot(TOKEN, api_base)
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    backlog = Backlog(concurrency=BACKGROUND, limit=1000)

    async def webhook(request: Request) -> Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "").encode()
        if not secrets.compare_digest(given, SECRET.encode()):
            return Response(status_code=401)
        update = Update.model_validate(json.loads(await request.body()), context={"bot": bot})
        if not backlog.accept(lambda: dispatcher.feed_update(bot, update), what="update"):
            return Response(status_code=503)
        return Response(status_code=200)

    async def healthz(_: Request) -> Response:
        return Response("ok")

    app = Starlette(
        routes=[Route("/webhooks/telegram", webhook, methods=["POST"]), Route("/healthz", healthz)]
    )

    async def close() -> None:
        await backlog.drain()
        await bot.session.close()

    return app, close


async def _serve(kind: str, port: int, url: str, api_base: str) -> None:
    import uvicorn

    from core.logging import configure

    configure("WARNING")
    app, close = await _duebot_app(url, api_base) if kind == "duebot" else _echo_app(api_base)
    config = uvicorn.Config(
        app, host=LOOPBACK, port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await close()


def _markdown(duebot: Phase, echo: Phase, concurrency: int, warmup: int) -> str:
    def row(p: Phase, label: str) -> str:
        return (
            f"| {label} | {p.rate:,.0f}/s | {p.percentile(0.5):.1f} ms | {p.percentile(0.99):.1f} ms | "
            f"{max(p.latencies_ms, default=0):.1f} ms | {p.errors} | {p.sends:,} | "
            f"{1000 * p.server_cpu_s / max(1, p.answered):.2f} ms | {1000 * p.driver_cpu_s / max(1, p.answered):.2f} ms |"
        )

    ratio = duebot.rate / echo.rate if echo.rate else 0.0
    return "\n".join(
        [
            f"{duebot.updates:,} Telegram updates (`/balance` from {duebot.updates:,} linked chats, a debtor with "
            "an open invoice each) POSTed to `/webhooks/telegram` of the real app in one uvicorn process "
            "(uvloop, httptools): secret check, aiogram Dispatcher, the conversation engine with its database "
            "reads and the inbound id write, one commit per update, the reply rendered and sent with "
            "`sendMessage` to a local fake Bot API (no flood control; one update per chat). Baseline in the "
            "same run: a bare aiogram Dispatcher with an echo handler behind a minimal Starlette route in the "
            "same uvicorn set-up, fed the same updates by the same driver. Both handle at most "
            f"{BACKGROUND} updates at once in the background; the driver (httpx) keeps {concurrency} updates "
            "outstanding from POST to the reply's arrival at the fake (a closed loop). Latency: from just "
            f"before the POST to the fake receiving the reply. {warmup} warm-up updates first, not counted.",
            "",
            "| | rate | p50 | p99 | max | errors | sendMessage calls | server CPU per update | driver CPU per update |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            row(duebot, "duebot: webhook → engine → reply"),
            row(echo, "bare aiogram echo"),
            "",
            f"duebot's rate is {ratio:.2f} of the bare Dispatcher's (goal ≥ {RATE_GOAL}); its p99 is "
            f"{duebot.percentile(0.99):.1f} ms (goal < {P99_GOAL_MS:g} ms). The server CPU column is the uvicorn "
            "process's user + system time per update; PostgreSQL's time is not in it. The driver column is this "
            "process (httpx and the fake Bot API) and bounds the baseline on a small machine.",
            "",
            f"With {concurrency} updates outstanding at a rate R, an update waits {concurrency}/R on average "
            f"(Little's law: {1000 * concurrency / max(duebot.rate, 1e-9):.0f} ms at duebot's rate), so a p99 "
            f"under {P99_GOAL_MS:g} ms needs well over {concurrency / (P99_GOAL_MS / 1000):.0f} updates/s; "
            "the per-update server CPU is mostly database round trips (16: 13 statements, BEGIN, COMMIT and "
            "the pool's pre-ping), each a loopback send and receive.",
        ]
    )


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[0] != "serve" or argv[1] not in ("duebot", "echo"):
        print("usage: python -m bench.telegram_webhook serve duebot|echo PORT DATABASE_URL API_BASE")
        return 2
    _, kind, port, url, api_base = argv
    import uvloop

    uvloop.run(_serve(kind, int(port), url, api_base))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
