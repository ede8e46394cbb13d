"""The SMS channel against a local aiohttp gateway, with the real httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bots.sms import SmsSender, parse_retry_after
from core.config import Settings
from core.ports import DeliveryError, FixedClock, MessageSender, OutboundMessage
from tests.fakes import free_port, silent_server
from tests.fakes.sms import FakeSmsGateway, sms_gateway

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
async def gateway() -> AsyncIterator[FakeSmsGateway]:
    async with sms_gateway() as fake:
        yield fake


def make_settings(url: str | None, token: str | None = None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        sms_api_url=url,
        sms_api_token=token,
    )


@pytest.fixture
async def sender(gateway: FakeSmsGateway) -> AsyncIterator[SmsSender]:
    built = SmsSender.from_settings(make_settings(gateway.url, "gw-token-123"), clock=FixedClock(NOW))
    assert built is not None
    yield built
    await built.aclose()


def sms(
    text: str = "Invoice 2026-0042: € 120,50 due 1 Dec. Pay: https://pay.test/x", **meta: object
) -> OutboundMessage:
    return OutboundMessage(channel="sms", address="+31612345678", subject=None, body=text, meta=dict(meta))


# -- settings ------------------------------------------------------------------------------


def test_from_settings_is_none_without_url() -> None:
    assert SmsSender.from_settings(make_settings(None, "token")) is None
    assert SmsSender.from_settings(make_settings("  ")) is None


async def test_from_settings_builds_a_sender() -> None:
    built = SmsSender.from_settings(make_settings("https://sms.example.com/send", "t"))
    assert built is not None
    channel: MessageSender = built
    assert channel.channel == "sms"
    assert built.url == "https://sms.example.com/send" and built.token == "t"
    await built.aclose()


def test_refuses_a_non_http_url() -> None:
    with pytest.raises(ValueError, match="SMS_API_URL"):
        SmsSender.from_settings(make_settings("ftp://sms.example.com"))


# -- delivery ------------------------------------------------------------------------------


async def test_json_body_and_bearer_token_arrive(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    result = await sender.send(sms(reference="msg-42"))

    [request] = gateway.requests
    assert request.method == "POST"
    assert request.headers["Authorization"] == "Bearer gw-token-123"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json == {
        "to": "+31612345678",
        "text": "Invoice 2026-0042: € 120,50 due 1 Dec. Pay: https://pay.test/x",
        "reference": "msg-42",
    }
    assert result.provider_id == "sms-1"
    assert result.status == "sent"


async def test_without_token_or_reference() -> None:
    async with sms_gateway(id_field="message_id") as fake:
        built = SmsSender.from_settings(make_settings(fake.url))
        assert built is not None
        result = await built.send(sms("hello"))
        await built.aclose()
    [request] = fake.requests
    assert "Authorization" not in request.headers
    assert request.json == {"to": "+31612345678", "text": "hello", "reference": None}
    assert result.provider_id == "sms-1"


async def test_no_id_in_the_answer() -> None:
    async with sms_gateway(id_field=None) as fake:
        built = SmsSender.from_settings(make_settings(fake.url))
        assert built is not None
        result = await built.send(sms())
        await built.aclose()
    assert result.provider_id is None and result.status == "sent"


async def test_one_keep_alive_connection_is_reused(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    for n in range(3):
        await sender.send(sms(reference=f"m{n}"))
    peers = {request.peer for request in gateway.requests}
    assert len(gateway.requests) == 3 and len(peers) == 1


async def test_a_handed_in_client_stays_open(gateway: FakeSmsGateway) -> None:
    async with httpx.AsyncClient() as client:
        built = SmsSender.from_settings(make_settings(gateway.url), client)
        assert built is not None
        await built.aclose()
        assert not client.is_closed
        await built.send(sms())
    assert len(gateway.accepted) == 1


# -- failures ------------------------------------------------------------------------------


async def test_429_with_retry_after_seconds(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    gateway.fail_next(429, retry_after="7", error="slow down")
    with pytest.raises(DeliveryError) as caught:
        await sender.send(sms())
    error = caught.value
    assert not error.permanent
    assert error.retry_after == 7.0
    assert error.code == "429"
    assert "slow down" in error.reason

    result = await sender.send(sms())  # the gateway lets the next one through
    assert result.provider_id == "sms-2"


async def test_429_with_retry_after_http_date(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    gateway.fail_next(429, retry_after=format_datetime(NOW + timedelta(seconds=90), usegmt=True))
    with pytest.raises(DeliveryError) as caught:
        await sender.send(sms())
    assert not caught.value.permanent
    assert caught.value.retry_after == 90.0


async def test_429_without_retry_after(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    gateway.fail_next(429)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(sms())
    assert not caught.value.permanent and caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_temporary(gateway: FakeSmsGateway, sender: SmsSender, status: int) -> None:
    gateway.fail_next(status)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(sms())
    assert not caught.value.permanent
    assert caught.value.code == str(status)


async def test_400_is_permanent_with_the_gateway_text(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    gateway.fail_next(400, error="invalid destination number +31612345678")
    with pytest.raises(DeliveryError) as caught:
        await sender.send(sms())
    error = caught.value
    assert error.permanent
    assert error.code == "400"
    assert "invalid destination number +31612345678" in error.reason


async def test_4xx_with_a_plain_text_body(gateway: FakeSmsGateway, sender: SmsSender) -> None:
    gateway.fail_next(403, raw_body="number is on the blocklist")
    with pytest.raises(DeliveryError) as caught:
        await sender.send(sms())
    assert caught.value.permanent
    assert caught.value.reason == "SMS gateway answered 403: number is on the blocklist"


async def test_unreachable_gateway_is_temporary() -> None:
    built = SmsSender.from_settings(make_settings(f"http://127.0.0.1:{free_port()}/send"))
    assert built is not None
    try:
        with pytest.raises(DeliveryError) as caught:
            await built.send(sms())
    finally:
        await built.aclose()
    assert not caught.value.permanent
    assert caught.value.code == "network"


async def test_silent_gateway_times_out_as_temporary() -> None:
    async with silent_server() as port, httpx.AsyncClient(timeout=0.2) as client:
        built = SmsSender.from_settings(make_settings(f"http://127.0.0.1:{port}/send"), client)
        assert built is not None
        with pytest.raises(DeliveryError) as caught:
            await built.send(sms())
    assert not caught.value.permanent
    assert caught.value.code == "timeout"


# -- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Tue, 24 Nov 2026 10:00:30 GMT", 30.0),
        ("Tue, 24 Nov 2026 09:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, FixedClock(NOW)) == expected
