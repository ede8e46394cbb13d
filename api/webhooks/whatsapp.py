"""``/webhooks/whatsapp``: the Cloud API's verification challenge and its notifications.

- ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…``: echoes the challenge when the token
  equals ``WHATSAPP_VERIFY_TOKEN`` (constant-time), else 403.
- ``POST``: ``X-Hub-Signature-256`` must be the HMAC-SHA256 of the raw body under
  ``WHATSAPP_APP_SECRET`` (401 when missing, 403 when wrong, and nothing is processed; no secret
  configured: 401 always). A malformed body is a 422. Statuses become delivery receipts before the
  answer; people's messages are queued for the conversation and the answer is 200 right away.
"""

from __future__ import annotations

import json
import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from api.deps import ServicesDep
from api.problems import problem
from bots.whatsapp.bot import WhatsAppBot
from bots.whatsapp.inbound import Notification, parse, verify
from core.errors import Forbidden, InvalidInput, Unauthorized

router = APIRouter(tags=["webhooks"])
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY = 3 * 1024 * 1024


def whatsapp_of(request: Request) -> WhatsAppBot | None:
    bot: WhatsAppBot | None = getattr(request.app.state, "whatsapp", None)
    return bot


@router.get("/webhooks/whatsapp", include_in_schema=False)
async def whatsapp_verify(request: Request, services: ServicesDep) -> Response:
    q = request.query_params
    configured = services.settings.whatsapp_verify_token
    expected = configured.get_secret_value().encode() if configured else b""
    given = q.get("hub.verify_token", "").encode()
    if q.get("hub.mode") != "subscribe" or not expected or not secrets.compare_digest(given, expected):
        raise Forbidden("wrong verify token", "invalid_verify_token")
    return PlainTextResponse(q.get("hub.challenge", ""))


@router.post("/webhooks/whatsapp", include_in_schema=False)
async def whatsapp_notification(request: Request, services: ServicesDep) -> Response:
    body = await request.body()
    configured = services.settings.whatsapp_app_secret
    secret = configured.get_secret_value() if configured else ""
    header = request.headers.get(SIGNATURE_HEADER)
    if not secret or not header:
        raise Unauthorized("missing X-Hub-Signature-256", "invalid_signature")
    if not verify(body, header, secret):
        raise Forbidden("wrong X-Hub-Signature-256", "invalid_signature")
    if len(body) > MAX_BODY:
        raise InvalidInput("the request body is too large", "body_too_large")
    try:
        notification = Notification.model_validate(json.loads(body))
    except (ValueError, UnicodeDecodeError, ValidationError):
        raise InvalidInput("the body is not a WhatsApp notification", "invalid_notification") from None
    bot = whatsapp_of(request)
    if bot is None:
        return problem(503, "Unavailable", "the WhatsApp channel is not running", "channel_unavailable")
    inbound, receipts = parse(notification)
    await bot.apply_receipts(receipts)
    refused = [i for i in inbound if not bot.accept(i)]
    if refused:
        return problem(503, "Busy", "too many messages waiting", "busy", headers={"Retry-After": "5"})
    return Response(status_code=200)
