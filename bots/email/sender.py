"""Email over SMTP (aiosmtplib): a text body, an optional HTML alternative and attachments.

``SMTP_URL`` selects the server (CONTRACT section 2):

- ``smtp://user:pass@host:port``: plain SMTP (default port 25); no TLS upgrade is attempted;
- ``smtp://user:pass@host:port?starttls=1``: STARTTLS is required (default port 587);
- ``smtps://user:pass@host:port``: implicit TLS (default port 465).

User and password are URL-decoded, so ``p%40ss`` is ``p@ss``; without a user no AUTH is sent.
The sender address is ``SMTP_FROM``.

SMTP replies map onto :class:`core.ports.DeliveryError`: a 5xx reply (refused recipient, rejected
message) is permanent and carries the server's reply as its reason; a 4xx reply, a refused or
dropped connection and a timeout are temporary, so delivery retries with backoff.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from core.config import Settings
from core.ports import DeliveryError, OutboundMessage, SendResult

DEFAULT_TIMEOUT = 30.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect, parsed from ``SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool = False

    def __repr__(self) -> str:  # never print the password
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"use_tls={self.use_tls}, start_tls={self.start_tls})"
        )


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse ``smtp://`` / ``smtps://`` URLs; raise ValueError for anything else."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in {"smtp", "smtps"}:
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme or '(none)'}://")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    query = parse_qs(parts.query)
    start_tls = query.get("starttls", ["0"])[-1].strip().lower() in _TRUE
    use_tls = scheme == "smtps"
    if use_tls and start_tls:
        raise ValueError("SMTP_URL: smtps:// is implicit TLS; it cannot be combined with ?starttls=1")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"SMTP_URL has an invalid port: {exc}") from None
    if port is None:
        port = 465 if use_tls else (587 if start_tls else 25)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=username,
        password=password if username else None,
        use_tls=use_tls,
        start_tls=start_tls,
    )


class EmailSender:
    """A MessageSender for the ``email`` channel; one SMTP connection per message."""

    channel = "email"

    def __init__(
        self,
        config: SmtpConfig,
        *,
        sender: str,
        timeout: float = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
    ) -> None:
        self.config = config
        self.sender = sender
        self.timeout = timeout
        self.local_hostname = local_hostname
        _, sender_address = email.utils.parseaddr(sender)
        if "@" not in sender_address:
            raise ValueError(f"SMTP_FROM is not an email address: {sender!r}")
        self.sender_address = sender_address
        self._msgid_domain = sender_address.rpartition("@")[2] or "duebot.local"

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> EmailSender | None:
        """The email channel, or None when ``SMTP_URL`` is unset."""
        if settings.smtp_url is None:
            return None
        url = settings.smtp_url.get_secret_value()
        if not url.strip():
            return None
        return cls(parse_smtp_url(url), sender=settings.smtp_from, timeout=timeout)

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message: text/plain, an optional text/html alternative, then attachments."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        if message.subject:
            mail["Subject"] = message.subject
        mail["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = email.utils.make_msgid(domain=self._msgid_domain)
        mail.set_content(message.body)
        html = message.meta.get("html")
        if isinstance(html, str):
            mail.add_alternative(html, subtype="html")
        for filename, data, content_type in message.attachments:
            maintype, _, subtype = content_type.partition("/")
            if not maintype or not subtype:
                maintype, subtype = "application", "octet-stream"
            mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        return mail

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            mail = self.build(message)
        except (ValueError, TypeError) as exc:  # e.g. a line break in a header
            raise DeliveryError(f"cannot build the email: {exc}", permanent=True, code="invalid") from exc
        cfg = self.config
        try:
            await aiosmtplib.send(
                mail,
                sender=self.sender_address,
                recipients=[message.address],
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password if cfg.username else None,
                use_tls=cfg.use_tls,
                start_tls=cfg.start_tls,
                timeout=self.timeout,
                local_hostname=self.local_hostname,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _recipients_refused(exc) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _reply_error(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            raise DeliveryError(f"SMTP timeout: {exc}", permanent=False, code="timeout") from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            raise DeliveryError(f"SMTP connection failed: {exc}", permanent=False, code="connect") from exc
        except aiosmtplib.SMTPException as exc:  # e.g. AUTH or STARTTLS not offered: a setup problem
            raise DeliveryError(f"SMTP error: {exc}", permanent=False, code="smtp") from exc
        except ValueError as exc:  # aiosmtplib refuses an unusable address before talking
            raise DeliveryError(f"invalid email: {exc}", permanent=True, code="invalid") from exc
        return SendResult(provider_id=str(mail["Message-ID"]), status="sent")


def _reply_error(code: int, text: str) -> DeliveryError:
    reply = f"{code} {text}".strip()
    return DeliveryError(reply, permanent=code >= 500, code=str(code))


def _recipients_refused(exc: aiosmtplib.SMTPRecipientsRefused) -> DeliveryError:
    """Permanent when any recipient got a 5xx; a 4xx (greylisting, mailbox busy) is retried."""
    refused = exc.recipients
    if not refused:
        return DeliveryError("recipient refused", permanent=True, code="refused")
    worst = max(refused, key=lambda r: r.code)
    return _reply_error(worst.code, worst.message)
