"""arq worker: the WorkerSettings and thin job wrappers around core services.

Run with `duebot worker` (or `arq worker.WorkerSettings`). Every job is idempotent: arq may run a
job more than once, so each one is safe to repeat.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import httpx
import structlog
from arq import Retry, cron, func
from arq.connections import RedisSettings
from redis.exceptions import RedisError

from bots.email.sender import EmailSender
from bots.slack import notify as slack_notify
from bots.slack import pending as slack_pending
from bots.slack.deps import build_client as build_slack_client
from bots.sms.sender import SmsSender
from bots.telegram.sender import TelegramSender
from bots.whatsapp.sender import WhatsAppSender
from core.access import service as access
from core.audit import SYSTEM
from core.config import Settings
from core.db import Database
from core.dunning import distribution
from core.dunning.sweep import sweep
from core.events import service as events
from core.logging import configure as configure_logging
from core.messaging.delivery import deliver
from core.messaging.ratelimit import RateLimiter
from core.payments import events as psp_events
from core.payments import providers as payment_providers
from core.payments import refunds
from core.payments import repository as psp_repo
from core.payments.reminders import ReminderPayOptions
from core.plans.sweep import PlanSweepResult, sweep_instalments
from core.ports import Clock, MessageSender, PaymentProviderError, SystemClock

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
    if "slack" not in ctx and settings.slack_bot_token is not None:
        ctx["slack"] = build_slack_client(settings)
    if "payments" not in ctx:
        ctx["payments"] = payment_providers.from_settings(settings)
    ctx.setdefault("psp_drainer", psp_events.Drainer())  # one webhook drain at a time per process


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
        # Plans first: invoices of a plan breached today come due again in this very sweep.
        plans = await sweep_instalments(session, now=ctx["clock"].now())
        result = await sweep(session, now=ctx["clock"].now())
    # After the commit, so that the delivery job sees the committed outbox. If Redis is down, the
    # sweep's work stands and the every-minute delivery job catches up once it is back.
    if (result.messages or plans.reminders) and "redis" in ctx:
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
        "plans": _plan_summary(plans),
    }


def _plan_summary(result: PlanSweepResult) -> dict[str, Any]:
    return {
        "run_id": str(result.run_id),
        "instalments_paid": result.instalments_paid,
        "reminders": result.reminders,
        "completed": [str(p) for p in result.completed],
        "breached": [str(p) for p in result.breached],
    }


async def sweep_plans(ctx: dict[str, Any]) -> dict[str, Any]:
    """Payment plans: mark paid instalments, remind, break and complete plans (idempotent)."""
    db: Database = ctx["db"]
    async with db.session_scope() as session:
        result = await sweep_instalments(session, now=ctx["clock"].now())
    if result.reminders and "redis" in ctx:
        try:
            await ctx["redis"].enqueue_job("deliver_messages", _job_id=f"deliver:{result.run_id}")
        except (RedisError, OSError) as exc:
            log.warning("plans.enqueue_failed", run_id=str(result.run_id), error=str(exc))
    return _plan_summary(result)


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
        pay_options=ReminderPayOptions(db, settings, ctx.get("payments"), ctx["clock"]),
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


def _slack(ctx: dict[str, Any]) -> tuple[Any, str] | None:
    """The Slack client and the staff channel, when both are configured."""
    channel = ctx["settings"].slack_staff_channel
    return (ctx["slack"], channel) if "slack" in ctx and channel else None


async def post_batch_for_approval(ctx: dict[str, Any], batch_id: str) -> bool:
    """Post one new batch to the staff channel (enqueue after the batch's commit); once per batch."""
    slack = _slack(ctx)
    if slack is None:
        return False
    client, channel = slack
    now = ctx["clock"].now()
    ts = await slack_notify.post_batch_for_approval(client, ctx["db"], channel, uuid.UUID(batch_id), now)
    return ts is not None


STAFF_NOTIFICATIONS = (
    "batches",
    "batches_closed",
    "broken_promises",
    "plan_approvals",
    "refund_requests",
    "disputes",
)


async def post_staff_notifications(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute: batches waiting that were not posted yet, batch messages decided elsewhere,
    broken promises, plans waiting for approval, refunds waiting for a second approver and new
    disputes (each once)."""
    slack = _slack(ctx)
    if slack is None:
        return dict.fromkeys(STAFF_NOTIFICATIONS, 0)
    client, channel = slack
    now = ctx["clock"].now()
    return {
        "batches": await slack_notify.post_pending_batches(client, ctx["db"], channel, now),
        "batches_closed": await slack_notify.close_decided_batches(client, ctx["db"], now),
        "broken_promises": await slack_notify.post_broken_promises(client, ctx["db"], channel, now),
        "plan_approvals": await slack_pending.post_plan_approvals(client, ctx["db"], channel, now),
        "refund_requests": await slack_pending.post_refund_requests(client, ctx["db"], channel, now),
        "disputes": await slack_pending.post_disputes(client, ctx["db"], channel, now),
    }


async def send_daily_digest(ctx: dict[str, Any]) -> bool:
    """The morning digest in the staff channel; once per day however often it runs."""
    slack = _slack(ctx)
    if slack is None:
        return False
    client, channel = slack
    clock = ctx["clock"]
    return await slack_notify.post_digest(client, ctx["db"], channel, clock.today(), clock.now()) is not None


async def process_psp_event(ctx: dict[str, Any], event_id: str) -> str:
    """Fetch the payment a webhook named and apply it; Mollie down: retry with backoff."""
    provider = ctx.get("payments")
    if provider is None:
        log.warning("psp.no_provider", event_id=event_id)
        return "no_provider"
    try:
        result = await psp_events.process(ctx["db"], provider, uuid.UUID(event_id), ctx["clock"])
    except PaymentProviderError as exc:
        tries = int(ctx.get("job_try", 1))
        log.warning("psp.retry", event_id=event_id, attempt=tries, error=exc.reason)
        raise Retry(defer=timedelta(seconds=min(600, 5 * 2**tries))) from exc
    return result.outcome


async def drain_psp_events(ctx: dict[str, Any]) -> dict[str, int]:
    """Claim, fetch and post waiting webhook events in batches (enqueued, debounced, by the
    webhook); Mollie down for some: the rest is applied, then retry with backoff."""
    provider = ctx.get("payments")
    if provider is None:
        log.warning("psp.no_provider")
        return {"claimed": 0}
    try:
        # arq gives each job a copy of the worker's ctx: the drainer made at start-up is shared
        drainer: psp_events.Drainer = ctx.get("psp_drainer") or psp_events.Drainer()
        return await drainer.drain(ctx["db"], provider, ctx["clock"])
    except PaymentProviderError as exc:
        tries = int(ctx.get("job_try", 1))
        log.warning("psp.retry", attempt=tries, error=exc.reason)
        raise Retry(defer=timedelta(seconds=min(600, 5 * 2**tries))) from exc


async def pick_up_psp_events(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute: process webhook events whose job never ran (Redis down, a worker died)."""
    provider = ctx.get("payments")
    if provider is None:
        return {"found": 0}
    return await psp_events.pick_up(ctx["db"], provider, ctx["clock"])


async def execute_refunds(ctx: dict[str, Any]) -> dict[str, int]:
    """Every minute: execute approved refunds that the PSP could not take yet (same key: no twice)."""
    provider = ctx.get("payments")
    if provider is None:
        return {"executed": 0}
    db: Database = ctx["db"]
    async with db.sessionmaker() as session:
        ids = await psp_repo.approved_refunds(session)
    executed = 0
    for refund_id in ids:
        async with db.session_scope() as session:
            refund = await refunds.execute_refund(
                session, provider, refund_id, now=ctx["clock"].now(), actor=SYSTEM
            )
        executed += int(refund.status == "executed")
    return {"found": len(ids), "executed": executed}


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url or DEFAULT_REDIS)


class WorkerSettings:
    functions: list[Any] = [
        purge_idempotency_keys,
        sweep_dunning,
        deliver_messages,
        deliver_webhooks,
        sweep_plans,
        post_batch_for_approval,
        post_staff_notifications,
        send_daily_digest,
        process_psp_event,
        func(drain_psp_events, keep_result=0),  # job ids are per time slot: keep nothing
        pick_up_psp_events,
        execute_refunds,
    ]
    cron_jobs = [
        cron(purge_idempotency_keys, minute={17}, unique=True),
        # Stage dates are whole days; sweeping hourly picks up new approvals and lifted holds.
        cron(sweep_dunning, minute={5}, unique=True, run_at_startup=True),
        cron(deliver_messages, unique=True),  # every minute
        cron(deliver_webhooks, unique=True),  # every minute
        cron(sweep_plans, minute={35}, unique=True),  # between the dunning sweeps, which also run it
        cron(post_staff_notifications, unique=True),  # every minute
        cron(send_daily_digest, hour={7}, minute={30}, unique=True),
        cron(pick_up_psp_events, unique=True),  # every minute
        cron(execute_refunds, unique=True),  # every minute
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings(Settings())
    # How often an idle worker looks for due jobs (arq's default is 0.5 s). A Mollie webhook's
    # drain waits for its debounce slot and then for this poll; 0.1 s is 10 cheap Redis calls a
    # second per worker and takes up to 0.4 s off the time from a payment to its ledger entry.
    poll_delay = 0.1
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
