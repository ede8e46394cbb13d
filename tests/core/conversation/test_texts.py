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
