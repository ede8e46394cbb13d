"""The email channel: SMTP through aiosmtplib."""

from bots.email.sender import EmailSender, SmtpConfig, parse_smtp_url

__all__ = ["EmailSender", "SmtpConfig", "parse_smtp_url"]
