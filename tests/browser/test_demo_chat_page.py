"""The demo chat page in headless Chromium (Debian's ``chromium``), driven by Playwright.

The real app (``create_app``, as ``duebot serve`` builds it) runs under uvicorn in a thread on a free
port (tests/serve.py), against the test database with committed data; the browser clicks and types
as a newcomer would. Playwright's own browser downloads are not used: ``executable_path`` points at
the system Chromium. Without it the test fails and says how to install it (``.ci/run`` installs it
in CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from core.config import Settings
from core.db import Database
from core.ports import SystemClock
from tests import factories
from tests.serve import serving

CHROMIUM = os.environ.get("DUEBOT_CHROMIUM", "/usr/bin/chromium")


def _chromium() -> str:
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not found:
        pytest.fail(
            f"the browser test needs Chromium at {CHROMIUM}: install Debian's package "
            "(`sudo apt-get install -y chromium`) or set DUEBOT_CHROMIUM to a Chromium binary; "
            "`.ci/run` installs it by itself",
            pytrace=False,
        )
    return found


@pytest.fixture
async def server(committed: Database, settings: Settings) -> AsyncIterator[str]:
    """The real app with the demo chat on, against the test database; its base URL once it listens."""
    today = SystemClock().today()
    await factories.debtor(committed, "WEB-1", name="Globex Web", locale="en")
    await factories.invoice(
        committed, "WEB-1", number="GW-1", amount_minor=75_000, due_date=today - timedelta(days=10)
    )
    app_settings = settings.model_copy(
        update={"demo_chat": True, "creditor_name": "Acme", "creditor_iban": "NL91ABNA0417164300"}
    )
    async with serving(app_settings, "duebot-browser-test") as url:
        yield url


@pytest.fixture
async def page(server: str) -> AsyncIterator[Page]:
    executable = _chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            page.set_default_timeout(5_000)
            await page.goto(f"{server}/demo/chat")
            yield page
        finally:
            await browser.close()


async def test_a_newcomer_links_asks_the_balance_pays_and_switches_to_dutch(page: Page) -> None:
    bot = page.locator(".msg.bot")
    await page.locator(".debtor", has_text="Globex Web").get_by_role("button", name="Link as").click()
    await expect(bot.last).to_contain_text("Globex Web")

    await bot.last.get_by_role("button", name="Balance", exact=True).click()
    await expect(bot.last).to_contain_text("Here is what is open on your account")
    await expect(bot.last).to_contain_text("€750.00")
    await expect(bot.last).to_contain_text("GW-1")

    await page.locator("#text").fill("how much do I still owe?")
    await page.locator("#form button[type=submit]").click()
    await expect(page.locator(".msg.bot", has_text="Here is what is open on your account")).to_have_count(2)

    await bot.last.get_by_role("button", name="Pay", exact=True).click()
    qr = bot.last.locator("figure.att img").first
    await expect(qr).to_be_visible()
    assert (await qr.get_attribute("src") or "").startswith("data:image/png;base64,")
    assert await qr.evaluate("img => img.naturalWidth") > 50  # a real, decoded image

    await page.locator("#text").fill("/language")
    await page.locator("#form button[type=submit]").click()
    await bot.last.get_by_role("button", name="Nederlands", exact=True).click()
    await expect(bot.last).to_contain_text("Geregeld: ik schrijf u voortaan in het Nederlands.")
    await bot.last.get_by_role("button", name="Saldo", exact=True).click()
    await expect(bot.last).to_contain_text("Dit staat er open op uw account")
    await expect(bot.last).to_contain_text("€ 750,00")
