"""The Mollie client's HTTP session takes the environment's proxy settings when the provider is made
(core/payments/providers/mollie.py): a deployment behind a proxy reaches Mollie through it, and
NO_PROXY exempts the API's host. The environment is read once, not on every request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from core.config import Settings
from core.payments.providers.mollie import MollieProvider
from core.ports import PaymentProviderError
from tests.fakes import LOOPBACK, free_port
from tests.fakes.mollie import FakeMollie, FakePayment

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


def _provider(mollie: FakeMollie, settings: Settings) -> MollieProvider:
    configured = settings.model_copy(
        update={"mollie_api_key": SecretStr("test_duebot"), "mollie_api_base": mollie.url}
    )
    return MollieProvider.from_settings(configured, timeout=(1, 1))


def _paid(mollie: FakeMollie) -> str:
    now = datetime.now(UTC)
    mollie.payments["tr_proxy1"] = FakePayment(
        "tr_proxy1", 1_250, "EUR", "proxy test", None, None, {}, now, now, status="paid"
    )
    return "tr_proxy1"


async def test_a_proxy_in_the_environment_is_used_and_no_proxy_exempts_the_api(
    mollie: FakeMollie, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = _paid(mollie)
    dead_proxy = f"http://{LOOPBACK}:{free_port()}"  # a proxy that is not there
    for name in PROXY_VARS:
        monkeypatch.setenv(name, dead_proxy)
    for name in NO_PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    through_proxy = _provider(mollie, settings)
    for name in NO_PROXY_VARS:
        monkeypatch.setenv(name, "127.0.0.1")
    exempt = _provider(mollie, settings)

    # The environment changes after the providers were made: neither notices.
    for name in PROXY_VARS + NO_PROXY_VARS:
        monkeypatch.delenv(name)
    with pytest.raises(PaymentProviderError) as refused:
        await through_proxy.get_payment(payment)  # the proxy is not there
    assert refused.value.retryable
    assert mollie.requests == []  # it never reached Mollie
    fetched = await exempt.get_payment(payment)
    assert (fetched.id, fetched.status, fetched.amount_minor) == (payment, "paid", 1_250)
