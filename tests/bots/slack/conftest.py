"""Slack as Slack sends it: signed requests through the real bolt stack to /slack/events, with the
real slack_sdk client talking to a local fake Slack Web API."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from api.deps import Services
from api.main import create_app
from bots.slack.app import SlackDeps
from bots.slack.deps import build_client
from bots.slack.seams import StaffHooks
from core.config import Settings
from core.db import Database
from core.ports import FixedClock
from tests.fakes.slack import FakeSlack, fake_slack

SECRET = "test-signing-secret"
ALLOWED = "UALLOWED"
APPROVER = "UAPPROVER"
APPROVER2 = "UAPPROVER2"
STRANGER = "USTRANGER"
STAFF_CHANNEL = "CSTAFF"


def slack_settings(settings: Settings, fake: FakeSlack) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr("xoxb-test"),
            "slack_signing_secret": SecretStr(SECRET),
            "slack_api_base": fake.api_base,
            "slack_staff_channel": STAFF_CHANNEL,
            "slack_allowed_users": ALLOWED,
            "slack_approvers": f"{APPROVER},{APPROVER2}",
        }
    )


def signed(body: bytes, *, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={mac}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@dataclass
class Staff:
    """A Slack workspace talking to duebot: sends commands, clicks and submissions, signed."""

    http: httpx.AsyncClient
    fake: FakeSlack
    settings: Settings
    db: Database
    clock: FixedClock
    hooks: StaffHooks

    @property
    def client(self) -> Any:
        return build_client(self.settings)

    @property
    def deps(self) -> SlackDeps:
        return SlackDeps(self.settings, self.db, self.clock, hooks=self.hooks)

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post("/slack/events", content=body, headers=headers or signed(body))

    async def command(self, text: str, user: str = ALLOWED, **extra: str) -> httpx.Response:
        body = urlencode(
            {
                "command": "/ar",
                "text": text,
                "user_id": user,
                "user_name": f"name-{user.lower()}",
                "team_id": "T0TEST",
                "channel_id": "CWORK",
                "response_url": self.fake.response_url,
                "trigger_id": "trigger-1",
                **extra,
            }
        ).encode()
        return await self.post(body)

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.post(urlencode({"payload": json.dumps(payload)}).encode())

    async def click(
        self,
        action_id: str,
        value: str,
        user: str = ALLOWED,
        *,
        channel: str = STAFF_CHANNEL,
        ts: str = "1764000000.000001",
        blocks: list[dict[str, Any]] | None = None,
    ) -> httpx.Response:
        return await self.interact(
            {
                "type": "block_actions",
                "user": {"id": user, "username": f"name-{user.lower()}", "team_id": "T0TEST"},
                "team": {"id": "T0TEST"},
                "api_app_id": "A0TEST",
                "trigger_id": "trigger-2",
                "response_url": self.fake.response_url,
                "channel": {"id": channel},
                "container": {"type": "message", "message_ts": ts, "channel_id": channel},
                "message": {"ts": ts, "blocks": blocks or [], "text": ""},
                "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value}],
            }
        )

    async def submit(
        self, callback_id: str, values: dict[str, Any], metadata: str, user: str = ALLOWED
    ) -> httpx.Response:
        state = {
            block: {"value": {"type": "datepicker", "selected_date": v}}
            if block == "until"
            else {"value": {"type": "plain_text_input", "value": v}}
            for block, v in values.items()
        }
        return await self.interact(
            {
                "type": "view_submission",
                "user": {"id": user, "username": f"name-{user.lower()}", "team_id": "T0TEST"},
                "team": {"id": "T0TEST"},
                "api_app_id": "A0TEST",
                "trigger_id": "trigger-3",
                "view": {
                    "id": "V0TEST",
                    "type": "modal",
                    "callback_id": callback_id,
                    "private_metadata": metadata,
                    "state": {"values": state},
                },
            }
        )

    async def event(self, event: dict[str, Any]) -> httpx.Response:
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T0TEST",
                "api_app_id": "A0TEST",
                "event": event,
                "event_id": "Ev1",
            }
        ).encode()
        headers = signed(body) | {"Content-Type": "application/json"}
        return await self.post(body, headers)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with fake_slack() as server:
        yield server


@pytest.fixture
def hooks() -> StaffHooks:
    return StaffHooks()


async def staff_for(
    settings: Settings,
    db: Database,
    redis: Redis,
    clock: FixedClock,
    fake: FakeSlack,
    hooks: StaffHooks,
    *,
    process_before_response: bool = True,
) -> AsyncIterator[Staff]:
    configured = slack_settings(settings, fake)
    app = create_app(services=Services(settings=configured, db=db, redis=redis, clock=clock))
    app.state.slack_process_before_response = process_before_response
    app.state.slack_hooks = hooks
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://duebot.test") as http:
        yield Staff(http, fake, configured, db, clock, hooks)


@pytest.fixture
async def staff(
    settings: Settings, db: Database, redis: Redis, clock: FixedClock, fake: FakeSlack, hooks: StaffHooks
) -> AsyncIterator[Staff]:
    async for s in staff_for(settings, db, redis, clock, fake, hooks):
        yield s
