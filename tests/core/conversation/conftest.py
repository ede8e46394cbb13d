"""Fixtures for conversation transcripts: a debtor with open invoices, a token, a linked chat."""

from __future__ import annotations

from datetime import date

import pytest

from core.audit import Actor
from core.config import Settings
from core.conversation import linking
from core.conversation.engine import ConversationDeps
from core.db import Database
from core.ports import FixedClock
from tests import factories
from tests.core.conversation.transcript import Chat

STAFF = Actor("staff", "U123", "Anna")


@pytest.fixture
def conv_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "creditor_name": "Acme B.V.",
            "creditor_iban": "NL91ABNA0417164300",
            "telegram_bot_username": "acme_bot",
        }
    )


@pytest.fixture
def deps(conv_settings: Settings, clock: FixedClock) -> ConversationDeps:
    return ConversationDeps(settings=conv_settings, clock=clock)


async def make_token(db: Database, external_id: str, clock: FixedClock, settings: Settings) -> str:
    async with db.session_scope() as s:
        offer = await linking.create_link(s, external_id, settings=settings, now=clock.now(), actor=STAFF)
    return offer.token


@pytest.fixture
async def debtor_en(db: Database) -> str:
    ext = await factories.debtor(db, name="Northwind Ltd", locale="en", phone="+31612345678")
    await factories.invoice(db, ext, number="NW-1", amount_minor=24_950, due_date=date(2026, 10, 31))
    await factories.invoice(db, ext, number="NW-2", amount_minor=10_000, due_date=date(2026, 12, 10))
    return ext


@pytest.fixture
async def debtor_nl(db: Database) -> str:
    ext = await factories.debtor(db, name="Bakkerij Smit", locale="nl")
    await factories.invoice(db, ext, number="BS-1", amount_minor=8_999, due_date=date(2026, 11, 20))
    return ext


async def linked_chat(
    db: Database, deps: ConversationDeps, clock: FixedClock, external_id: str, **kw: object
) -> Chat:
    chat = Chat(db, deps, **kw)  # type: ignore[arg-type]
    token = await make_token(db, external_id, clock, deps.settings)
    await chat.send(f"/start {token}")
    assert chat.last.template == "chat.link.linked", chat.last.text
    return chat


@pytest.fixture
async def en_chat(db: Database, deps: ConversationDeps, clock: FixedClock, debtor_en: str) -> Chat:
    return await linked_chat(db, deps, clock, debtor_en)


@pytest.fixture
async def nl_chat(db: Database, deps: ConversationDeps, clock: FixedClock, debtor_nl: str) -> Chat:
    return await linked_chat(db, deps, clock, debtor_nl, locale_hint="nl")
