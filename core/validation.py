"""Reusable pydantic field types shared by the schemas (money, currency, locale, timezone, phone)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from core.money import MoneyError, parse_currency, parse_minor

SUPPORTED_LOCALES = ("en", "nl")


def _currency(value: Any) -> str:
    try:
        return parse_currency(value)
    except MoneyError as exc:
        raise PydanticCustomError(exc.code, str(exc)) from None


def _amount_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise PydanticCustomError(
            "not_a_string", 'amount must be a decimal string such as "12.50", not a JSON number'
        )
    return value


Currency = Annotated[str, BeforeValidator(_currency)]
AmountText = Annotated[str, BeforeValidator(_amount_text)]


def minor_for(amount: str, info: ValidationInfo, currency_field: str = "currency") -> int | str:
    """Validate ``amount`` against the currency already validated on the same model.

    Returns minor units, or the raw text when the currency itself was invalid (that error is reported).
    """
    currency = info.data.get(currency_field)
    if currency is None:
        return amount
    try:
        return parse_minor(amount, currency)
    except MoneyError as exc:
        raise PydanticCustomError(exc.code, str(exc)) from None


def _locale(value: str) -> str:
    try:
        loc = Locale.parse(value.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        raise PydanticCustomError("unknown_locale", f"unknown locale {value!r}") from None
    if loc.language not in SUPPORTED_LOCALES:
        raise PydanticCustomError(
            "unsupported_locale", f"locale must be one of {', '.join(SUPPORTED_LOCALES)}"
        )
    return loc.language


_ZONES: frozenset[str] | None = None


def _timezone(value: str) -> str:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if value not in _ZONES:
        raise PydanticCustomError("unknown_timezone", f"unknown IANA timezone {value!r}")
    try:
        ZoneInfo(value)
    except ZoneInfoNotFoundError:
        raise PydanticCustomError("unknown_timezone", f"unknown IANA timezone {value!r}") from None
    return value


def _email(value: str) -> str:
    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise PydanticCustomError("invalid_email", str(exc)) from None


def _phone(value: str) -> str:
    try:
        num = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise PydanticCustomError(
            "invalid_phone", "phone must be in international format, such as +31612345678"
        ) from None
    if not phonenumbers.is_valid_number(num):
        raise PydanticCustomError("invalid_phone", f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


LocaleCode = Annotated[str, AfterValidator(_locale)]
TimezoneName = Annotated[str, AfterValidator(_timezone)]
Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(_phone)]
ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@-]+$")]


def check_not_before(value: date, info: ValidationInfo, other: str, label: str) -> date:
    earlier = info.data.get(other)
    if earlier is not None and value < earlier:
        raise PydanticCustomError("date_order", f"{label} must not be before {other}")
    return value
