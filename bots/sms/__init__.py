"""The SMS channel: a generic JSON HTTP gateway."""

from bots.sms.sender import SmsSender, parse_retry_after

__all__ = ["SmsSender", "parse_retry_after"]
