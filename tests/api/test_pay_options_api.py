"""GET /api/v1/invoices/{external_id}/pay-options."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from stdnum import iso11649

from api.deps import Services
from core.config import Settings
from core.db import Database
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests import factories
from tests.api.helpers import API, assert_problem
from tests.api.test_mollie_webhook import app_client
from tests.core.test_pay_options import decode
from tests.fakes.mollie import FakeMollie

CREDITOR = {
    "creditor_name": "Acme Supplies B.V.",
    "creditor_iban": "NL91ABNA0417164300",
    "creditor_bic": "ABNANL2A",
}


@pytest.fixture
def creditor_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=CREDITOR)


@pytest.fixture
async def with_mollie(
    creditor_settings: Settings, db: Database, redis: Redis, clock: FixedClock, provider: MollieProvider
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(Services(creditor_settings, db, redis, clock, payments=provider)) as c:
        yield c


@pytest.fixture
async def without_mollie(
    creditor_settings: Settings, db: Database, redis: Redis, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(Services(creditor_settings, db, redis, clock)) as c:
        yield c


def png(b64: str) -> bytes:
    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG")
    return data


async def test_pay_options_give_the_amount_a_checkout_the_rf_reference_and_both_qr_codes(
    with_mollie: httpx.AsyncClient, db: Database, auth: dict[str, str], mollie: FakeMollie
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=12_050)
    r = await with_mollie.get(f"{API}/invoices/{inv}/pay-options", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["amount"] == {"amount": "120.50", "currency": "EUR"}
    assert iso11649.is_valid(body["reference"])
    assert body["reference_printable"].replace(" ", "") == body["reference"]
    checkout = body["checkout"]
    assert checkout["url"].startswith("https://www.mollie.com/checkout/")
    assert decode(png(checkout["qr_png_base64"])) == checkout["url"]
    assert body["epc"]["payload"].split("\n")[5:] == [
        "Acme Supplies B.V.",
        "NL91ABNA0417164300",
        "EUR120.50",
        "",
        body["reference"],
    ]
    assert decode(png(body["epc"]["qr_png_base64"])) == body["epc"]["payload"]
    assert body["checkout_unavailable"] is None and body["epc_unavailable"] is None

    again = (await with_mollie.get(f"{API}/invoices/{inv}/pay-options", headers=auth)).json()
    assert again["checkout"]["provider_id"] == checkout["provider_id"] and len(mollie.creates) == 1
    assert again["reference"] == body["reference"]


async def test_a_non_euro_invoice_gets_no_epc_code_and_says_why(
    with_mollie: httpx.AsyncClient, db: Database, auth: dict[str, str]
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000, currency="USD")
    body = (await with_mollie.get(f"{API}/invoices/{inv}/pay-options", headers=auth)).json()
    assert body["amount"] == {"amount": "50.00", "currency": "USD"}
    assert body["epc"] is None and "euro" in body["epc_unavailable"]
    assert body["checkout"]["url"] and iso11649.is_valid(body["reference"])


async def test_without_mollie_the_epc_code_and_reference_still_come(
    without_mollie: httpx.AsyncClient, db: Database, auth: dict[str, str]
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000)
    body = (await without_mollie.get(f"{API}/invoices/{inv}/pay-options", headers=auth)).json()
    assert body["checkout"] is None and "MOLLIE_API_KEY" in body["checkout_unavailable"]
    assert body["epc"]["payload"].endswith(body["reference"])


async def test_mollie_down_still_gives_the_epc_code(
    with_mollie: httpx.AsyncClient, db: Database, auth: dict[str, str], mollie: FakeMollie
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000)
    mollie.fail_next(503)
    body = (await with_mollie.get(f"{API}/invoices/{inv}/pay-options", headers=auth)).json()
    assert body["checkout"] is None and "503" in body["checkout_unavailable"]
    assert body["epc"] is not None


async def test_unknown_and_paid_invoices_are_refused(
    with_mollie: httpx.AsyncClient, db: Database, auth: dict[str, str]
) -> None:
    assert_problem(await with_mollie.get(f"{API}/invoices/nope/pay-options", headers=auth), 404)
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000)
    r = await with_mollie.post(
        f"{API}/payments",
        json={"debtor_external_id": d, "invoice_external_id": inv, "currency": "EUR", "amount": "50.00"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assert_problem(await with_mollie.get(f"{API}/invoices/{inv}/pay-options", headers=auth), 409)


async def test_a_debtor_can_pay_all_open_invoices_together(
    with_mollie: httpx.AsyncClient, db: Database, auth: dict[str, str], mollie: FakeMollie
) -> None:
    d = await factories.debtor(db)
    first = await factories.invoice(db, d, amount_minor=10_000)
    await factories.invoice(db, d, amount_minor=2_550)
    await factories.invoice(db, d, amount_minor=999, currency="USD")
    body = (await with_mollie.get(f"{API}/debtors/{d}/pay-options", headers=auth)).json()
    assert body["amount"] == {"amount": "125.50", "currency": "EUR"} and len(body["invoices"]) == 2
    one = (await with_mollie.get(f"{API}/invoices/{first}/pay-options", headers=auth)).json()
    assert iso11649.is_valid(body["reference"]) and body["reference"] != one["reference"]
    assert mollie.creates[0].json["metadata"]["invoice_count"] == 2
    usd = (await with_mollie.get(f"{API}/debtors/{d}/pay-options?currency=USD", headers=auth)).json()
    assert usd["amount"] == {"amount": "9.99", "currency": "USD"} and usd["epc"] is None
    assert_problem(await with_mollie.get(f"{API}/debtors/{d}/pay-options?currency=GBP", headers=auth), 409)
    assert_problem(await with_mollie.get(f"{API}/debtors/{d}/pay-options?currency=XYZ", headers=auth), 422)
    assert_problem(await with_mollie.get(f"{API}/debtors/nobody/pay-options", headers=auth), 404)
