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
