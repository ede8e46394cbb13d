"""The demo chat page and its endpoints (on only in the embedded demo), and the link endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from api.deps import Services
from api.main import create_app
from core.audit import Actor
from core.conversation import relay
from core.db import Database
from tests import factories

SESSION = "sess0001abcd"


@pytest.fixture
async def demo(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    settings = services.settings.model_copy(
        update={"demo_chat": True, "creditor_name": "Acme", "creditor_iban": "NL91ABNA0417164300"}
    )
    app = create_app(
        services=Services(settings=settings, db=services.db, redis=services.redis, clock=services.clock)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://duebot.test") as c:
        yield c


@pytest.fixture
async def debtor(db: Database) -> str:
    ext = await factories.debtor(db, "DEMO-X", name="Globex", locale="en")
    await factories.invoice(db, ext, number="GX-1", amount_minor=75_000, due_date=date(2026, 11, 1))
    return ext


async def test_off_unless_demo_mode(client: httpx.AsyncClient) -> None:
    assert (await client.get("/demo/chat")).status_code == 404
    r = await client.post("/demo/chat/messages", json={"session_id": SESSION, "text": "hi"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_page_debtors_link_and_chat(demo: httpx.AsyncClient, debtor: str, db: Database) -> None:
    page = await demo.get("/demo/chat")
    assert page.status_code == 200 and "duebot demo chat" in page.text
    listed = (await demo.get("/demo/chat/debtors")).json()["debtors"]
    assert {"external_id": "DEMO-X", "name": "Globex", "locale": "en"} in listed

    linked = (await demo.post("/demo/chat/link", json={"session_id": SESSION, "external_id": debtor})).json()
    [welcome] = linked["replies"]
    assert welcome["template"] == "chat.link.linked" and "Globex" in welcome["text"]
    assert {"id": "menu:pay", "label": "Pay"} in welcome["options"]

    paid = (await demo.post("/demo/chat/messages", json={"session_id": SESSION, "choice": "menu:pay"})).json()
    [pay] = paid["replies"]
    assert "GX-1" in pay["text"]
    assert pay["attachments"][0]["data_url"].startswith("data:image/png;base64,iVBOR")

    pdf = (await demo.post("/demo/chat/messages", json={"session_id": SESSION, "text": "/invoices"})).json()
    assert pdf["replies"][0]["attachments"][0]["data_url"].startswith("data:application/pdf;base64,JVBER")

    async with db.session_scope() as s:
        from core.conversation.repository import chats_of
        from core.debtors.repository import get_by_external_id

        found = await get_by_external_id(s, debtor)
        assert found is not None
        [chat] = await chats_of(s, found.id)
        await relay.relay_to_debtor(
            s, chat, "We got your message.", staff=Actor("staff", "U1", "Anna"), now=chat.updated_at
        )
    staff = (await demo.get("/demo/chat/messages", params={"session_id": SESSION})).json()["messages"]
    assert [m["text"] for m in staff] == ["We got your message.\n\u2013 Anna"]


async def test_bad_input_is_a_4xx(demo: httpx.AsyncClient) -> None:
    for body in (
        {"session_id": SESSION},
        {"session_id": SESSION, "text": "a", "choice": "b"},
        {"session_id": "../../etc", "text": "hi"},
        {"session_id": SESSION, "text": "x" * 5000},
    ):
        r = await demo.post("/demo/chat/messages", json=body)
        assert r.status_code == 422, body
    r = await demo.post("/demo/chat/link", json={"session_id": SESSION, "external_id": "NOPE"})
    assert r.status_code == 404


async def test_link_endpoint(client: httpx.AsyncClient, auth: dict[str, str], debtor: str) -> None:
    r = await client.post(f"/api/v1/debtors/{debtor}/link", headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    token = body["telegram"]["start"].removeprefix("/start ")
    assert body["telegram"]["url"] == f"https://t.me/your_duebot_bot?start={token}"
    assert body["whatsapp"] == {"url": None, "text": f"LINK {token}"}
    again = await client.post(f"/api/v1/debtors/{debtor}/link", headers=auth)
    assert again.json()["telegram"]["start"] != body["telegram"]["start"]
    missing = await client.post("/api/v1/debtors/NOPE/link", headers=auth)
    assert missing.status_code == 404
    assert (await client.post(f"/api/v1/debtors/{debtor}/link")).status_code == 401
