"""SMS through a generic JSON HTTP gateway (CONTRACT section 2: ``SMS_API_URL``, ``SMS_API_TOKEN``).

The gateway contract, so that any provider can be fronted by a small adapter:

Request: ``POST <SMS_API_URL>`` with ``Content-Type: application/json`` and, when ``SMS_API_TOKEN``
is set, ``Authorization: Bearer <SMS_API_TOKEN>``::

    {"to": "+31612345678", "text": "Your invoice ...", "reference": "msg-123" | null}

``to`` is the number as stored on the contact point (E.164), ``text`` the rendered body and
``reference`` duebot's own id for the message (``meta["reference"]``), echoed in delivery receipts.

Responses:

- ``2xx``: accepted. An optional JSON body ``{"id": "..."}`` (or ``{"message_id": "..."}``) is the
  gateway's id for the message, kept as the provider id.
- ``429``: rate limited; ``Retry-After`` (seconds or an HTTP-date) says when to try again.
- ``408`` and ``5xx``: a temporary failure; duebot retries with backoff.
- any other ``4xx``: the message can never be delivered as is (invalid number, blocked, bad token);
  the body's ``error`` / ``message`` / ``detail`` text (or the raw body) is kept as the reason and
  delivery falls back to the next channel.

Network errors and timeouts are temporary too.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC
from typing import Any

import httpx

from core.config import Settings
from core.ports import Clock, DeliveryError, OutboundMessage, SendResult, SystemClock

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_REASON = 500


def parse_retry_after(value: str | None, clock: Clock | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = (clock or SystemClock()).now()
    return max(0.0, (when - now).total_seconds())


class SmsSender:
    """A MessageSender for the ``sms`` channel; one keep-alive httpx client for all sends."""

    channel = "sms"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"SMS_API_URL must be an http(s) URL, not {url!r}")
        self.url = url
        self.token = token
        self.clock: Clock = clock or SystemClock()
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)

    @classmethod
    def from_settings(
        cls, settings: Settings, client: httpx.AsyncClient | None = None, *, clock: Clock | None = None
    ) -> SmsSender | None:
        """The SMS channel, or None when ``SMS_API_URL`` is unset."""
        url = (settings.sms_api_url or "").strip()
        if not url:
            return None
        token = settings.sms_api_token.get_secret_value() if settings.sms_api_token else None
        return cls(url, token=token or None, client=client, clock=clock)

    async def aclose(self) -> None:
        """Close the HTTP client, unless it was handed in (then its owner closes it)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> SmsSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        return {"to": message.address, "text": message.body, "reference": message.meta.get("reference")}

    async def send(self, message: OutboundMessage) -> SendResult:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self._client.post(self.url, json=self.payload(message), headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"SMS gateway timeout: {exc!r}", permanent=False, code="timeout") from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"SMS gateway unreachable: {exc!r}", permanent=False, code="network") from exc
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(provider_id=_provider_id(response), status="sent")
        reason = f"SMS gateway answered {status}: {_error_text(response)}"
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock)
            raise DeliveryError(reason, permanent=False, retry_after=retry_after, code="429")
        if status >= 500 or status == 408:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock)
            raise DeliveryError(reason, permanent=False, retry_after=retry_after, code=str(status))
        if 400 <= status < 500:
            raise DeliveryError(reason, permanent=True, code=str(status))
        # 1xx/3xx: redirects are not followed, so the gateway is misconfigured; retry, do not drop.
        raise DeliveryError(reason, permanent=False, code=str(status))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _provider_id(response: httpx.Response) -> str | None:
    data = _json(response)
    if not isinstance(data, dict):
        return None
    for key in ("id", "message_id"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _error_text(response: httpx.Response) -> str:
    data = _json(response)
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "error_description"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:MAX_REASON]
            if isinstance(value, dict):  # {"error": {"message": "..."}}
                inner = value.get("message")
                if isinstance(inner, str) and inner.strip():
                    return inner.strip()[:MAX_REASON]
    text = response.text.strip()
    return text[:MAX_REASON] if text else response.reason_phrase
