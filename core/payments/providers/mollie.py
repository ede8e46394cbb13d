"""MollieProvider: the PaymentProvider port over mollie-api-python (REFERENCE.md, Mollie).

The client is synchronous (requests), so every call runs in a thread. Creates carry our own stable
idempotency key, so a retried job or request gets the payment (or refund) it made before instead of
a second one. Errors become PaymentNotFound (404), retryable PaymentProviderError (5xx, 429,
timeouts, connection errors, unreadable answers) or non-retryable PaymentProviderError (other 4xx).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import requests
import structlog
from mollie.api.client import Client
from mollie.api.error import (
    Error,
    NotFoundError,
    RequestError,
    RequestSetupError,
    ResponseError,
    ResponseHandlingError,
)
from mollie.api.objects.payment import Payment
from mollie.api.resources.refunds import PaymentRefunds

from core.config import Settings
from core.money import format_minor, parse_minor
from core.ports import PaymentNotFound, PaymentProviderError, ProviderPayment, ProviderRefund

log = structlog.get_logger(__name__)
T = TypeVar("T")
DESCRIPTION_MAX = 255
# get_payments: CPU seconds per wall-clock second of its threads (averaged over calls) above which
# it uses one thread fewer, and below which one more. Low, not 0.5: threads that wait for a CPU
# other processes hold also look idle, and a remote Mollie keeps them far below it (~0.35 ms of
# CPU per fetch against tens of milliseconds on the network).
BUSY_FEWER, BUSY_MORE = 0.5, 0.1
MOLLIE_LOCALES = {"en": "en_US", "nl": "nl_NL", "de": "de_DE", "fr": "fr_FR"}


def _minor(amount: Any, currency: str) -> int:
    if not isinstance(amount, dict) or "value" not in amount:
        return 0
    return parse_minor(str(amount["value"]), currency, allow_zero=True)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def snapshot(payment: dict[str, Any]) -> ProviderPayment:
    """A ProviderPayment from Mollie's JSON."""
    amount = payment.get("amount") or {}
    currency = str(amount.get("currency") or "EUR")
    links = payment.get("_links") or {}
    checkout = (links.get("checkout") or {}).get("href") if isinstance(links, dict) else None
    metadata = payment.get("metadata")
    return ProviderPayment(
        id=str(payment["id"]),
        status=str(payment.get("status") or "open"),
        amount_minor=_minor(amount, currency),
        currency=currency,
        checkout_url=checkout,
        expires_at=_when(payment.get("expiresAt")),
        metadata=metadata if isinstance(metadata, dict) else {},
        refunded_minor=_minor(payment.get("amountRefunded"), currency),
        charged_back_minor=_minor(payment.get("amountChargedBack"), currency),
    )


def _mapped(what: str, exc: Error) -> PaymentProviderError:
    """The port's error for a mollie-api-python error."""
    if isinstance(exc, NotFoundError):
        return PaymentNotFound(f"Mollie does not know this {what}: {exc}")
    if isinstance(exc, ResponseError):
        status = int(exc.status or 0)
        retryable = status >= 500 or status == 429
        return PaymentProviderError(
            f"Mollie refused the {what} ({status}): {exc}", retryable=retryable, status=status
        )
    if isinstance(exc, RequestSetupError):  # our own mistake (bad id, bad key): retrying will not help
        return PaymentProviderError(f"bad Mollie request for the {what}: {exc}", retryable=False)
    if isinstance(exc, RequestError | ResponseHandlingError):  # timeouts, connections, garbled answers
        return PaymentProviderError(f"Mollie unreachable for the {what}: {exc}", retryable=True)
    return PaymentProviderError(f"Mollie error for the {what}: {exc}", retryable=True)  # any other


class _Session(requests.Session):
    """A ``requests.Session`` whose ``request`` prepares and sends directly, for the calls
    mollie-api-python makes (method, url, headers, params, data, timeout; no redirects, cookies,
    auth or hooks in Mollie's API).

    ``Session.request`` merges the session's settings into every request (headers, params, auth,
    hooks, cookies: ``merge_setting`` checks each against a runtime Protocol, the slow kind of
    ``isinstance``), resolves proxies, and after the answer follows redirects and stores cookies:
    about a quarter of the CPU of fetching one payment. Here the session's own headers are merged
    once, the proxies and CA settings are the session's (read once from the environment by
    ``_give_session``) and the adapter (with the library's retries) sends. A call with any other
    argument takes the full path.
    """

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        **other: Any,
    ) -> requests.Response:
        if other:
            return super().request(method, url, params, data, headers, timeout=timeout, **other)
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=method.upper(),
            url=url,
            headers={**self.headers, **(headers or {})},
            data=data,
            params=params,
        )
        adapter = self.get_adapter(url=prepared.url or url)
        response = adapter.send(
            prepared, stream=False, timeout=timeout, verify=self.verify, cert=self.cert, proxies=self.proxies
        )
        response.content  # noqa: B018  (read now, as Session.send does when not streaming)
        return response


def _give_session(client: Client, api_base: str) -> None:
    """The HTTP session the client uses, with the environment's proxy and CA settings read once.

    mollie-api-python makes a ``requests.Session`` on its first call when it has none
    (``Client._client``). Such a session honours the environment (``trust_env``) by reading it again
    on every request: two scans of ``os.environ`` for proxies and a netrc lookup, about a quarter of
    the CPU of fetching one payment. The environment does not change while the process runs, so
    this session takes HTTPS_PROXY/NO_PROXY (for the API's address) and REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE now and keeps them; connection retries are set up as the library does. If a
    future version of the library stops using ``_client``, it makes its own session as before.
    """
    session = _Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(api_base))
    if api_base.startswith("https:"):  # a CA bundle path costs a stat() per request (is it a directory?)
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    client._client = session
    client._setup_retry()


class MollieProvider:
    name = "mollie"

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str,
        webhook_url: str,
        redirect_url: str,
        timeout: float | tuple[float, float] = (2, 10),
    ) -> None:
        self.client = Client(api_endpoint=api_base, timeout=timeout)  # type: ignore[arg-type]
        self.client.set_api_key(api_key)
        _give_session(self.client, api_base)
        self.webhook_url = webhook_url
        self.redirect_url = redirect_url
        self.fetch_threads = 2  # get_payments: threads for the next call (at most as many as asked for)
        self._busy: float | None = None  # get_payments: its threads' CPU share, averaged

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> MollieProvider:
        assert settings.mollie_api_key is not None
        base = settings.public_base_url.rstrip("/")
        return cls(
            settings.mollie_api_key.get_secret_value(),
            api_base=settings.mollie_api_base,
            webhook_url=f"{base}/webhooks/mollie",
            redirect_url=f"{base}/pay/thanks",
            **kwargs,
        )

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except Error as exc:
            raise _mapped(what, exc) from exc

    async def create_payment(
        self,
        *,
        amount_minor: int,
        currency: str,
        description: str,
        metadata: dict[str, Any],
        key: str,
        locale: str | None = None,
    ) -> ProviderPayment:
        data: dict[str, Any] = {
            "amount": {"currency": currency, "value": format_minor(amount_minor, currency)},
            "description": description[:DESCRIPTION_MAX],
            "redirectUrl": self.redirect_url,
            "webhookUrl": self.webhook_url,
            "metadata": metadata,
        }
        if locale and locale.split("_")[0] in MOLLIE_LOCALES:
            data["locale"] = MOLLIE_LOCALES[locale.split("_")[0]]
        payment = await self._call("payment", lambda: self.client.payments.create(data, idempotency_key=key))
        log.info("mollie.payment_created", provider_id=payment["id"], key=key)
        return snapshot(payment)

    async def get_payment(self, provider_id: str) -> ProviderPayment:
        payment = await self._call("payment", lambda: self.client.payments.get(provider_id))
        return snapshot(payment)

    async def get_payments(
        self, provider_ids: Sequence[str], *, concurrency: int = 4
    ) -> list[ProviderPayment | PaymentProviderError]:
        """Fetch many payments: up to ``concurrency`` threads, each fetching its share one after the
        other (one thread hop per share instead of one per payment); per id, in order, the payment
        or the error ``get_payment`` would raise.

        Threads pay off while fetches wait for the network. When they are mostly CPU (the client's
        Python, with a fast network), they only queue for the GIL, and each hand-over costs CPU.
        So it starts with two threads (one fetch's wait overlaps another's work), and the next call
        uses one more (up to ``concurrency``) when the fetching has mostly waited, and one fewer
        (not below two) when it has kept the CPU busy half the time or more (``BUSY_MORE``,
        ``BUSY_FEWER``).
        """
        ids = list(provider_ids)
        if not ids:
            return []
        threads = max(1, min(concurrency, self.fetch_threads, len(ids)))
        shares = [ids[i::threads] for i in range(threads)]

        def fetch(share: list[str]) -> tuple[list[ProviderPayment | PaymentProviderError], float]:
            out: list[ProviderPayment | PaymentProviderError] = []
            cpu = time.thread_time()
            for provider_id in share:
                try:
                    out.append(snapshot(self.client.payments.get(provider_id)))
                except Error as exc:
                    mapped = _mapped("payment", exc)
                    mapped.__cause__ = exc
                    out.append(mapped)
            return out, time.thread_time() - cpu

        started = time.perf_counter()
        fetched = await asyncio.gather(*(asyncio.to_thread(fetch, share) for share in shares))
        busy = sum(cpu for _, cpu in fetched) / max(time.perf_counter() - started, 1e-6)
        if len(ids) >= 4 * threads:  # enough fetches to judge by
            busy = self._busy = busy if self._busy is None else (self._busy + busy) / 2
            step = -1 if busy > BUSY_FEWER else 1 if busy < BUSY_MORE else 0
            self.fetch_threads = max(min(2, concurrency), min(concurrency, threads + step))
        by_id: dict[str, ProviderPayment | PaymentProviderError] = {}
        for share, (got, _) in zip(shares, fetched, strict=True):
            by_id.update(zip(share, got, strict=True))
        return [by_id[provider_id] for provider_id in ids]

    async def create_refund(
        self, provider_id: str, *, amount_minor: int, currency: str, description: str, key: str
    ) -> ProviderRefund:
        data = {
            "amount": {"currency": currency, "value": format_minor(amount_minor, currency)},
            "description": description[:DESCRIPTION_MAX],
        }
        refunds = PaymentRefunds(self.client, Payment({"id": provider_id}, self.client))
        refund = await self._call("refund", lambda: refunds.create(data, idempotency_key=key))
        return ProviderRefund(
            id=str(refund["id"]),
            status=str(refund.get("status") or "pending"),
            amount_minor=_minor(refund.get("amount"), currency),
            currency=currency,
        )
