from __future__ import annotations

import httpx


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_debtor_roundtrip(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.put(
        "/api/v1/debtors/C-1", json={"name": "Acme BV", "email": "ap@acme.nl", "locale": "nl"}, headers=auth
    )
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/debtors/C-1", headers=auth)
    assert r.status_code == 200
    assert r.json()["email"] == "ap@acme.nl"
