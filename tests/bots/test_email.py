"""The email channel against a local aiosmtpd server, with the real aiosmtplib client."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from bots.email import EmailSender, SmtpConfig, parse_smtp_url
from core.config import Settings
from core.ports import DeliveryError, MessageSender, OutboundMessage
from tests.fakes import free_port, silent_server
from tests.fakes.smtp import FakeSmtpServer, smtp_server

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
FROM = "Acme Receivables <ar@acme.test>"


def make_settings(smtp_url: str | None, smtp_from: str = FROM) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        smtp_url=smtp_url,
        smtp_from=smtp_from,
    )


def sender_for(server: FakeSmtpServer, *, timeout: float = 5.0) -> EmailSender:
    sender = EmailSender.from_settings(make_settings(server.url()), timeout=timeout)
    assert sender is not None
    return sender


def invoice_mail(address: str = "debtor@example.com", **meta: object) -> OutboundMessage:
    return OutboundMessage(
        channel="email",
        address=address,
        subject="Invoice 2026-0042 — € 120,50 due 1 December",
        body="Dear Jan,\n\nPlease find invoice 2026-0042 attached.\n",
        attachments=[("invoice-2026-0042.pdf", PDF, "application/pdf")],
        meta=dict(meta),
    )


# -- SMTP_URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpConfig("mail.example.com", 25)),
        ("smtp://relay:2525", SmtpConfig("relay", 2525)),
        (
            "smtp://ar:secret@mail.example.com:587?starttls=1",
            SmtpConfig("mail.example.com", 587, "ar", "secret", start_tls=True),
        ),
        ("smtp://mail.example.com?starttls=true", SmtpConfig("mail.example.com", 587, start_tls=True)),
        ("smtp://mail.example.com?starttls=0", SmtpConfig("mail.example.com", 25)),
        ("smtps://mail.example.com", SmtpConfig("mail.example.com", 465, use_tls=True)),
        (
            "smtps://ar%40acme.test:p%40ss%3Aw%2Frd%25@smtp.acme.test:2465",
            SmtpConfig("smtp.acme.test", 2465, "ar@acme.test", "p@ss:w/rd%", use_tls=True),
        ),
        ("SMTP://user@Mail.Example.com", SmtpConfig("mail.example.com", 25, "user", None)),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpConfig) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.com", "mail.example.com:25", "smtp://", "smtps://h?starttls=1", "smtp://h:99999"],
)
def test_parse_smtp_url_refuses_nonsense(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url(url)


def test_config_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(parse_smtp_url("smtp://ar:hunter2@h"))


def test_from_settings_is_none_without_smtp_url() -> None:
    assert EmailSender.from_settings(make_settings(None)) is None


def test_from_settings_uses_smtp_from() -> None:
    sender = EmailSender.from_settings(make_settings("smtps://ar:x@smtp.acme.test"))
    assert sender is not None
    assert sender.channel == "email"
    assert sender.sender == FROM
    assert sender.sender_address == "ar@acme.test"
    assert sender.config.use_tls and sender.config.port == 465
    channel: MessageSender = sender  # satisfies the protocol
    assert channel.channel == "email"


def test_default_sender_address() -> None:
    settings = Settings(_env_file=None, smtp_url="smtp://localhost")  # type: ignore[call-arg]
    sender = EmailSender.from_settings(settings)
    assert sender is not None and sender.sender_address == "noreply@localhost"


# -- delivery ------------------------------------------------------------------------------


async def test_email_arrives_with_text_html_and_pdf(smtp: FakeSmtpServer) -> None:
    html = "<p>Dear Jan,</p><p>Please find invoice <b>2026-0042</b> attached.</p>"
    result = await sender_for(smtp).send(invoice_mail(html=html))

    [mail] = smtp.received
    assert mail.mail_from == "ar@acme.test"
    assert mail.rcpt_tos == ["debtor@example.com"]
    msg = mail.message
    assert msg["Subject"] == "Invoice 2026-0042 — € 120,50 due 1 December"
    assert msg["From"] == FROM
    assert msg["To"] == "debtor@example.com"
    assert msg.get_content_type() == "multipart/mixed"

    text = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(text, EmailMessage) and isinstance(html_part, EmailMessage)
    assert text.get_content() == "Dear Jan,\n\nPlease find invoice 2026-0042 attached.\n"
    assert html_part.get_content().strip() == html

    [attachment] = list(msg.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "invoice-2026-0042.pdf"
    assert attachment.get_content() == PDF

    assert result.status == "sent"
    assert result.provider_id is not None
    assert result.provider_id == msg["Message-ID"]
    assert result.provider_id.endswith("@acme.test>")


async def test_text_only_email_is_a_single_part(smtp: FakeSmtpServer) -> None:
    message = OutboundMessage(channel="email", address="a@example.com", subject="Hi", body="Just text.")
    await sender_for(smtp).send(message)

    [mail] = smtp.received
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().strip() == "Just text."
    assert list(mail.message.iter_attachments()) == []


async def test_credentials_are_url_decoded_on_the_wire() -> None:
    async with smtp_server(credentials=("ar@acme.test", "p@ss:w/rd%")) as server:
        url = server.url("ar@acme.test", "p@ss:w/rd%")
        assert "p%40ss%3Aw%2Frd%25" in url
        sender = EmailSender.from_settings(make_settings(url))
        assert sender is not None
        await sender.send(invoice_mail())
        assert server.logins == [("ar@acme.test", "p@ss:w/rd%")]
        assert len(server.received) == 1


async def test_wrong_credentials_are_permanent() -> None:
    async with smtp_server(credentials=("ar", "right")) as server:
        sender = EmailSender.from_settings(make_settings(server.url("ar", "wrong")))
        assert sender is not None
        with pytest.raises(DeliveryError) as caught:
            await sender.send(invoice_mail())
        assert caught.value.permanent
        assert caught.value.code == "535"
        assert server.received == []


# -- failures ------------------------------------------------------------------------------


async def test_refused_recipient_is_permanent(smtp: FakeSmtpServer) -> None:
    smtp.refuse("gone@example.com")
    with pytest.raises(DeliveryError) as caught:
        await sender_for(smtp).send(invoice_mail("gone@example.com"))
    error = caught.value
    assert error.permanent
    assert error.code == "550"
    assert error.reason.startswith("550 ")
    assert "gone@example.com" in error.reason
    assert smtp.received == []


async def test_temporarily_refused_recipient_is_retried(smtp: FakeSmtpServer) -> None:
    smtp.refuse("busy@example.com", code=450, text="4.2.1 Mailbox busy")
    with pytest.raises(DeliveryError) as caught:
        await sender_for(smtp).send(invoice_mail("busy@example.com"))
    assert not caught.value.permanent
    assert caught.value.code == "450"


async def test_451_is_temporary_and_the_next_try_goes_through(smtp: FakeSmtpServer) -> None:
    smtp.defer_next(1)
    sender = sender_for(smtp)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(invoice_mail())
    assert not caught.value.permanent
    assert caught.value.code == "451"
    assert "Try again later" in caught.value.reason
    assert smtp.received == []

    result = await sender.send(invoice_mail())
    assert [m.message["Message-ID"] for m in smtp.received] == [result.provider_id]


async def test_554_on_data_is_permanent(smtp: FakeSmtpServer) -> None:
    smtp.defer_next(1, code=554, text="5.7.1 Message rejected as spam")
    with pytest.raises(DeliveryError) as caught:
        await sender_for(smtp).send(invoice_mail())
    assert caught.value.permanent
    assert caught.value.reason == "554 5.7.1 Message rejected as spam"


async def test_unreachable_server_is_temporary() -> None:
    sender = EmailSender.from_settings(make_settings(f"smtp://127.0.0.1:{free_port()}"), timeout=5.0)
    assert sender is not None
    with pytest.raises(DeliveryError) as caught:
        await sender.send(invoice_mail())
    assert not caught.value.permanent
    assert caught.value.code == "connect"


async def test_silent_server_times_out_as_temporary() -> None:
    async with silent_server() as port:
        sender = EmailSender.from_settings(make_settings(f"smtp://127.0.0.1:{port}"), timeout=0.2)
        assert sender is not None
        with pytest.raises(DeliveryError) as caught:
            await sender.send(invoice_mail())
    assert not caught.value.permanent
    assert caught.value.code == "timeout"


async def test_header_injection_is_refused_before_connecting(smtp: FakeSmtpServer) -> None:
    message = OutboundMessage(
        channel="email", address="a@example.com\r\nBcc: all@example.com", subject="x", body="y"
    )
    with pytest.raises(DeliveryError) as caught:
        await sender_for(smtp).send(message)
    assert caught.value.permanent
    assert caught.value.code == "invalid"
    assert smtp.received == []
