"""`POST /slack/events`: slash commands, interactivity and events, verified and dispatched by slack-bolt.

The bolt app is built on the first request from the services the lifespan made (so tests that
pass their own services get an app over them). ``slack_hooks`` is where the composition root
plugs in the services of other modules (refunds, payment requests, plans, the debtor relay);
``app.state.slack_hooks`` overrides it (tests).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

from api.deps import Services, ServicesDep
from bots.slack.app import SlackDeps, create_slack_app, is_configured
from bots.slack.seams import StaffHooks
from core.errors import NotFound

router = APIRouter(tags=["webhooks"])


def slack_hooks(services: Services) -> StaffHooks:
    """The seams to other modules' services; each None answers "not available yet" in Slack."""
    del services
    return StaffHooks()


def _handler(request: Request, services: Services) -> AsyncSlackRequestHandler:
    state: Any = request.app.state
    handler: AsyncSlackRequestHandler | None = getattr(state, "slack_handler", None)
    if handler is None:
        deps = SlackDeps(
            services.settings,
            services.db,
            services.clock,
            hooks=getattr(state, "slack_hooks", None) or slack_hooks(services),
        )
        app = create_slack_app(
            deps, process_before_response=bool(getattr(state, "slack_process_before_response", False))
        )
        handler = AsyncSlackRequestHandler(app)
        state.slack_handler = handler
    return handler


@router.post("/slack/events", include_in_schema=False)
async def slack_events(request: Request, services: ServicesDep) -> Response:
    if not is_configured(services.settings):
        raise NotFound(
            "Slack is not configured (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET)", "slack_not_configured"
        )
    return await _handler(request, services).handle(request)
