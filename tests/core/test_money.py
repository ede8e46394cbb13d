"""Money: decimal strings in, integer minor units inside, per-currency exponents, locale formatting."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.money import Money, MoneyError, exponent, format_minor, is_currency, parse_currency, parse_minor


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "EUR", 1250),
        ("12.5", "EUR", 1250),
        ("0.01", "EUR", 1),
        ("1000", "EUR", 100_000),
        ("1234567.89", "EUR", 123_456_789),
        ("1000", "JPY", 1000),
        ("1", "JPY", 1),
        ("1.234", "KWD", 1234),
        ("0.001", "KWD", 1),
        ("12.5", "KWD", 12_500),
        ("7", "KWD", 7000),
    ],
)
def test_parse_minor_uses_the_currency_exponent(text: str, currency: str, minor: int) -> None:
    assert parse_minor(text, currency) == minor


def test_exponents_of_the_three_kinds_of_currency() -> None:
    assert (exponent("EUR"), exponent("JPY"), exponent("KWD")) == (2, 0, 3)


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1250, "EUR", "12.50"),
        (5, "EUR", "0.05"),
        (-300, "EUR", "-3.00"),
        (0, "EUR", "0.00"),
        (1000, "JPY", "1000"),
        (-7, "JPY", "-7"),
        (1234, "KWD", "1.234"),
        (5, "KWD", "0.005"),
        (-12_500, "KWD", "-12.500"),
    ],
)
def test_format_minor_writes_the_api_decimal_string(minor: int, currency: str, text: str) -> None:
    assert format_minor(minor, currency) == text


@pytest.mark.parametrize("currency", ["EUR", "JPY", "KWD", "USD", "GBP"])
@pytest.mark.parametrize("minor", [1, 99, 100, 1001, 123_456_789])
def test_format_then_parse_round_trips(minor: int, currency: str) -> None:
    assert parse_minor(format_minor(minor, currency), currency) == minor


@pytest.mark.parametrize("value", [12.5, 12, 0.1, True, None, b"12.50"])
def test_numbers_are_refused_so_nothing_is_lost_in_binary(value: object) -> None:
    with pytest.raises(MoneyError) as exc:
        parse_minor(value, "EUR")
    assert exc.value.code == "not_a_string"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("-1", "negative"),
        ("-0.01", "negative"),
        ("1.234", "too_many_decimals"),
        ("0.001", "too_many_decimals"),
        ("1e3", "malformed"),
        ("1E3", "malformed"),
        ("", "malformed"),
        (" 1", "malformed"),
        ("1 ", "malformed"),
        ("\t1", "malformed"),
        ("+1", "malformed"),
        ("NaN", "malformed"),
        ("Infinity", "malformed"),
        ("1,50", "malformed"),
        ("1 000", "malformed"),
        ("1_000", "malformed"),
        ("twelve", "malformed"),
        ("0", "zero"),
        ("0.00", "zero"),
        ("10000000000000.00", "too_large"),
    ],
)
def test_refusals_name_the_rule_that_failed(text: str, code: str) -> None:
    with pytest.raises(MoneyError) as exc:
        parse_minor(text, "EUR")
    assert exc.value.code == code


def test_zero_decimal_and_three_decimal_currencies_refuse_extra_digits() -> None:
    with pytest.raises(MoneyError) as exc:
        parse_minor("1.5", "JPY")
    assert exc.value.code == "too_many_decimals"
    assert "JPY allows at most 0 decimals" in str(exc.value)
    with pytest.raises(MoneyError) as exc:
        parse_minor("1.2345", "KWD")
    assert "KWD allows at most 3 decimals" in str(exc.value)


def test_zero_is_allowed_only_when_asked() -> None:
    assert parse_minor("0.00", "EUR", allow_zero=True) == 0


@pytest.mark.parametrize(
    "code", ["EUX", "eur", "Eur", "EURO", "EU", "", " EUR", 978, None, "DEM", "NLG", "XAU", "X" * 3]
)
def test_unknown_currencies_are_refused(code: object) -> None:
    assert not is_currency(code)  # type: ignore[arg-type]
    with pytest.raises(MoneyError) as exc:
        parse_currency(code)
    assert exc.value.code == "unknown_currency"
    with pytest.raises(MoneyError):
        Money.parse("1.00", code)


def test_money_parse_combines_currency_and_amount() -> None:
    assert Money.parse("19.99", "EUR") == Money(1999, "EUR")
    assert Money.parse("500", "JPY") == Money(500, "JPY")
    assert str(Money.parse("1.5", "KWD")) == "1.500 KWD"
    assert Money(1999, "EUR").as_api() == {"amount": "19.99", "currency": "EUR"}


def test_format_per_locale_uses_that_locales_separators() -> None:
    amount = Money(123_450, "EUR")
    en, nl = amount.format("en"), amount.format("nl")
    assert en != nl
    assert "1,234.50" in en
    assert "1.234,50" in nl
    assert "€" in en and "€" in nl


def test_format_respects_currency_exponent() -> None:
    assert "123,450" in Money(123_450, "JPY").format("en")
    assert "." not in Money(123_450, "JPY").format("en")
    assert "1,234.567" in Money(1_234_567, "KWD").format("en")
    assert "1.234,567" in Money(1_234_567, "KWD").format("nl")


def test_negative_amounts_format_with_a_sign() -> None:
    assert "-" in Money(-500, "EUR").format("nl")
    assert "5,00" in Money(-500, "EUR").format("nl")


def test_arithmetic_within_one_currency() -> None:
    a, b = Money(1250, "EUR"), Money(250, "EUR")
    assert a + b == Money(1500, "EUR")
    assert a - b == Money(1000, "EUR")
    assert b - a == Money(-1000, "EUR")
    assert -a == Money(-1250, "EUR")
    assert Money.zero("JPY") + Money(7, "JPY") == Money(7, "JPY")


def test_mixing_currencies_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        _ = Money(100, "EUR") + Money(100, "USD")
    assert exc.value.code == "currency_mismatch"
    assert "EUR" in exc.value.message and "USD" in exc.value.message
    with pytest.raises(InvalidInput):
        _ = Money(100, "EUR") - Money(100, "JPY")
