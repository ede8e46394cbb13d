"""Every debtor message carries the pay options: reminders and personal payment requests, sent by
the real EmailSender and SmsSender to the local fakes, with the checkout made at the fake Mollie."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pytest
from stdnum import iso11649

from bots.email.sender import EmailSender, parse_smtp_url
from bots.sms.sender import SmsSender
from core.config import Settings
from core.db import Database
from core.debtors import repository as debtor_repo
from core.dunning.sweep import sweep
from core.invoices import repository as invoice_repo
from core.messaging.delivery import DeliveryStats, deliver
from core.messaging.models import Message
from core.messaging.repository import DueInvoice, Job
from core.money import Money
from core.payments import requests as payment_requests
from core.payments.providers.mollie import MollieProvider
from core.payments.reminders import ReminderPayOptions
from core.ports import FixedClock
from tests import factories
from tests.conftest import NOW
from tests.core.test_delivery import DUE, Channels
from tests.core.test_pay_options import decode
from tests.fakes.mollie import FakeMollie
from tests.fakes.sms import sms_gateway
from tests.fakes.smtp import smtp_server

CREDITOR = {
    "creditor_name": "Acme Supplies B.V.",
    "creditor_iban": "NL91ABNA0417164300",
    "creditor_bic": "ABNANL2A",
}


@pytest.fixture
def pay_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=CREDITOR)


async def run(
    db: Database, channels: Channels, clock: FixedClock, settings: Settings, provider: MollieProvider | None
) -> DeliveryStats:
    return await deliver(
        db,
        channels.senders,
        clock=clock,
        limiter=None,
        creditor_name="Acme Supplies B.V.",
        rng=random.Random(7),
        pay_options=ReminderPayOptions(db, settings, provider, clock),
    )


async def remind(db: Database, invoices: int = 1, **debtor_fields: Any) -> str:
    d = await factories.debtor(db, **debtor_fields)
    rows = [factories.invoice_row(d, due_date=DUE, amount_minor=10_000 + i) for i in range(invoices)]
    await factories.batch(db, rows)
    async with db.session_scope() as s:
        await sweep(s, now=NOW)
    return d


def images(mail: EmailMessage) -> dict[str, bytes]:
    out = {}
    for part in mail.iter_attachments():
        if part.get_content_type() == "image/png":
            out[str(part.get_filename())] = part.get_content()
    return out


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture
async def mail_channels(clock: FixedClock) -> AsyncIterator[Channels]:
    async with smtp_server() as smtp, sms_gateway() as gateway:
        email = EmailSender(parse_smtp_url(smtp.url()), sender="Acme Supplies B.V. <billing@acme.test>")
        async with SmsSender(gateway.url, clock=clock) as sms:
            yield Channels(smtp, gateway, {"email": email, "sms": sms})


async def test_an_emailed_reminder_has_the_link_the_rf_reference_and_both_qr_codes(
    db: Database,
    mail_channels: Channels,
    clock: FixedClock,
    pay_settings: Settings,
    provider: MollieProvider,
    mollie: FakeMollie,
) -> None:
    await remind(db)
    stats = await run(db, mail_channels, clock, pay_settings, provider)
    assert stats.sent == 1
    mail = mail_channels.smtp.received[0].message
    text = text_of(mail)
    [payment] = mollie.payments.values()
    checkout = f"https://www.mollie.com/checkout/select-method/{payment.id}"
    assert checkout in text
    rf = next(w for w in text.replace(".", " ").split() if w.startswith("RF"))
    assert "Paying by bank transfer? Please use the payment reference RF" in text
    found = images(mail)
    assert decode(found["pay-online-qr.png"]) == checkout
    epc = decode(found["sepa-transfer-qr.png"]).split("\n")
    assert epc[7] == "EUR100.00" and iso11649.is_valid(epc[9]) and epc[9].startswith(rf)
    html = mail.get_body(("html",))
    assert html is not None and "payment reference RF" in str(html.get_content())


async def test_several_invoices_get_one_grouped_checkout_and_the_debtors_reference(
    db: Database,
    mail_channels: Channels,
    clock: FixedClock,
    pay_settings: Settings,
    provider: MollieProvider,
    mollie: FakeMollie,
) -> None:
    await remind(db, invoices=2)
    await run(db, mail_channels, clock, pay_settings, provider)
    [created] = mollie.creates
    assert created.json["amount"]["value"] == "200.01" and len(created.json["metadata"]["invoices"]) == 2
    epc = decode(images(mail_channels.smtp.received[0].message)["sepa-transfer-qr.png"]).split("\n")
    assert epc[7] == "EUR200.01"


async def test_without_mollie_the_reference_and_the_epc_qr_still_go_out(
    db: Database, mail_channels: Channels, clock: FixedClock, pay_settings: Settings
) -> None:
    await remind(db)
    await run(db, mail_channels, clock, pay_settings, None)
    mail = mail_channels.smtp.received[0].message
    text = text_of(mail)
    assert "https://" not in text and "payment reference RF" in text
    assert list(images(mail)) == ["sepa-transfer-qr.png"]


async def test_mollie_down_does_not_hold_the_reminder_back(
    db: Database,
    mail_channels: Channels,
    clock: FixedClock,
    pay_settings: Settings,
    provider: MollieProvider,
    mollie: FakeMollie,
) -> None:
    await remind(db)
    mollie.fail_next(503)
    assert (await run(db, mail_channels, clock, pay_settings, provider)).sent == 1
    assert list(images(mail_channels.smtp.received[0].message)) == ["sepa-transfer-qr.png"]


async def test_an_sms_reminder_carries_the_link_and_no_attachments(
    db: Database,
    mail_channels: Channels,
    clock: FixedClock,
    pay_settings: Settings,
    provider: MollieProvider,
    mollie: FakeMollie,
) -> None:
    await remind(db, phone="+31612345678", channel_order=["sms"])
    await run(db, mail_channels, clock, pay_settings, provider)
    [sms] = mail_channels.sms.accepted
    [payment] = mollie.payments.values()
    assert payment.id in sms.json["text"] and "attachments" not in sms.json


async def test_a_payment_request_reaches_the_debtor_with_its_reason_link_and_qr_codes(
    db: Database,
    mail_channels: Channels,
    clock: FixedClock,
    pay_settings: Settings,
    provider: MollieProvider,
    mollie: FakeMollie,
) -> None:
    d = await factories.debtor(db, locale="nl")
    async with db.session_scope() as s:
        debtor = await debtor_repo.get_by_external_id(s, d)
        assert debtor is not None
        made = await payment_requests.request_payment(
            s,
            debtor.id,
            Money(4_250, "EUR"),
            "Extra pallets, order 7781",
            factories.TEST_ACTOR,
            settings=pay_settings,
            provider=provider,
            now=clock.now(),
        )
    assert made.options.checkout_url and made.message.status == "queued"
    assert (await run(db, mail_channels, clock, pay_settings, provider)).sent == 1
    assert len(mollie.creates) == 1  # the request's checkout is reused at delivery
    mail = mail_channels.smtp.received[0].message
    text = text_of(mail)
    assert "Extra pallets, order 7781" in text and made.options.checkout_url in text
    assert "€\xa042,50" in text and "betalingskenmerk RF" in text
    assert decode(images(mail)["sepa-transfer-qr.png"]).split("\n")[7] == "EUR42.50"
    async with db.sessionmaker() as s:
        sent = await s.get(Message, made.message.id)
        assert sent is not None and sent.status == "sent" and sent.kind == "payment_request"

    # paid through its link: the money is booked on the debtor's account
    mollie.set_status(made.options.psp_payment_id or "", "paid")
    from tests.core.test_psp_payments import balance, webhook

    assert await webhook(db, provider, made.options.psp_payment_id or "", clock) == "status:paid,posted"
    eur, _ = await balance(db, d)
    assert eur.credit == 4_250


async def test_an_instalment_reminder_links_a_checkout_for_the_instalment_only(
    db: Database, clock: FixedClock, pay_settings: Settings, provider: MollieProvider, mollie: FakeMollie
) -> None:
    """Payment plans remind of one instalment: its amount is what the link and the SEPA code ask."""
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)
    async with db.sessionmaker() as s:
        debtor = await debtor_repo.get_by_external_id(s, d)
        invoice = await invoice_repo.get_by_external_id(s, inv)
    assert debtor is not None and invoice is not None
    message = Message(
        debtor_id=debtor.id,
        kind="instalment_reminder",
        template="instalment_reminder",
        tone="neutral",
        channels=["email"],
        payload={"plan_id": "plan-1"},
    )
    due = DueInvoice(
        id=invoice.id,
        number=invoice.number,
        due_date=invoice.due_date,
        currency="EUR",
        open_minor=10_000,
        stage_key="payment_plan",
        policy_id=uuid.uuid4(),
        fee_minor=None,
        fee_currency=None,
        charge_interest=False,
    )
    job = Job(message, debtor, [], [due], [])
    job.extra = {"total": Money(2_500, "EUR"), "instalment": {"number": 2, "count": 4}}  # type: ignore[attr-defined]
    hook = ReminderPayOptions(db, pay_settings, provider, clock)
    context, found = await hook(job)
    [created] = mollie.creates
    assert created.json["amount"] == {"currency": "EUR", "value": "25.00"}
    assert created.json["metadata"]["instalment"] == "2"
    assert context["pay_url"].startswith("https://www.mollie.com/checkout/")
    assert decode(dict((n, b) for n, b, _ in found)["sepa-transfer-qr.png"]).split("\n")[7] == "EUR25.00"
    again, _ = await hook(job)
    assert again["pay_url"] == context["pay_url"] and len(mollie.creates) == 1
