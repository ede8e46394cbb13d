"""``POST /webhooks/telegram``: Telegram delivers bot updates here (registered by
``duebot telegram set-webhook``).

The request must carry ``X-Telegram-Bot-Api-Secret-Token`` equal to ``TELEGRAM_WEBHOOK_SECRET``
(compared in constant time); without a configured secret every request is refused, so an
unprotected endpoint can never be open. A refused or malformed request changes nothing. An accepted
update is answered 200 at once and handled in the background with bounded concurrency (the
adapter's backlog); when that backlog is full the answer is 503 and Telegram delivers it again later.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from api.deps import get_services
from api.problems import problem
from core.errors import InvalidInput, Unauthorized

if TYPE_CHECKING:  # aiogram costs ~140 MB of memory: loaded only when Telegram is configured
    from bots.telegram.bot import TelegramBot

router = APIRouter(tags=["webhooks"])
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
MAX_BODY = 1024 * 1024


def telegram_of(request: Request) -> TelegramBot | None:
    bot: TelegramBot | None = getattr(request.app.state, "telegram", None)
    return bot


async def json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("the request body is too large", "body_too_large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the body is not JSON", "invalid_json") from None


@router.post("/webhooks/telegram", include_in_schema=False)
async def telegram_webhook(request: Request) -> Response:
    # The services straight from the app, not as a dependency: FastAPI's dependency solving is a
    # measurable part of this route's per-update CPU, and the route needs only the settings.
    configured = get_services(request).settings.telegram_webhook_secret
    expected = configured.get_secret_value().encode() if configured else b""
    given = request.headers.get(SECRET_HEADER, "").encode()
    if not expected or not secrets.compare_digest(given, expected):
        raise Unauthorized("wrong or missing Telegram secret token", "invalid_signature")
    bot = telegram_of(request)
    if bot is None:
        return problem(503, "Unavailable", "the Telegram bot is not running", "channel_unavailable")
    data = await json_body(request)
    if not isinstance(data, dict):
        raise InvalidInput("an update is a JSON object", "invalid_update")
    try:
        update = bot.parse(data)
    except ValidationError:
        raise InvalidInput("the body is not a Telegram update", "invalid_update") from None
    if not bot.accept(update):
        return problem(503, "Busy", "too many updates waiting", "busy", headers={"Retry-After": "5"})
    return Response(status_code=200)
