"""Plan messages render in every locale, channel and tone, with the instalment and schedule a debtor
needs, money and dates per locale, and SMS short."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest

from core.money import Money
from core.templates import CHANNELS, LOCALES, PLAN_TEMPLATE_NAMES, TONES, render


def flat(text: str) -> str:
    """Babel puts a no-break space between € and the amount in Dutch; compare with plain spaces."""
    return " ".join(text.split())


def context() -> dict[str, Any]:
    return {
        "debtor_name": "Jan de Vries",
        "creditor_name": "Acme Supplies B.V.",
        "invoices": [
            {
                "number": "2026-0042",
                "due_date": date(2026, 10, 31),
                "open": Money(40_000, "EUR"),
                "days_overdue": 24,
            }
        ],
        "total": Money(10_000, "EUR"),
        "instalment": {"number": 2, "count": 4, "due_on": date(2027, 1, 24), "amount": Money(10_000, "EUR")},
        "schedule": [
            {
                "number": n,
                "due_on": date(2026 + (10 + n) // 12, (10 + n) % 12 + 1, 24),
                "amount": Money(10_000, "EUR"),
            }
            for n in range(1, 5)
        ],
        "down_payment": None,
        "plan_ends": date(2027, 3, 24),
    }


@pytest.mark.parametrize(
    ("name", "locale", "channel", "tone"),
    list(itertools.product(PLAN_TEMPLATE_NAMES, LOCALES, CHANNELS, TONES)),
)
def test_every_plan_message_renders(name: str, locale: str, channel: str, tone: str) -> None:
    out = render(name, locale, channel, tone, **context())

    assert ("€100.00" if locale == "en" else "€ 100,00") in flat(out.text)
    if channel == "email":
        assert out.subject and out.html and "Jan de Vries" in out.html
    if channel == "sms":
        assert "\n" not in out.text and len(out.text) <= 306


def test_the_reminder_names_the_instalment_and_its_date() -> None:
    en = render("instalment_reminder", "en", "email", "neutral", **context())
    nl = render("instalment_reminder", "nl", "telegram", "neutral", **context())

    assert en.subject == "Instalment 2 of 4 of your payment plan: €100.00 due January 24, 2027"
    assert "termijn 2 van 4 van uw betalingsregeling, € 100,00, vervalt op 24 januari 2027" in flat(nl.text)


def test_the_confirmation_lists_the_schedule() -> None:
    nl = render("plan_confirmed", "nl", "email", "neutral", **context())

    assert "- Termijn 1: € 100,00, uiterlijk 24 december 2026" in flat(nl.text)
    assert "- Termijn 4: € 100,00, uiterlijk 24 maart 2027" in flat(nl.text)
