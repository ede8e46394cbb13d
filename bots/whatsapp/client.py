"""The WhatsApp Cloud API over httpx: send a message, upload media (``WHATSAPP_API_BASE``).

``POST {base}/{phone-number-id}/messages`` with a JSON body and ``Authorization: Bearer <token>``
answers ``{"messages": [{"id": "wamid…"}]}``. ``POST {base}/{phone-number-id}/media`` (multipart:
``file``, ``type``, ``messaging_product``) answers ``{"id": "<media id>"}``.

Errors are ``{"error": {"message", "type", "code", "error_data": {"details"}, "fbtrace_id"}}`` and
raise :class:`WhatsAppError` with the HTTP status and the Graph error code:

- 130429 (throughput exceeded) and 131056 (too many messages to one user), HTTP 429 and 5xx,
  network errors: temporary (``retryable``), with ``Retry-After`` when the answer had one;
- 131047 (more than 24 hours since the user's last message): ``window_closed``; only a template
  may be sent;
- any other 4xx: permanent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from bots.whatsapp.render import Media, media_payload, render
from core.config import Settings
from core.conversation.schemas import Attachment, Reply

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
THROUGHPUT = 130429
PAIR_RATE = 131056
WINDOW_CLOSED = 131047
RETRYABLE_CODES = frozenset({THROUGHPUT, PAIR_RATE, 1, 2, 4, 80007, 131000, 131016})
MAX_REASON = 500


class WhatsAppError(Exception):
    def __init__(
        self, status: int, code: int | None, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"WhatsApp {status}{f' ({code})' if code else ''}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    @property
    def window_closed(self) -> bool:
        return self.code == WINDOW_CLOSED

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500 or self.code in RETRYABLE_CODES


@dataclass(frozen=True)
class WhatsAppConfig:
    api_base: str
    phone_number_id: str
    token: str

    @classmethod
    def from_settings(cls, settings: Settings) -> WhatsAppConfig | None:
        token = settings.whatsapp_token.get_secret_value().strip() if settings.whatsapp_token else ""
        number = (settings.whatsapp_phone_number_id or "").strip()
        if not token or not number:
            return None
        return cls(settings.whatsapp_api_base.rstrip("/"), number, token)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def _error(response: httpx.Response) -> WhatsAppError:
    try:
        data = response.json()
    except ValueError:
        data = None
    code: int | None = None
    message = response.text.strip()[:MAX_REASON] or response.reason_phrase
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        raw_code = err.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        details = (
            (err.get("error_data") or {}).get("details") if isinstance(err.get("error_data"), dict) else None
        )
        message = str(details or err.get("message") or message)[:MAX_REASON]
    return WhatsAppError(response.status_code, code, message, retry_after=_retry_after(response))


class WhatsAppClient:
    """One keep-alive httpx client for the Cloud API of one phone number."""

    def __init__(self, config: WhatsAppConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _url(self, path: str) -> str:
        return f"{self.config.api_base}/{self.config.phone_number_id}/{path}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token}"}

    async def _post(self, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self._client.post(self._url(path), headers=self._headers(), **kw)
        except httpx.TransportError as exc:
            raise WhatsAppError(0, None, f"unreachable: {exc!r}") from exc
        if not 200 <= response.status_code < 300:
            raise _error(response)
        try:
            data = response.json()
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {}

    async def send(self, payload: dict[str, Any]) -> str | None:
        """Send one message; answers its wamid."""
        data = await self._post("messages", json=payload)
        messages = data.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            wamid = messages[0].get("id")
            return str(wamid) if wamid else None
        return None

    async def upload(self, attachment: Attachment) -> str:
        """Upload a file for sending; answers the media id."""
        files = {"file": (attachment.filename, attachment.content, attachment.mime_type)}
        form = {"messaging_product": "whatsapp", "type": attachment.mime_type}
        data = await self._post("media", data=form, files=files)
        media_id = data.get("id")
        if not media_id:
            raise WhatsAppError(502, None, "the media upload answered no id")
        return str(media_id)

    async def send_media(self, item: Media) -> str | None:
        return await self.send(media_payload(item.to, item.attachment, await self.upload(item.attachment)))

    async def send_reply(self, to: str, reply: Reply) -> list[str]:
        """Every message of ``reply``, in order; answers their wamids."""
        ids: list[str] = []
        for call in render(to, reply):
            wamid = await (self.send_media(call) if isinstance(call, Media) else self.send(call))
            if wamid:
                ids.append(wamid)
        return ids
