"""`POST /slack/events`: slash commands, interactivity and events, verified and dispatched by slack-bolt.

The bolt app is built on the first request from the services the lifespan made (so tests that
pass their own services get an app over them). ``slack_hooks`` is where the composition root
plugs in the services of other modules (refunds, payment requests, plans, the debtor relay);
``app.state.slack_hooks`` overrides it (tests).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context

from api.deps import Services, ServicesDep
from bots.conversation import staff_hooks
from bots.slack.app import SlackDeps, create_slack_app, is_configured
from bots.slack.seams import StaffHooks
from bots.slack.services import build_hooks
from core.errors import NotFound

router = APIRouter(tags=["webhooks"])


def slack_hooks(services: Services) -> StaffHooks:
    """The seams to the core services: refunds, payment requests and plan summaries
    (bots/slack/services.py); the relay of hand-off replies into the debtor's chat; and plan
    decisions, which also tell the debtor in their chat (bots/conversation.py)."""
    hooks = build_hooks(services.settings, services.clock, services.payments)
    hooks.decide_plan = None  # the debtor-side version below decides and tells the debtor
    return staff_hooks(services.clock, hooks)


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
    handler = _handler(request, services)
    body = await request.body()
    command = _slash_command_mentioning_payload(body)
    if command is not None:
        bolt_request = to_async_bolt_request(request, body)
        bolt_request.body = command  # the raw body stays as sent: the signature is still verified
        bolt_request.context = build_async_context(AsyncBoltContext({}), command)
        return to_starlette_response(await handler.app.async_dispatch(bolt_request))
    return await handler.handle(request)


def _slash_command_mentioning_payload(body: bytes) -> dict[str, str] | None:
    """A slash command whose text says "payload" (``/ar debtor payload bv``): bolt would take it
    for an interactivity body without one and answer 404. Its form fields, so it can be dispatched."""
    if b"payload" not in body or body.lstrip().startswith(b"{"):
        return None
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return fields if "command" in fields and "payload" not in fields else None
