"""`duebot telegram set-webhook` as an operator runs it, against the fake Bot API."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bots.wiring import wants_polling
from core.config import Settings
from tests.fakes.telegram import TOKEN, FakeTelegramApi, telegram_api

DUEBOT = Path(sys.executable).with_name("duebot")
SECRET = "hook_secret-123"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramApi]:
    async with telegram_api() as api:
        yield api


async def duebot(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Runs the real command without blocking the loop the fake server answers on."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DUEBOT_", "TELEGRAM_", "PUBLIC_"))}
    proc = await asyncio.create_subprocess_exec(
        str(DUEBOT),
        *args,
        cwd=tmp_path,
        env=base | {"DUEBOT_LOG_LEVEL": "WARNING", "DUEBOT_VAR_DIR": str(tmp_path / "var")} | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_set_webhook_registers_the_public_url_with_the_secret(
    tmp_path: Path, fake: FakeTelegramApi
) -> None:
    code, out, err = await duebot(
        tmp_path,
        "telegram",
        "set-webhook",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_BASE=fake.base,
        PUBLIC_BASE_URL="https://duebot.example.com/",
    )

    assert (code, err) == (0, "")
    assert out.strip() == "Telegram webhook set to https://duebot.example.com/webhooks/telegram"
    assert fake.webhook is not None
    assert fake.webhook["url"] == "https://duebot.example.com/webhooks/telegram"
    assert fake.webhook["secret_token"] == SECRET
    assert fake.calls[0].token == TOKEN


async def test_set_webhook_without_a_secret_or_with_a_local_url_is_refused(
    tmp_path: Path, fake: FakeTelegramApi
) -> None:
    code, _, err = await duebot(
        tmp_path, "telegram", "set-webhook", TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=fake.base
    )
    assert code == 2 and "TELEGRAM_WEBHOOK_SECRET" in err

    code, _, err = await duebot(
        tmp_path,
        "telegram",
        "set-webhook",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_BASE=fake.base,
        PUBLIC_BASE_URL="http://127.0.0.1:8000",
    )
    assert code == 2 and "https://" in err
    assert fake.calls == []


def test_run_polls_when_a_token_is_set_and_the_public_url_is_local() -> None:
    bare = Settings(_env_file=None)  # type: ignore[call-arg]
    token = {"telegram_bot_token": SecretStr(TOKEN)}
    assert not wants_polling(bare)
    assert wants_polling(bare.model_copy(update=token))  # default http://127.0.0.1:8000
    public = bare.model_copy(update=token | {"public_base_url": "https://duebot.example.com"})
    assert not wants_polling(public)
