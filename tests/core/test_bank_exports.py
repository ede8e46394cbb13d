"""MT940 text rules: the SWIFT character set, decimal commas, and :86: lines of at most 65 characters."""

from __future__ import annotations

from core.payments.exports import mt940_amount, swift_text, wrap_details


def test_amounts_use_a_decimal_comma_and_the_currency_exponent() -> None:
    assert mt940_amount(123450, "EUR") == "1234,50"
    assert mt940_amount(5, "EUR") == "0,05"
    assert mt940_amount(1000, "JPY") == "1000,"
    assert mt940_amount(1234, "KWD") == "1,234"


def test_names_are_reduced_to_the_swift_character_set() -> None:
    assert swift_text("Müller & Søn: café") == "Muller Sn cafe"


def test_long_details_wrap_at_fields_and_join_back_exactly() -> None:
    numbers = ",".join(f"2026-{n:05d}" for n in range(1, 9))
    text = f"/EREF/RF18539007547034/REMI/{numbers}/NAME/{'Groothandel in Bouwmaterialen ' * 2}/IBAN/NL20INGB0001234567"
    lines = wrap_details(text)
    assert all(len(line) <= 65 for line in lines) and len(lines) <= 6
    assert "".join(lines) == text
    assert not any(line.startswith(("-", ":")) for line in lines)
