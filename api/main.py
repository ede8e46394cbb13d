"""create_app(): the HTTP composition root. The lifespan builds the services; tests pass their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from api import problems
from api.deps import Services, refuse_nul, require_json
from api.metrics import Metrics, MetricsMiddleware
from api.routes import (
    bank,
    chat_links,
    debtors,
    demo_chat,
    dunning,
    exports,
    health,
    invoices,
    ledger,
    pay_pages,
    payments,
    plans,
)
from api.webhooks import mollie as mollie_webhook
from api.webhooks import slack as slack_webhook
from api.webhooks import telegram as telegram_webhook
from api.webhooks import whatsapp as whatsapp_webhook
from bots.wiring import build_chat_bots
from core.config import Settings
from core.db import Database
from core.payments import providers
from core.ports import Clock, SystemClock
from core.redis import connect as connect_redis

API_DESCRIPTION = """
duebot's REST API for the ERP. Authenticate with `Authorization: Bearer <api key>`
(create one with `duebot api-key create --scope '*'`). Amounts are decimal strings beside an
ISO 4217 currency. Every POST accepts an `Idempotency-Key`. Errors are `application/problem+json`.
"""


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or (services.settings if services else Settings())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        assert settings is not None
        settings.ensure_secret_key()
        db = Database.from_url(settings.database_url)
        redis = connect_redis(settings)
        clock: Clock = SystemClock()
        app.state.services = Services(
            settings=settings, db=db, redis=redis, clock=clock, payments=providers.from_settings(settings)
        )
        chat = build_chat_bots(settings, db, clock)
        app.state.telegram, app.state.whatsapp = chat.telegram, chat.whatsapp
        try:
            yield
        finally:
            await chat.aclose()
            await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title="duebot",
        version="1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.metrics = metrics
    if services is not None:
        app.state.services = services
    problems.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    # First: FastAPI tries the routes in order (matching each costs Python time per request), and
    # the providers' webhooks come in bursts: Telegram's at the chat's pace, ahead of the REST API's
    # routes (about 60 of them; measured: ~110 of ~180 us of CPU per Telegram update went to
    # matching when its route was last). Mollie's lean route serves its webhooks; the router's own
    # route only describes the endpoint in the OpenAPI schema.
    app.router.routes.append(mollie_webhook.lean_route)
    app.include_router(mollie_webhook.router)
    app.include_router(telegram_webhook.router)
    app.include_router(whatsapp_webhook.router)
    v1 = APIRouter(prefix="/api/v1", dependencies=[Depends(require_json), Depends(refuse_nul)])
    v1.include_router(debtors.router)
    v1.include_router(invoices.router)
    v1.include_router(ledger.router)
    v1.include_router(dunning.router)
    v1.include_router(plans.router)
    v1.include_router(bank.router)
    v1.include_router(exports.router)
    v1.include_router(payments.router)
    v1.include_router(chat_links.router)
    app.include_router(v1)
    # Statement uploads are files, not JSON: beside v1, without its JSON-only check.
    app.include_router(bank.upload_router, prefix="/api/v1", dependencies=[Depends(refuse_nul)])
    app.include_router(health.router)
    app.include_router(slack_webhook.router)
    app.include_router(pay_pages.router)
    app.include_router(demo_chat.router)
    return app
