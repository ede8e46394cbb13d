"""`duebot` commands: run (all-in-one dev), serve, migrate, import, api-key, batch, demo, dunning."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError, ProgrammingError

from core import migrate
from core.audit import Actor
from core.config import Settings
from core.db import Database
from core.errors import DomainError
from core.logging import configure as configure_logging

T = TypeVar("T")
CLI = Actor("cli", "operator")


def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database.from_url(settings.database_url)
        try:
            return await fn(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.downgrade:
        migrate.downgrade(settings.database_url, args.downgrade)
        print(f"downgraded {_safe_url(settings)} to {args.downgrade}")
    else:
        migrate.upgrade(settings.database_url, args.revision)
        print(f"migrated {_safe_url(settings)} to {args.revision}")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from core.invoices.csv_import import import_file

    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2

    async def run(db: Database) -> int:
        try:
            async with db.session_scope() as session:
                result = await import_file(session, path, actor=CLI, max_rows=settings.csv_max_rows)
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            for err in exc.errors:
                where = f"line {err.line}, " if err.line else ""
                print(f"  {where}column {'.'.join(map(str, err.loc))}: {err.message}", file=sys.stderr)
            return 1
        b = result.batch
        totals = ", ".join(f"{_fmt(v, k)} {k}" for k, v in sorted(b.totals.items()))
        if result.created:
            await _post_batch(settings, b.id)
            print(f"imported {b.count} invoices ({totals}) as batch {b.id}, waiting for approval")
            print(f"approve with: duebot batch approve {b.id}")
        else:
            print(f"already imported as batch {b.id} ({b.status}); nothing changed")
        return 0

    return _with_db(settings, run)


def _fmt(minor: int, currency: str) -> str:
    from core.money import format_minor

    return format_minor(int(minor), currency)


def cmd_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from core.access import service as access

    async def run(db: Database) -> int:
        async with db.session_scope() as session:
            if args.action == "create":
                token, key = await access.create_key(session, args.name, args.scope or [], CLI)
                print(token)
                print(
                    f"# key {key.prefix} ({', '.join(key.scopes)}): shown once, store it now", file=sys.stderr
                )
            elif args.action == "list":
                for key in await access.list_keys(session):
                    state = "revoked" if key.revoked_at else "active"
                    print(
                        f"{key.prefix}\t{state}\t{key.name}\t{','.join(key.scopes)}\t{key.created_at:%Y-%m-%d}"
                    )
            elif not await access.revoke(session, args.prefix, CLI):
                print(f"no active key {args.prefix}", file=sys.stderr)
                return 1
        return 0

    try:
        return _with_db(settings, run)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


async def _post_batch(settings: Settings, batch_id: object) -> None:
    """After the import's commit: the worker posts the batch to Slack at once (needs REDIS_URL;
    without it the worker's minute cron posts it)."""
    if not settings.redis_url:
        return
    from api import jobs
    from core.redis import connect

    redis = connect(settings)
    try:
        await jobs.post_batch_for_approval(redis, str(batch_id))
    finally:
        await redis.aclose()


def cmd_batch(settings: Settings, args: argparse.Namespace) -> int:
    from core.invoices import service as invoices

    async def run(db: Database) -> int:
        async with db.session_scope() as session:
            fn = invoices.approve if args.action == "approve" else invoices.reject
            batch = await fn(session, args.batch_id, actor=CLI, note=args.note)
        print(f"batch {batch.id}: {batch.status} ({batch.count} invoices)")
        return 0

    try:
        return _with_db(settings, run)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


def cmd_demo(settings: Settings, _: argparse.Namespace) -> int:
    seeded = _with_db(settings, _seed_demo)
    print("demo data seeded" if seeded else "demo data already present")
    return 0


async def _seed_demo(db: Database) -> bool:
    from core.demo import seed
    from core.ports import SystemClock

    async with db.session_scope() as session:
        return await seed(session, SystemClock().today())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    settings.ensure_secret_key()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )
    return 0


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    import worker

    worker.run()
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """All-in-one: migrate, seed the demo once, then serve with a demo API key printed."""
    import uvicorn

    from api.main import create_app

    settings.ensure_secret_key()
    settings.demo_chat = True  # the local debtor chat page, /demo/chat
    if not settings.creditor_iban:  # demo values, so that the chat shows an EPC QR code (CONTRACT 2)
        settings.creditor_name = settings.creditor_name or "duebot demo B.V."
        settings.creditor_iban = "NL91ABNA0417164300"
    migrate.upgrade(settings.database_url)
    seeded = _with_db(settings, _seed_demo)
    key = _with_db(settings, lambda db: _demo_key(db, settings))
    base = f"http://{args.host}:{args.port}"
    print(
        f"\nduebot is starting on {_safe_url(settings)} ({'demo data seeded' if seeded else 'existing data'})\n"
        f"  debtor chat  {base}/demo/chat   (try every flow as a demo debtor, no bot tokens)\n"
        f"  API docs     {base}/docs\n"
        f"  health       {base}/healthz   readiness {base}/readyz   metrics {base}/metrics\n"
        f"  demo API key {key}\n"
        f"  try:         curl -H 'Authorization: Bearer {key}' {base}/api/v1/debtors/DEMO-1\n"
        f"  worker       in-process: dunning sweep hourly (and now), deliveries and webhooks every minute\n",
        flush=True,
    )
    from bots import wiring

    if wiring.wants_polling(settings):
        print(
            "  telegram     long polling (PUBLIC_BASE_URL is local); webhooks: duebot telegram set-webhook\n"
        )
    asyncio.run(
        _serve_with_worker(
            settings,
            uvicorn.Config(create_app(settings), host=args.host, port=args.port, log_level="warning"),
        )
    )
    return 0


async def _serve_with_worker(settings: Settings, config: Any) -> None:
    """The API and the arq worker in one process and one event loop (the embedded set-up)."""
    import uvicorn
    from arq import ArqRedis
    from arq.worker import Worker

    import worker

    pool: ArqRedis = (
        ArqRedis.from_url(settings.redis_url) if settings.redis_url else worker.embedded_redis_pool()
    )
    arq_worker = Worker(
        functions=worker.WorkerSettings.functions,
        cron_jobs=worker.WorkerSettings.cron_jobs,
        redis_pool=pool,
        on_startup=worker.startup,
        on_shutdown=worker.shutdown,
        ctx={"settings": settings},
        handle_signals=False,
        poll_delay=0.5,
    )
    jobs = asyncio.create_task(arq_worker.async_run())
    from bots import wiring

    polling = asyncio.create_task(wiring.poll_telegram(settings)) if wiring.wants_polling(settings) else None
    try:
        await uvicorn.Server(config).serve()  # returns on Ctrl-C
    finally:
        if polling is not None:
            polling.cancel()
        jobs.cancel()
        await arq_worker.close()


async def _demo_key(db: Database, settings: Settings) -> str:
    """A full-scope key for the local demo, kept in var/ so that restarts print the same one."""
    from core.access import service as access

    path = settings.var_dir / "demo_api_key"
    if path.exists():
        token = path.read_text().strip()
        async with db.sessionmaker() as session:
            if await access.authenticate(session, token) is not None:
                return token
    async with db.session_scope() as session:
        token, _ = await access.create_key(session, "demo (make run)", ["*"], CLI)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    path.chmod(0o600)
    return token


def cmd_dunning(settings: Settings, args: argparse.Namespace) -> int:
    handlers = {"sweep": _dunning_sweep, "preview": _dunning_preview, "load-policy": _dunning_load_policy}
    try:
        return handlers[args.action](settings, args)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for err in exc.errors:
            if err.loc == ("file",):  # already said in the message
                continue
            where = f"line {err.line}: " if err.line else ""
            print(f"  {where}{'.'.join(map(str, err.loc))}: {err.message}", file=sys.stderr)
        return 1


def _dunning_sweep(settings: Settings, args: argparse.Namespace) -> int:
    """One sweep in one unit of work. ``--date`` (catch-up, testing) sweeps as if at 06:00 UTC that day."""
    from datetime import UTC, datetime, time

    from core.dunning.sweep import sweep
    from core.plans.sweep import sweep_instalments
    from core.ports import SystemClock

    now = datetime.combine(args.date, time(6), tzinfo=UTC) if args.date else SystemClock().now()

    async def run(db: Database) -> int:
        async with db.session_scope() as session:
            plans = await sweep_instalments(session, now=now)  # as the worker's sweep job does
            result = await sweep(session, now=now)
        print(
            f"sweep {result.sweep_id} on {now.date().isoformat()}: {result.actions} invoice(s) reached a stage, "
            f"{result.messages} message(s) queued, {result.fees} fee(s) posted"
        )
        print(
            f"payment plans: {plans.reminders} instalment reminder(s) queued, {plans.instalments_paid} "
            f"instalment(s) paid, {len(plans.completed)} plan(s) completed, {len(plans.breached)} breached"
        )
        return 0

    return _with_db(settings, run)


def _dunning_preview(settings: Settings, args: argparse.Namespace) -> int:
    """What a sweep on the date would send, as a table; nothing is written."""
    from collections import Counter

    from core.dunning.service import preview
    from core.ports import SystemClock

    day = args.date or SystemClock().today()

    async def run(db: Database) -> int:
        async with db.sessionmaker() as session:
            lines = await preview(session, day)
        debtors = len({line.debtor_external_id for line in lines})
        print(f"dunning preview for {day.isoformat()}: {len(lines)} invoice(s), {debtors} message(s)")
        if not lines:
            return 0
        rows = [
            (
                f"{line.debtor_external_id} {line.debtor_name}",
                line.invoice_number,
                line.stage,
                ", ".join(line.channels),
            )
            for line in lines
        ]
        header = ("DEBTOR", "INVOICE", "STAGE", "CHANNELS")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        for title, counts in (
            ("per stage", Counter(line.stage for line in lines)),
            ("per channel (first choice)", Counter(line.channels[0] for line in lines if line.channels)),
        ):
            print(f"{title}: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
        return 0

    return _with_db(settings, run)


def _dunning_load_policy(settings: Settings, args: argparse.Namespace) -> int:
    """Upsert every policy of a YAML file, all or nothing."""
    from core.dunning import policies

    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    loaded = policies.load_yaml(text)

    async def run(db: Database) -> int:
        async with db.session_scope() as session:
            results = await policies.load_policies(session, loaded, CLI)
        for r in results:
            what = "created" if r.created else ("replaced" if r.changed else "unchanged")
            moved = f"; {r.rescheduled} open invoice(s) rescheduled" if r.rescheduled else ""
            print(
                f"{what} policy {r.policy.name!r} for segment {r.policy.segment} ({len(r.stages)} stages){moved}"
            )
        return 0

    return _with_db(settings, run)


def cmd_bank(settings: Settings, args: argparse.Namespace) -> int:
    """`duebot bank import FILE`: CAMT.053 or MT940; matched lines are posted, the rest listed."""
    from core.payments.bank import service as bank
    from core.ports import SystemClock

    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    data = path.read_bytes()

    async def run(db: Database) -> int:
        try:
            async with db.session_scope() as session:
                result = await bank.import_statement(
                    session, data, actor=CLI, today=SystemClock().today(), filename=path.name
                )
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        st = result.statement
        if not result.created:
            print(f"already imported as statement {st.id} ({st.statement_ref}); nothing changed")
            return 0
        counts = {
            s: sum(1 for line in result.lines if line.status == s)
            for s in ("matched", "unmatched", "ignored")
        }
        print(
            f"imported {st.format} statement {st.statement_ref} ({st.account_iban}) as {st.id}: "
            f"{counts['matched']} matched, {counts['unmatched']} to be processed, {counts['ignored']} ignored, "
            f"{len(result.duplicates)} already imported"
        )
        for line in result.lines:
            if line.status == "unmatched":
                amount = f"{_fmt(line.amount_minor, line.currency)} {line.currency}"
                print(
                    f"  to process: line {line.source_line}  {amount}  {line.counterparty_name or '?'}  ({line.reason})"
                )
        return 0

    return _with_db(settings, run)


def cmd_debtor(settings: Settings, args: argparse.Namespace) -> int:
    """`duebot debtor erase EXTERNAL_ID [--force]`: remove a debtor's personal data (GDPR)."""
    from core.debtors.erase import erase

    async def run(db: Database) -> int:
        try:
            async with db.session_scope() as session:
                result = await erase(session, args.external_id, actor=CLI, force=args.force)
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        if not result.erased:
            print(f"debtor {result.external_id} holds no personal data any more; nothing changed")
            return 0
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in result.counts.items() if n)
        forced = " (forced: claims were open)" if result.forced else ""
        print(
            f"erased the personal data of debtor {result.external_id}{forced}: {counts or 'name and address'}"
        )
        return 0

    return _with_db(settings, run)


def cmd_telegram(settings: Settings, args: argparse.Namespace) -> int:
    """`duebot telegram set-webhook`: register PUBLIC_BASE_URL/webhooks/telegram with the secret."""
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    if not token or not secret:
        print("error: set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET first", file=sys.stderr)
        return 2
    from bots.telegram.bot import make_bot, register_webhook, webhook_url  # aiogram loads slowly

    bot = make_bot(token, settings.telegram_api_base)
    url = webhook_url(settings.public_base_url)

    async def run() -> bool:
        try:
            return await register_webhook(bot, url, secret)
        finally:
            await bot.session.close()

    try:
        done = asyncio.run(run())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # aiogram's TelegramAPIError and network errors, said plainly
        print(f"error: Telegram refused the webhook: {exc}", file=sys.stderr)
        return 1
    print(f"Telegram webhook set to {url}" if done else "Telegram did not confirm the webhook")
    return 0 if done else 1


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in the form YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="duebot", description="duebot: accounts-receivable assistant")
    sub = p.add_subparsers(dest="command", required=True)

    for name, helptext in (("run", "all-in-one development server"), ("serve", "the API (uvicorn)")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=8000)
        if name == "serve":
            s.add_argument("--workers", type=int, default=1)

    m = sub.add_parser("migrate", help="apply the database migrations")
    m.add_argument("--revision", default="head")
    m.add_argument("--downgrade", metavar="REVISION", help="downgrade instead (e.g. base)")

    i = sub.add_parser("import", help="import invoices from a CSV file as one batch")
    i.add_argument("file")

    k = sub.add_parser("api-key", help="manage API keys")
    ksub = k.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create", help="create a key; it is printed once")
    kc.add_argument("--scope", action="append", help="repeatable; '*' for all")
    kc.add_argument("--name", default="erp")
    ksub.add_parser("list")
    kr = ksub.add_parser("revoke")
    kr.add_argument("prefix")

    b = sub.add_parser("batch", help="approve or reject an invoice batch")
    bsub = b.add_subparsers(dest="action", required=True)
    for action in ("approve", "reject"):
        ba = bsub.add_parser(action)
        ba.add_argument("batch_id", type=uuid.UUID, help="the id printed by `duebot import`")
        ba.add_argument("--note")

    dn = sub.add_parser("dunning", help="dunning: sweep, preview, load policies")
    dsub = dn.add_subparsers(dest="action", required=True)
    ds = dsub.add_parser("sweep", help="run one dunning sweep now")
    ds.add_argument(
        "--date",
        type=_iso_date,
        help="YYYY-MM-DD: sweep as if at 06:00 UTC that day (catch-up, testing)",
    )
    dp = dsub.add_parser("preview", help="show what a sweep would send on a date; nothing is written")
    dp.add_argument("--date", type=_iso_date, help="YYYY-MM-DD; default today (UTC)")
    dl = dsub.add_parser("load-policy", help="create or replace dunning policies from a YAML file")
    dl.add_argument("file")

    bk = sub.add_parser("bank", help="bank statements: import CAMT.053 or MT940 files")
    bksub = bk.add_subparsers(dest="action", required=True)
    bki = bksub.add_parser("import", help="import a statement; matched payments are posted")
    bki.add_argument("file")

    dt = sub.add_parser("debtor", help="debtors: erase personal data (GDPR)")
    dtsub = dt.add_subparsers(dest="action", required=True)
    dte = dtsub.add_parser("erase", help="remove a debtor's personal data; the ledger stays")
    dte.add_argument("external_id")
    dte.add_argument("--force", action="store_true", help="erase even with an open balance or credit")

    tg = sub.add_parser("telegram", help="the Telegram bot")
    tgsub = tg.add_subparsers(dest="action", required=True)
    tgsub.add_parser("set-webhook", help="register PUBLIC_BASE_URL/webhooks/telegram with Telegram")

    sub.add_parser("demo", help="seed the demo data (once)")
    sub.add_parser("worker", help="the arq worker (needs REDIS_URL)")
    return p


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "run": cmd_run,
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "import": cmd_import,
    "api-key": cmd_api_key,
    "batch": cmd_batch,
    "demo": cmd_demo,
    "dunning": cmd_dunning,
    "bank": cmd_bank,
    "worker": cmd_worker,
    "telegram": cmd_telegram,
    "debtor": cmd_debtor,
}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        code = COMMANDS[args.command](settings, args)
    except (OperationalError, ProgrammingError) as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            print("error: the database has no duebot schema yet; run `duebot migrate` first", file=sys.stderr)
            code = 2
        else:
            raise
    sys.exit(code)


if __name__ == "__main__":
    main()
