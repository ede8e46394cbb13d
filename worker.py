"""arq worker: the WorkerSettings and thin job wrappers around core services.

Run with `duebot worker` (or `arq worker.WorkerSettings`). Every job is idempotent: arq may run a
job more than once, so each one is safe to repeat.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import httpx
import structlog
from arq import cron
from arq.connections import RedisSettings
from redis.exceptions import RedisError

from bots.email.sender import EmailSender
from bots.sms.sender import SmsSender
from bots.telegram.sender import TelegramSender
from bots.whatsapp.sender import WhatsAppSender
from core.access import service as access
from core.config import Settings
from core.db import Database
from core.dunning import distribution
from core.dunning.sweep import sweep
from core.events import service as events
from core.logging import configure as configure_logging
from core.messaging.delivery import deliver
from core.messaging.ratelimit import RateLimiter
from core.ports import Clock, MessageSender, SystemClock

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
log = structlog.get_logger(__name__)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings()
    ctx["settings"] = settings
    ctx.setdefault("db", Database.from_url(settings.database_url))
    ctx.setdefault("clock", SystemClock())
    if "senders" not in ctx:
        ctx["senders"] = build_senders(settings, ctx["db"], ctx["clock"])
    if "limiter" not in ctx:
        ctx["limiter"] = RateLimiter(settings.redis_url or "memory://")


def build_senders(
    settings: Settings, db: Database | None = None, clock: Clock | None = None
) -> dict[str, MessageSender]:
    """The channels that are configured: email with SMTP_URL, SMS with SMS_API_URL, Telegram with
    TELEGRAM_BOT_TOKEN, WhatsApp with WHATSAPP_TOKEN and WHATSAPP_PHONE_NUMBER_ID (it needs the
    database for the 24-hour window)."""
    candidates: list[MessageSender | None] = [
        EmailSender.from_settings(settings),
        SmsSender.from_settings(settings),
        TelegramSender.from_settings(settings, db=db, clock=clock),
        WhatsAppSender.from_settings(settings, db, clock=clock) if db is not None else None,
    ]
    return {sender.channel: sender for sender in candidates if sender is not None}


async def shutdown(ctx: dict[str, Any]) -> None:
    if "http" in ctx:
        await ctx.pop("http").aclose()
    if "limiter" in ctx:
        await ctx.pop("limiter").aclose()
    for sender in ctx.pop("senders", {}).values():
        if hasattr(sender, "aclose"):
            await sender.aclose()
    if ctx.pop("owns_db", True):
        await ctx["db"].dispose()


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Drop Idempotency-Key records past DUEBOT_IDEMPOTENCY_TTL_HOURS (hourly)."""
    settings: Settings = ctx["settings"]
    db: Database = ctx["db"]
    cutoff = ctx["clock"].now() - timedelta(hours=settings.idempotency_ttl_hours)
    async with db.session_scope() as session:
        return await access.purge_idempotency(session, cutoff)


async def sweep_dunning(ctx: dict[str, Any]) -> dict[str, Any]:
    """Decide and record what is due now (idempotent: a second run the same day finds nothing)."""
    db: Database = ctx["db"]
    async with db.session_scope() as session:
        result = await sweep(session, now=ctx["clock"].now())
    # After the commit, so that the delivery job sees the committed outbox. If Redis is down, the
    # sweep's work stands and the every-minute delivery job catches up once it is back.
    if result.messages and "redis" in ctx:
        try:
            await ctx["redis"].enqueue_job("deliver_messages", _job_id=f"deliver:{result.sweep_id}")
        except (RedisError, OSError) as exc:
            log.warning("sweep.enqueue_failed", sweep_id=str(result.sweep_id), error=str(exc))
    return {
        "sweep_id": str(result.sweep_id),
        "actions": result.actions,
        "messages": result.messages,
        "fees": result.fees,
        "broken_promises": result.broken_promises,
    }


async def deliver_messages(ctx: dict[str, Any]) -> dict[str, int]:
    """Send what the outbox holds that is due (every minute, and right after a sweep)."""
    settings: Settings = ctx["settings"]
    db: Database = ctx["db"]
    stats = await deliver(
        db,
        ctx["senders"],
        clock=ctx["clock"],
        limiter=ctx["limiter"],
        creditor_name=settings.creditor_name or "duebot",
    )
    async with db.session_scope() as session:
        await distribution.mark_issued(session, ctx["clock"].now())
    return asdict(stats)


async def deliver_webhooks(ctx: dict[str, Any]) -> dict[str, int]:
    """Fan new events out to the configured endpoints, then send what is due (every minute)."""
    settings: Settings = ctx["settings"]
    db: Database = ctx["db"]
    clock = ctx["clock"]
    async with db.session_scope() as session:
        await events.fan_out(
            session, settings.webhook_endpoints, clock.now(), agency_url=settings.agency_webhook_url
        )
    if not settings.webhook_endpoints and not settings.agency_webhook_url:
        return {"claimed": 0}
    if "http" not in ctx:
        ctx["http"] = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
    secret = (
        settings.webhook_secret.get_secret_value()
        if settings.webhook_secret
        else settings.ensure_secret_key()
    )
    return asdict(await events.deliver(db, ctx["http"], secret=secret, clock=clock))


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url or DEFAULT_REDIS)


class WorkerSettings:
    functions = [purge_idempotency_keys, sweep_dunning, deliver_messages, deliver_webhooks]
    cron_jobs = [
        cron(purge_idempotency_keys, minute={17}, unique=True),
        # Stage dates are whole days; sweeping hourly picks up new approvals and lifted holds.
        cron(sweep_dunning, minute={5}, unique=True, run_at_startup=True),
        cron(deliver_messages, unique=True),  # every minute
        cron(deliver_webhooks, unique=True),  # every minute
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings(Settings())
    max_tries = 5
    health_check_interval = 60


def run() -> None:
    from arq.worker import run_worker

    settings = Settings()
    configure_logging(settings.log_level)
    if not settings.redis_url:
        raise SystemExit("duebot worker needs REDIS_URL (make run starts an in-process worker instead)")
    run_worker(WorkerSettings)  # type: ignore[arg-type]


def embedded_redis_pool() -> Any:
    """An ArqRedis on an in-process fakeredis (make run, tests without Redis).

    fakeredis lacks INFO, which arq's Worker.main() calls only to log server facts: skip that call.
    """
    import arq.worker
    from arq import ArqRedis
    from fakeredis import FakeAsyncRedis

    async def _no_info(*_: Any, **__: Any) -> None:
        return None

    arq.worker.log_redis_info = _no_info  # type: ignore[assignment]
    return ArqRedis(connection_pool=FakeAsyncRedis().connection_pool)
