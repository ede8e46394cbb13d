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

Two phases per server, with the same driver for both servers:

- Saturated: the driver (httpx in this process) keeps at most ``BENCH_TGWEBHOOK_CONCURRENCY``
  (default 8) updates outstanding, from the POST until the fake received the reply, as a closed
  loop: the webhook answers 200 at once and works in the background, so an open loop at full speed
  would only measure how fast updates pile up in the backlog. The rate is updates over the time from
  the first POST to the last reply; the rate goal compares the two servers' rates. The p99 here is
  reported but is mostly queueing: with 8 outstanding at a rate R an update waits about 8/R
  (Little's law), whatever the server does per update.
- Latency: ``BENCH_TGWEBHOOK_LATENCY_UPDATES`` (default 1,500) updates from other chats, an open loop
  at a fixed offered load of ``BENCH_TGWEBHOOK_LATENCY_RATE`` (default 30) updates/s: update i is
  POSTed at start + i/rate whatever is outstanding, and its latency counts from that scheduled time.
  30/s because Telegram lets a bot send about 30 messages per second overall, so no bot can sustain
  answering more than that; the p99 goal is checked in this phase.

Latency is from just before the POST (its scheduled time in the latency phase) to the reply's
arrival at the fake.

The baseline, in the same run with the same driver, fake, updates and concurrency: a bare aiogram
Dispatcher with an echo handler (``message.answer(message.text)``) behind the same kind of
endpoint, a minimal Starlette route in the same uvicorn set-up that checks the secret, validates the
update and hands it to the Dispatcher in the background with the same bound (``bots.chat.Backlog``,
``bots.chat.CONCURRENCY`` = 8 at a time, TelegramBot's default). Measuring both over HTTP keeps the shared costs (the driver, HTTP, the fake) on both
sides, so that the ratio shows what duebot adds: FastAPI, the engine and its database work.

Both servers first answer ``BENCH_TGWEBHOOK_WARMUP`` (default 100) updates from other chats that
are not counted (connection pools, pydantic models, first imports).

The servers are ``python -m bench.telegram_webhook serve duebot|echo PORT DATABASE_URL API_BASE``.
"""

from __future__ import annotations

import asyncio
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
from bots.chat import CONCURRENCY

RATE_GOAL = 0.5  # of the bare Dispatcher's rate
P99_GOAL_MS = 50.0
SECRET = "bench-telegram-secret"
CHAT_BASE = 70_000_000
LOOPBACK = "127.0.0.1"
BACKGROUND = CONCURRENCY  # updates handled at once by either server (TelegramBot's default)
# Telegram lets a bot send about 30 messages per second overall (its flood control), so no bot can
# answer more than ~30 updates/s for long: the latency phase offers that load.
LATENCY_RATE = 30


@dataclass(frozen=True)
class Plan:
    updates: int  # the saturated phase
    warmup: int
    concurrency: int  # outstanding updates in the saturated phase
    paced: int  # the latency phase's updates
    rate: int  # its offered load, updates/s


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
    def cpu_ms_per_update(self) -> float:
        return 1000 * self.server_cpu_s / max(1, self.answered)

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
    paced = env_int("BENCH_TGWEBHOOK_LATENCY_UPDATES", 1_500)
    rate = env_int("BENCH_TGWEBHOOK_LATENCY_RATE", LATENCY_RATE, size=False)
    url = pg.sibling_url(ctx.database_url, "tgwebhook")
    print(f"tgwebhook: recreating {url.rsplit('/', 1)[-1]} and migrating", flush=True)
    pg.recreate_and_migrate(url)
    asyncio.run(_seed(url, warmup + updates + paced))
    plan = Plan(updates, warmup, concurrency, paced, rate)
    (echo, echo_paced), (duebot, duebot_paced) = asyncio.run(_measure(ctx, url, plan))
    ratio = duebot.rate / echo.rate if echo.rate > 0 else 0.0
    results = [
        Result.checked(
            "telegram.webhook.rate_fraction_of_aiogram", round(ratio, 3), "ratio", ">=", RATE_GOAL
        ),
        Result.checked(
            "telegram.webhook.p99_ms", round(duebot_paced.percentile(0.99), 2), "ms", "<", P99_GOAL_MS
        ),
        Result("telegram.webhook.p50_ms", round(duebot_paced.percentile(0.5), 2), "ms"),
        Result("telegram.webhook.max_ms", round(max(duebot_paced.latencies_ms, default=0.0), 2), "ms"),
        Result("telegram.webhook.updates_per_second", round(duebot.rate, 1), "updates/s"),
        Result("telegram.webhook.saturated_p50_ms", round(duebot.percentile(0.5), 2), "ms"),
        Result("telegram.webhook.saturated_p99_ms", round(duebot.percentile(0.99), 2), "ms"),
        Result("telegram.webhook.server_cpu_ms_per_update", round(duebot.cpu_ms_per_update, 2), "ms"),
        Result("telegram.webhook.aiogram_echo_updates_per_second", round(echo.rate, 1), "updates/s"),
        Result("telegram.webhook.aiogram_echo_p99_ms", round(echo_paced.percentile(0.99), 2), "ms"),
        Result("telegram.webhook.aiogram_echo_saturated_p99_ms", round(echo.percentile(0.99), 2), "ms"),
        Result(
            "telegram.webhook.errors",
            duebot.errors + echo.errors + duebot_paced.errors + echo_paced.errors,
            "count",
        ),
    ]
    return Section(
        "Telegram webhook: updates answered by the engine",
        results,
        _markdown(plan, duebot, echo, duebot_paced, echo_paced),
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


async def _measure(ctx: Context, url: str, plan: Plan) -> tuple[tuple[Phase, Phase], tuple[Phase, Phase]]:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.telegram import telegram_api

    first = plan.warmup + plan.updates
    warm = [(n, CHAT_BASE + n) for n in range(plan.warmup)]
    timed = [(n, CHAT_BASE + n) for n in range(plan.warmup, first)]
    paced = [(n, CHAT_BASE + n) for n in range(first, first + plan.paced)]
    async with telegram_api() as fake:
        echo = await _server(ctx, "echo", url, fake, warm, timed, paced, plan)
        duebot = await _server(ctx, "duebot", url, fake, warm, timed, paced, plan)
    return echo, duebot


async def _server(
    ctx: Context,
    kind: str,
    url: str,
    fake: Any,
    warm: list[tuple[int, int]],
    timed: list[tuple[int, int]],
    paced: list[tuple[int, int]],
    plan: Plan,
) -> tuple[Phase, Phase]:
    """One server process: warm-up, the saturated phase (closed loop), the latency phase (open loop)."""
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
    phases: list[Phase] = []
    try:
        # The open loop must never wait for a free connection: room for far more than it keeps open.
        room = max(plan.concurrency, 64)
        limits = httpx.Limits(max_connections=room, max_keepalive_connections=room)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
            await _wait_ready(client, server, log)
            pid = server.command_pid()
            assert pid is not None
            proc = psutil.Process(pid)
            await _drive(client, fake, [(c, _update(n, c, text)) for n, c in warm], plan.concurrency)
            for name, batch in (("saturated", timed), ("paced", paced)):
                cpu_before = sum(proc.cpu_times()[:2])
                mine_before = resource.getrusage(resource.RUSAGE_SELF)
                calls_before = len(fake.calls)
                bodies = [(c, _update(n, c, text)) for n, c in batch]
                if name == "saturated":
                    print(
                        f"tgwebhook: {kind}: {len(batch)} updates, {plan.concurrency} outstanding", flush=True
                    )
                    sent_at, errors = await _drive(client, fake, bodies, plan.concurrency)
                else:
                    print(f"tgwebhook: {kind}: {len(batch)} updates at {plan.rate}/s", flush=True)
                    sent_at, errors = await _drive_paced(client, fake, bodies, plan.rate)
                mine_after = resource.getrusage(resource.RUSAGE_SELF)
                server_cpu = sum(proc.cpu_times()[:2]) - cpu_before
                rss = proc.memory_info().rss / 1024 / 1024
                driver_cpu = (mine_after.ru_utime + mine_after.ru_stime) - (
                    mine_before.ru_utime + mine_before.ru_stime
                )
                phases.append(
                    _phase_of(kind, fake.calls[calls_before:], sent_at, errors, driver_cpu, server_cpu, rss)
                )
    finally:
        server.signal(2)
        exit_ = server.finish(30.0)
    if exit_.code not in (0, -2, 130):
        raise SystemExit(f"tgwebhook: the {kind} server exited with {exit_.code}:\n{tail(log)}")
    saturated, latency = phases
    return saturated, latency


def _phase_of(
    kind: str,
    calls: list[Any],
    sent_at: dict[int, float],
    errors: int,
    driver_cpu: float,
    server_cpu: float,
    rss: float,
) -> Phase:
    replies: dict[str, float] = {}
    sends = 0
    for call in calls:
        if call.method == "sendMessage" and call.chat_id is not None:
            sends += 1
            replies.setdefault(call.chat_id, call.at)
    latencies = [1000 * (replies[str(c)] - t) for c, t in sent_at.items() if str(c) in replies]
    first = min(sent_at.values(), default=0.0)
    last = max((replies[str(c)] for c in sent_at if str(c) in replies), default=first)
    return Phase(
        kind,
        len(sent_at),
        len(latencies),
        errors + len(sent_at) - len(latencies),
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


class _Replies:
    """Events set when the fake receives a sendMessage for a chat (watched in the background)."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.waiting: dict[str, asyncio.Event] = {}
        self.seen = len(fake.calls)
        self.stop = False
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Replies:
        self.task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop = True
        async with self.fake.sent:
            self.fake.sent.notify_all()
        assert self.task is not None
        await self.task

    def expect(self, chat: int) -> asyncio.Event:
        event = self.waiting[str(chat)] = asyncio.Event()
        return event

    async def _watch(self) -> None:
        fake = self.fake
        while not self.stop:
            async with fake.sent:
                await fake.sent.wait_for(lambda known=self.seen: self.stop or len(fake.calls) > known)
            calls = fake.calls[self.seen :]
            self.seen += len(calls)
            for call in calls:
                event = self.waiting.get(call.chat_id) if call.method == "sendMessage" else None
                if event is not None:
                    event.set()


HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}


async def _post_and_wait(client: Any, body: bytes, event: asyncio.Event) -> bool:
    """POST one update and wait for its reply at the fake; False on an error or no reply."""
    try:
        response = await client.post("/webhooks/telegram", content=body, headers=HEADERS)
        if response.status_code != 200:
            return False
        await asyncio.wait_for(event.wait(), 30.0)
    except TimeoutError:
        return False
    return True


async def _drive(
    client: Any, fake: Any, updates: list[tuple[int, bytes]], concurrency: int
) -> tuple[dict[int, float], int]:
    """POST every update, at most ``concurrency`` outstanding until the fake has its reply.

    Returns when each update was POSTed (time.monotonic(), the fake's clock) and the errors.
    """
    slots = asyncio.Semaphore(concurrency)
    sent_at: dict[int, float] = {}
    errors = 0

    async def one(replies: _Replies, chat: int, body: bytes) -> None:
        nonlocal errors
        event = replies.expect(chat)
        try:
            sent_at[chat] = time.monotonic()
            if not await _post_and_wait(client, body, event):
                errors += 1
        finally:
            slots.release()

    async with _Replies(fake) as replies:
        tasks = []
        for chat, body in updates:
            await slots.acquire()
            tasks.append(asyncio.create_task(one(replies, chat, body)))
        await asyncio.gather(*tasks)
    return sent_at, errors


async def _drive_paced(
    client: Any, fake: Any, updates: list[tuple[int, bytes]], rate: int
) -> tuple[dict[int, float], int]:
    """An open loop: update ``i`` is POSTed at ``start + i / rate`` whatever is still outstanding.

    Latency counts from the scheduled time (so a late driver or a server that slows the driver down
    cannot hide its own delay); returns the scheduled times and the errors.
    """
    sent_at: dict[int, float] = {}
    errors = 0

    async def one(replies: _Replies, chat: int, body: bytes, due: float) -> None:
        nonlocal errors
        event = replies.expect(chat)
        sent_at[chat] = due
        if not await _post_and_wait(client, body, event):
            errors += 1

    async with _Replies(fake) as replies:
        tasks = []
        start = time.monotonic() + 0.05
        for i, (chat, body) in enumerate(updates):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(replies, chat, body, due)))
        await asyncio.gather(*tasks)
    return sent_at, errors


# The servers -------------------------------------------------------------------------------------


async def _duebot_app(url: str, api_base: str) -> tuple[Any, Any]:
    """The real app with the Telegram bot bound to the real conversation engine."""
    from api.deps import Services
    from api.main import create_app
    from bots.conversation import EngineHandler
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
    handler = EngineHandler(deps)  # as bots/wiring.py binds the engine
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


def _markdown(plan: Plan, duebot: Phase, echo: Phase, duebot_paced: Phase, echo_paced: Phase) -> str:
    def row(p: Phase, label: str, rate: str) -> str:
        return (
            f"| {label} | {rate} | {p.percentile(0.5):.1f} ms | {p.percentile(0.99):.1f} ms | "
            f"{max(p.latencies_ms, default=0):.1f} ms | {p.errors} | {p.sends:,} | "
            f"{p.cpu_ms_per_update:.2f} ms | {1000 * p.driver_cpu_s / max(1, p.answered):.2f} ms |"
        )

    ratio = duebot.rate / echo.rate if echo.rate else 0.0
    c = plan.concurrency
    return "\n".join(
        [
            f"Telegram updates (`/balance` from linked chats, a debtor with an open invoice each, one update "
            "per chat) POSTed to `/webhooks/telegram` of the real app in one uvicorn process (uvloop, "
            "httptools): secret check, aiogram Dispatcher, the conversation engine with its database reads "
            "and the inbound id write, one commit per update, the reply rendered and sent with `sendMessage` "
            "to a local fake Bot API (no flood control). Baseline in the same run: a bare aiogram Dispatcher "
            "with an echo handler behind a minimal Starlette route in the same uvicorn set-up, fed the same "
            f"updates by the same driver. Both handle at most {BACKGROUND} updates at once in the background. "
            "Latency: from the POST (in the latency phase: its scheduled time) to the fake receiving the "
            f"reply. {plan.warmup} warm-up updates first, not counted. Two phases per server:",
            "",
            f"- **Saturated** ({plan.updates:,} updates, a closed loop with {c} outstanding): the highest "
            "rate each server sustains; the rate goal compares the two.",
            f"- **Latency** ({plan.paced:,} other chats, an open loop offering {plan.rate} updates/s whatever "
            "is outstanding): the time a debtor waits at a load a bot can actually meet. Telegram lets a bot "
            "send about 30 messages per second overall, so no bot answers more than ~30 updates/s for "
            f"long (`BENCH_TGWEBHOOK_LATENCY_RATE` changes the rate). The p99 goal is checked here.",
            "",
            "| | phase | rate | p50 | p99 | max | errors | sendMessage calls | server CPU per update "
            "| driver CPU per update |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            row(duebot, "duebot: webhook → engine → reply | saturated", f"{duebot.rate:,.0f}/s"),
            row(echo, "bare aiogram echo | saturated", f"{echo.rate:,.0f}/s"),
            row(duebot_paced, "duebot: webhook → engine → reply | latency", f"{plan.rate}/s offered"),
            row(echo_paced, "bare aiogram echo | latency", f"{plan.rate}/s offered"),
            "",
            f"duebot's saturated rate is {ratio:.2f} of the bare Dispatcher's (goal ≥ {RATE_GOAL}); its p99 at "
            f"{plan.rate} updates/s is {duebot_paced.percentile(0.99):.1f} ms (goal < {P99_GOAL_MS:g} ms), "
            f"{duebot.percentile(0.99):.1f} ms at saturation. The server CPU column is the uvicorn process's "
            "user + system time per update; PostgreSQL's time is not in it. The driver column is this process "
            "(httpx and the fake Bot API) and bounds the baseline on a small machine.",
            "",
            f"Why two phases: with {c} updates outstanding at a rate R, an update waits {c}/R on average "
            f"(Little's law: {1000 * c / max(duebot.rate, 1e-9):.0f} ms at duebot's saturated rate, "
            f"{1000 * c / max(echo.rate, 1e-9):.0f} ms at the echo's), so a p99 at saturation measures the "
            f"queue the closed loop builds, not the bot (the bare echo's p99 there: {echo.percentile(0.99):.1f} ms). "
            "The open "
            "loop at a fixed rate measures the time one update takes through the bot when it is not queued "
            "behind the driver's own backlog.",
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
