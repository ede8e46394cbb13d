"""What the Slack handlers and notifications need: settings, database, clock, hooks, the client."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.seams import StaffHooks
from core.config import Settings
from core.db import Database
from core.ports import Clock

RATE_LIMIT_RETRIES = 3


@dataclass
class SlackDeps:
    settings: Settings
    db: Database
    clock: Clock
    hooks: StaffHooks = field(default_factory=StaffHooks)

    @property
    def staff_channel(self) -> str | None:
        return self.settings.slack_staff_channel


def build_client(settings: Settings) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_base,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


def is_configured(settings: Settings) -> bool:
    return settings.slack_bot_token is not None and settings.slack_signing_secret is not None
