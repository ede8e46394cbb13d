"""Money: integer minor units plus an ISO 4217 currency. Never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel.core import Locale, get_global
from babel.numbers import format_currency, get_currency_precision, get_territory_currencies

from core.errors import InvalidInput

MAX_MINOR = 10**15
# Digits, optionally a dot and digits: no sign other than a (refused) minus, no exponent, no spaces.
_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")  # guards against absurd amounts overflowing BIGINT sums


@lru_cache(maxsize=1)
def currencies() -> frozenset[str]:
    """ISO 4217 codes that are legal tender somewhere today (CLDR via babel): what ``parse_currency``
    accepts, and what the OpenAPI document lists.

    Withdrawn codes (DEM, NLG), funds and metals (XAU) and the ISO testing code are not money we invoice in.
    """
    today = date.today()
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, today, tender=True))
    return frozenset(codes)


def is_currency(code: str) -> bool:
    return isinstance(code, str) and len(code) == 3 and code.isupper() and code in currencies()


@lru_cache(maxsize=512)
def exponent(currency: str) -> int:
    """Number of minor-unit digits for the currency (EUR 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))


class MoneyError(ValueError):
    """A parse problem; ``code`` names which rule failed."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def parse_currency(value: object) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise MoneyError(f"unknown currency {value!r}; use an ISO 4217 code such as EUR", "unknown_currency")
    return value


def parse_minor(value: object, currency: str, *, allow_zero: bool = False) -> int:
    """Parse a decimal string ("12.50") into minor units for ``currency``.

    Floats and ints are refused: amounts cross the API as strings so nothing is lost in binary.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise MoneyError('amount must be a decimal string such as "12.50", not a number', "not_a_string")
    match = _AMOUNT.fullmatch(value)
    if match is None:
        hint = "; write the decimals after a dot, not a comma" if "," in value else ""
        raise MoneyError(f'amount {value!r} is not a decimal number such as "12.50"{hint}', "malformed")
    sign, whole, frac = match.groups()
    if sign:
        raise MoneyError("amount must not be negative", "negative")
    digits = exponent(currency)
    frac = frac or ""
    if len(frac) > digits:
        raise MoneyError(f"{currency} allows at most {digits} decimals", "too_many_decimals")
    if len(whole) > 18:
        raise MoneyError("amount is too large", "too_large")
    minor = int(whole) * 10**digits + (int(frac) * 10 ** (digits - len(frac)) if frac else 0)
    if minor == 0 and not allow_zero:
        raise MoneyError("amount must be greater than zero", "zero")
    if minor >= MAX_MINOR:
        raise MoneyError("amount is too large", "too_large")
    return minor


def format_minor(minor: int, currency: str) -> str:
    """Minor units → the API's decimal string ("12.50", "-3.00", "1000" for JPY)."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """babel's Locale for a tag such as "nl_BE", parsed once: babel parses a string locale again on
    every call (about a third of formatting an amount)."""
    return Locale.parse(tag)


@lru_cache(maxsize=4096)
def _formatted(minor: int, currency: str, locale: str) -> str:
    """babel's text for an amount (about 9 µs each): cached, as a chat reply or a reminder shows the
    same amount several times (open, overdue, the invoice's line)."""
    value = Decimal(minor).scaleb(-exponent(currency))
    return str(format_currency(value, currency, locale=babel_locale(locale)))


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    @classmethod
    def parse(cls, amount: object, currency: object) -> Money:
        cur = parse_currency(currency)
        return cls(parse_minor(amount, cur), cur)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidInput(f"cannot combine {self.currency} and {other.currency}", "currency_mismatch")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    @property
    def decimal_str(self) -> str:
        return format_minor(self.minor, self.currency)

    def as_api(self) -> dict[str, str]:
        return {"amount": self.decimal_str, "currency": self.currency}

    def format(self, locale: str = "en") -> str:
        """Human text per locale with babel, e.g. '€1,234.50' (en) or '€ 1.234,50' (nl)."""
        return _formatted(self.minor, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.decimal_str} {self.currency}"
