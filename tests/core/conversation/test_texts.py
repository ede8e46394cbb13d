"""Chat texts exist in both languages, and buttons fit WhatsApp (20 characters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.conversation import texts
from core.templates import LOCALES, environment

ROOT = Path(__file__).resolve().parents[3] / "templates" / "messages"


@pytest.mark.parametrize("group", texts.GROUPS)
def test_every_text_exists_in_every_language(group: str) -> None:
    blocks = {
        locale: set(environment().get_template(f"messages/{locale}/chat/{group}.j2").blocks)
        for locale in LOCALES
    }
    assert blocks["en"] == blocks["nl"]
    assert all((ROOT / locale / "chat" / f"{group}.j2").is_file() for locale in LOCALES)


@pytest.mark.parametrize("locale", LOCALES)
def test_button_labels_fit_whatsapp(locale: str) -> None:
    names = environment().get_template(f"messages/{locale}/chat/labels.j2").blocks
    for name in names:
        label = texts.label(name, locale, number="2026-00012", n=12)
        assert 0 < len(label) <= 20, (name, label)


def test_unknown_text_is_refused() -> None:
    from core.templates import TemplateNotFound

    for key in ("account.nope", "nogroup.balance", "account"):
        with pytest.raises(TemplateNotFound):
            texts.render(key, "en")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("outcome", ["accepted", "counter", "needs_approval", "refused"])
def test_plan_decisions_render_from_any_schedule_shape(locale: str, outcome: str) -> None:
    """What core/plans answers (PlanDecision) becomes the texts; schedule items may be tuples,
    dicts or objects with due_date/amount_minor."""
    from datetime import date
    from types import SimpleNamespace

    from core.conversation.flows.plan import _decision_view

    decision = SimpleNamespace(
        outcome=outcome,
        plan_id="p1",
        currency="EUR",
        total_minor=30_000,
        down_payment_minor=5_000,
        schedule=[
            (date(2026, 12, 24), 12_500),
            {"due_date": date(2027, 1, 24), "amount_minor": 12_500},
        ],
        reason_code="too_many_instalments",
    )
    text = texts.render(f"plan.{outcome}", locale, **_decision_view(decision))
    if outcome in ("accepted", "counter"):
        flat = text.replace("\xa0", " ")
        assert "125,00" in flat or "125.00" in flat
        assert ("300,00" in flat or "300.00" in flat) and ("50,00" in flat or "50.00" in flat)


def _sample() -> dict[str, object]:
    """Enough context for any chat text (each block reads a part of it)."""
    from datetime import date
    from types import SimpleNamespace

    from core.money import Money

    eur = lambda minor: Money(minor, "EUR")  # noqa: E731
    inv = SimpleNamespace(
        number="NW-1", open=eur(24_950), due_date=date(2026, 10, 31), overdue=True, days_overdue=24
    )
    cur = SimpleNamespace(open=eur(34_950), overdue=eur(24_950), promised=eur(0), credit=eur(0))
    return {
        "currencies": [cur],
        "invoices": [inv],
        "more": 0,
        "number": "NW-1",
        "numbers": ["NW-1"],
        "amount": eur(24_950),
        "amounts": [eur(24_950)],
        "url": "https://pay.example/x",
        "iban": "NL91ABNA0417164300",
        "creditor_name": "Acme",
        "reference": "RF18 5390 0754 7034",
        "epc": True,
        "today": date(2026, 11, 24),
        "latest": date(2026, 12, 24),
        "when": date(2026, 11, 27),
        "held": True,
        "until": date(2026, 12, 1),
        "method": "Bank transfer",
        "total": eur(30_000),
        "down_payment": eur(5_000),
        "schedule": [{"due": date(2026, 12, 24), "amount": eur(12_500)}],
        "instalments": 2,
        "monthly": eur(12_500),
        "name": "Northwind Ltd",
        "current": "e-mail",
        "channel": "e-mail",
        "text": "Hello",
        "staff": "Anna",
        "left": 2,
        "n": 3,
        "debtor_name": "Northwind Ltd",
        "issue_date": date(2026, 10, 1),
        "due_date": date(2026, 10, 31),
        "description": "Services",
        "open": eur(24_950),
    }


# The texts where the tone matters to a debtor: each reads differently in the friendly and firm tone.
TONED = (
    "account.balance", "account.pay", "account.invoices", "account.nothing_open",
    "prefs.menu", "prefs.help", "prefs.stopped",
    "holds.promise_ask", "holds.promise_out_of_range", "holds.promise_recorded", "holds.promise_nothing",
    "holds.paid_ask_date", "holds.paid_recorded", "holds.dispute_recorded",
    "plan.ask", "plan.accepted", "plan.counter", "plan.refused", "plan.declined", "plan.active",
    "plan.staff_approved", "plan.staff_declined",
)  # fmt: skip


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("group", texts.GROUPS)
def test_every_text_renders_in_every_tone(locale: str, group: str) -> None:
    from core.templates import TONES

    names = environment().get_template(f"messages/{locale}/chat/{group}.j2").blocks
    for name in names:
        rendered = {tone: texts.render(f"{group}.{name}", locale, tone=tone, **_sample()) for tone in TONES}
        assert all(text.strip() for text in rendered.values()), (group, name)
        toned = f"{group}.{name}" in TONED
        assert (rendered["friendly"] != rendered["firm"]) == toned, (locale, group, name, rendered)


def test_an_unknown_tone_is_refused() -> None:
    from core.templates import TemplateNotFound

    with pytest.raises(TemplateNotFound):
        texts.render("prefs.menu", "en", tone="rude", name="X")
