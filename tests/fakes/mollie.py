"""A local fake of the Mollie Payments API v2 (aiohttp.web), driven by the tests.

The real mollie-api-python client talks to it through ``Client(api_endpoint=fake.url)``
(``MOLLIE_API_BASE``)::

    async with mollie_server() as fake:
        ...create a payment through the client...
        fake.set_status("tr_1", "paid")            # the test moves the payment on
        fake.refund_externally("tr_1", 500)         # a refund made in the Mollie dashboard
        fake.charge_back("tr_1", 2500)
        fake.fail_next(503, count=2)                # the next two requests get a 503
        fake.hang_next()                            # the next request never gets an answer
        fake.latency = 0.05                         # every answer takes 50 ms, as over the internet

What it implements: ``POST /v2/payments`` (with Idempotency-Key replay: same key, same answer, and
``Idempotent-Replayed: true``), ``GET /v2/payments/{id}`` (404 for unknown ids),
``POST /v2/payments/{id}/refunds`` (idempotent too; 422 above the remaining amount) and
``GET /v2/payments/{id}/refunds``. Amounts are ``{"currency", "value"}`` with a decimal string.
The API key must be a Bearer ``test_…`` or ``live_…``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes import LOOPBACK, AiohttpFake

STATUSES = ("open", "pending", "authorized", "canceled", "expired", "failed", "paid")


def _minor(amount: dict[str, str]) -> int:
    return int(Decimal(amount["value"]) * 100)


def _amount(minor: int, currency: str) -> dict[str, str]:
    return {"currency": currency, "value": f"{minor // 100}.{minor % 100:02d}"}


@dataclass
class FakePayment:
    id: str
    amount_minor: int
    currency: str
    description: str
    redirect_url: str | None
    webhook_url: str | None
    metadata: Any
    created_at: datetime
    expires_at: datetime
    status: str = "open"
    refunded_minor: int = 0
    charged_back_minor: int = 0
    refunds: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, base: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resource": "payment",
            "id": self.id,
            "mode": "test",
            "createdAt": self.created_at.isoformat(),
            "status": self.status,
            "amount": _amount(self.amount_minor, self.currency),
            "description": self.description,
            "redirectUrl": self.redirect_url,
            "webhookUrl": self.webhook_url,
            "metadata": self.metadata,
            "expiresAt": self.expires_at.isoformat(),
            "_links": {"self": {"href": f"{base}/v2/payments/{self.id}", "type": "application/hal+json"}},
        }
        if self.status == "open":
            out["_links"]["checkout"] = {
                "href": f"https://www.mollie.com/checkout/select-method/{self.id}",
                "type": "text/html",
            }
        if self.status == "paid":
            out["paidAt"] = self.created_at.isoformat()
            out["amountRefunded"] = _amount(self.refunded_minor, self.currency)
            out["amountRemaining"] = _amount(
                self.amount_minor - self.refunded_minor - self.charged_back_minor, self.currency
            )
            if self.charged_back_minor:
                out["amountChargedBack"] = _amount(self.charged_back_minor, self.currency)
        return out


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class FakeMollie(AiohttpFake):
    def __init__(self) -> None:
        self.payments: dict[str, FakePayment] = {}
        self.requests: list[Seen] = []
        self._ids = itertools.count(1)
        self._refund_ids = itertools.count(1)
        self._replays: dict[str, tuple[int, Any]] = {}
        self._failures: list[int] = []
        self._hangs = 0
        self._lose = 0
        self._hang = asyncio.Event()
        self.latency = 0.0  # seconds every answer waits
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests pass their clock

    @property
    def url(self) -> str:
        """A ``MOLLIE_API_BASE`` pointing at this fake."""
        return f"http://{LOOPBACK}:{self.port}"

    # -- what the tests drive ---------------------------------------------------------------
    def set_status(self, payment_id: str, status: str) -> None:
        assert status in STATUSES, status
        self.payments[payment_id].status = status

    def refund_externally(self, payment_id: str, minor: int) -> None:
        """A refund made outside duebot (the Mollie dashboard)."""
        p = self.payments[payment_id]
        p.refunded_minor += minor
        p.refunds.append(self._refund(p, minor, "dashboard"))

    def charge_back(self, payment_id: str, minor: int) -> None:
        self.payments[payment_id].charged_back_minor += minor

    def expire(self, payment_id: str) -> None:
        p = self.payments[payment_id]
        p.status = "expired"
        p.expires_at = self.now() - timedelta(seconds=1)

    def fail_next(self, status: int = 503, count: int = 1) -> None:
        """The next ``count`` requests get ``status`` with a Mollie error body."""
        self._failures.extend([status] * count)

    def lose_next_answer(self, count: int = 1) -> None:
        """The next ``count`` creates are carried out, but answered 502 (the answer got lost)."""
        self._lose += count

    def hang_next(self, count: int = 1) -> None:
        """The next ``count`` requests are held until the fake stops (a client timeout)."""
        self._hangs += count

    @property
    def creates(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v2/payments"]

    @property
    def refund_creates(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/refunds")]

    # -- the API ----------------------------------------------------------------------------
    def _refund(self, p: FakePayment, minor: int, description: str) -> dict[str, Any]:
        return {
            "resource": "refund",
            "id": f"re_fake{next(self._refund_ids)}",
            "paymentId": p.id,
            "amount": _amount(minor, p.currency),
            "status": "pending",
            "description": description,
            "createdAt": self.now().isoformat(),
        }

    @staticmethod
    def _error(status: int, title: str, detail: str, field_name: str | None = None) -> web.Response:
        body: dict[str, Any] = {"status": status, "title": title, "detail": detail}
        if field_name:
            body["field"] = field_name
        return web.json_response(body, status=status, content_type="application/hal+json")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.requests.append(Seen(request.method, request.path, dict(request.headers.items()), parsed))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._hangs:
            self._hangs -= 1
            await self._hang.wait()
        if self._failures:
            status = self._failures.pop(0)
            return self._error(status, "Service Unavailable", f"fake Mollie says {status}")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(("Bearer test_", "Bearer live_")):
            return self._error(401, "Unauthorized Request", "Missing authentication")
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key:
            replay_key = f"{request.path}|{key}"
            if replay_key in self._replays:
                status, answer = self._replays[replay_key]
                return web.json_response(
                    answer,
                    status=status,
                    headers={"Idempotent-Replayed": "true"},
                    content_type="application/hal+json",
                )
            response = await handler(request)
            if isinstance(response, web.Response) and response.status < 300 and response.text:
                self._replays[replay_key] = (response.status, json.loads(response.text))
                if self._lose:
                    self._lose -= 1
                    return self._error(502, "Bad Gateway", "the answer got lost on the way")
            return response
        return await handler(request)  # type: ignore[no-any-return]

    async def _create(self, request: web.Request) -> web.Response:
        data = await request.json()
        amount = data.get("amount") or {}
        if not isinstance(amount, dict) or "value" not in amount or "currency" not in amount:
            return self._error(422, "Unprocessable Entity", "The amount is required", "amount")
        description = data.get("description")
        if not description or len(description) > 255:
            return self._error(422, "Unprocessable Entity", "The description is invalid", "description")
        now = self.now()
        p = FakePayment(
            id=f"tr_fake{next(self._ids)}",
            amount_minor=_minor(amount),
            currency=amount["currency"],
            description=description,
            redirect_url=data.get("redirectUrl"),
            webhook_url=data.get("webhookUrl"),
            metadata=data.get("metadata"),
            created_at=now,
            expires_at=now + timedelta(minutes=15),
        )
        self.payments[p.id] = p
        return web.json_response(p.as_json(self.url), status=201, content_type="application/hal+json")

    def _find(self, request: web.Request) -> FakePayment | None:
        return self.payments.get(request.match_info["id"])

    async def _get(self, request: web.Request) -> web.Response:
        p = self._find(request)
        if p is None:
            return self._error(404, "Not Found", "No payment exists with token " + request.match_info["id"])
        return web.json_response(p.as_json(self.url), content_type="application/hal+json")

    async def _create_refund(self, request: web.Request) -> web.Response:
        p = self._find(request)
        if p is None:
            return self._error(404, "Not Found", "No payment exists with token " + request.match_info["id"])
        data = await request.json()
        minor = _minor(data["amount"])
        if p.status != "paid":
            return self._error(422, "Unprocessable Entity", "The payment cannot be refunded")
        if minor > p.amount_minor - p.refunded_minor - p.charged_back_minor:
            return self._error(
                422, "Unprocessable Entity", "The amount is higher than the refundable amount", "amount"
            )
        p.refunded_minor += minor
        refund = self._refund(p, minor, data.get("description") or "")
        p.refunds.append(refund)
        return web.json_response(refund, status=201, content_type="application/hal+json")

    async def _list_refunds(self, request: web.Request) -> web.Response:
        p = self._find(request)
        if p is None:
            return self._error(404, "Not Found", "No payment exists")
        return web.json_response(
            {"count": len(p.refunds), "_embedded": {"refunds": p.refunds}, "_links": {}},
            content_type="application/hal+json",
        )

    async def start(self, port: int = 0) -> FakeMollie:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v2/payments", self._create)
        app.router.add_get("/v2/payments/{id}", self._get)
        app.router.add_post("/v2/payments/{id}/refunds", self._create_refund)
        app.router.add_get("/v2/payments/{id}/refunds", self._list_refunds)
        await self._serve(app, port)
        return self

    async def stop(self) -> None:
        self._hang.set()
        await super().stop()


@asynccontextmanager
async def mollie_server() -> AsyncIterator[FakeMollie]:
    fake = await FakeMollie().start()
    try:
        yield fake
    finally:
        await fake.stop()
