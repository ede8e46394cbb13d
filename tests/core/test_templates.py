"""Debtor message templates: every name, locale, channel and tone renders, tones differ, money and dates
follow the locale, SMS stays short, HTML escapes and text does not, and failures are domain errors."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core import templates
from core.errors import DomainError
from core.money import Money
from core.templates import (
    CHANNELS,
    LOCALES,
    REQUEST_TEMPLATE_NAMES,
    TEMPLATE_NAMES,
    TONES,
    Rendered,
    TemplateNotFound,
    TemplateRenderError,
    render,
)

DEBTOR = "<b>Jansen</b> & Zn."
CREDITOR = "Acme Supplies B.V."
PAY_URL = "https://pay.example.com/p/Ab3dE5?ref=RF18INV20250042&lang=nl"
DUE = date(2025, 3, 5)
DEADLINE = date(2025, 4, 1)
TOTAL = Money(394_425, "EUR")  # 3,944.25

# GSM 03.38: the basic set and the extension table (an SMS with anything else is sent as UCS-2, 70 chars a part).
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
) | set("^{}\\[~]|€\f")


def invoice(i: int, days_overdue: int = 12, minor: int = 123_450) -> dict[str, Any]:
    return {
        "number": f"INV-2025-{42 + i:04d}",
        "due_date": DUE,
        "open": Money(minor + i, "EUR"),
        "days_overdue": days_overdue,
    }


def context(n: int = 3, **overrides: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "debtor_name": DEBTOR,
        "creditor_name": CREDITOR,
        "invoices": [invoice(i) for i in range(n)],
        "total": TOTAL,
        "pay_url": PAY_URL,
        "fee": Money(1500, "EUR"),
        "interest_rate": "12.15",
        "deadline": DEADLINE,
    }
    ctx.update(overrides)
    return ctx


ALL = list(itertools.product(TEMPLATE_NAMES + REQUEST_TEMPLATE_NAMES, LOCALES, CHANNELS, TONES))


@pytest.mark.parametrize(("name", "locale", "channel", "tone"), ALL)
def test_every_template_renders(name: str, locale: str, channel: str, tone: str) -> None:
    out = render(name, locale, channel, tone, **context())

    assert isinstance(out, Rendered)
    assert out.text.strip() == out.text and len(out.text) > 40
    assert CREDITOR in out.text
    assert PAY_URL in out.text  # every message carries the pay link when there is one
    assert "&lt;" not in out.text and "&amp;" not in out.text  # text is never HTML-escaped
    assert "None" not in out.text and "Undefined" not in out.text
    if channel == "email":
        assert out.subject and "\n" not in out.subject and len(out.subject) < 120
        assert out.html is not None and out.html.startswith("<!DOCTYPE html>")
        assert DEBTOR in out.text
        assert "&lt;b&gt;Jansen&lt;/b&gt; &amp; Zn." in out.html
        assert "<b>Jansen" not in out.html
        assert 'href="https://pay.example.com/p/Ab3dE5?ref=RF18INV20250042&amp;lang=nl"' in out.html
        assert f'lang="{locale}"' in out.html
        assert TOTAL.format(locale) in out.html
    else:
        assert out.subject is None and out.html is None
    if channel == "sms":
        assert "\n" not in out.text and len(out.text) <= 480
    else:
        assert DEBTOR in out.text
        assert TOTAL.format(locale) in out.text
        assert all(inv["number"] in out.text for inv in context()["invoices"])


@pytest.mark.parametrize(
    ("name", "locale", "channel"),
    list(itertools.product(TEMPLATE_NAMES + REQUEST_TEMPLATE_NAMES, LOCALES, CHANNELS)),
)
def test_the_three_tones_read_differently(name: str, locale: str, channel: str) -> None:
    outs = [render(name, locale, channel, tone, **context()) for tone in TONES]
    assert len({o.text for o in outs}) == 3
    if channel == "email":
        assert len({o.subject for o in outs}) == 3
        assert len({o.html for o in outs}) == 3


def test_the_tones_have_their_own_voice() -> None:
    def text(locale: str, tone: str) -> str:
        return render("reminder_overdue", locale, "email", tone, **context()).text

    assert text("en", "friendly").startswith(f"Hi {DEBTOR},")
    assert "slipped your mind" in text("en", "friendly")
    assert text("en", "firm").startswith(f"Dear {DEBTOR},")
    assert "by April 1, 2025 at the latest" in text("en", "firm")
    assert "additional costs" in text("en", "firm")
    # Dutch: je/jij when friendly, u when neutral or firm.
    friendly, neutral, firm = (text("nl", tone) for tone in TONES)
    assert friendly.startswith(f"Hallo {DEBTOR},") and " je " in friendly and " u " not in friendly
    assert neutral.startswith(f"Beste {DEBTOR},") and " u " in neutral and " je " not in neutral
    assert firm.startswith(f"Geachte {DEBTOR},") and "Hoogachtend," in firm and " je " not in firm


def test_babel_formats_money_and_dates_per_locale() -> None:
    # What babel (CLDR) actually produces; the Dutch amount has a no-break space after the euro sign.
    assert Money(123_450, "EUR").format("en") == "€1,234.50"
    assert Money(123_450, "EUR").format("nl") == "€\xa01.234,50"

    en = render("reminder_overdue", "en", "email", "neutral", **context(1))
    assert "- Invoice INV-2025-0042: €1,234.50, due March 5, 2025 (12 days overdue)" in en.text
    assert "Total to pay: €3,944.25" in en.text
    assert "by April 1, 2025" in en.text
    assert "€1,234.50" in (en.html or "") and "March 5, 2025" in (en.html or "")

    nl = render("reminder_overdue", "nl", "email", "neutral", **context(1))
    assert "- Factuur INV-2025-0042: €\xa01.234,50, vervaldatum 5 maart 2025 (12 dagen te laat)" in nl.text
    assert "Totaal te betalen: €\xa03.944,25" in nl.text
    assert "uiterlijk 1 april 2025" in nl.text
    assert "€\xa01.234,50" in (nl.html or "") and "5 maart 2025" in (nl.html or "")


def test_sms_uses_plain_spaces_and_medium_dates() -> None:
    nl = render("reminder_overdue", "nl", "sms", "firm", **context(1))
    assert "€ 3.944,25" in nl.text and "\xa0" not in nl.text
    assert "uiterlijk 1 apr 2025" in nl.text
    en = render("reminder_before_due", "en", "sms", "neutral", **context(1, deadline=None))
    assert "due on Mar 5, 2025" in en.text and "€3,944.25" in en.text


@pytest.mark.parametrize(
    ("name", "locale", "tone"),
    list(itertools.product(TEMPLATE_NAMES + REQUEST_TEMPLATE_NAMES, LOCALES, TONES)),
)
def test_sms_stays_short_with_ten_invoices(name: str, locale: str, tone: str) -> None:
    ctx = context(
        10,
        debtor_name="Bakkerij Van der Heijden-Smit V.O.F.",
        creditor_name="Groothandel Noord-Holland Levensmiddelen B.V.",
        pay_url="https://betalen.groothandel-noordholland.example/p/7fK2mQ9xL4vR8sT1",
        fee=Money(4000, "EUR"),
        total=Money(1_234_567, "EUR"),
    )
    out = render(name, locale, "sms", tone, **ctx)
    assert len(out.text) <= 480, out.text
    assert ("and 7 more" if locale == "en" else "en nog 7") in out.text
    assert "INV-2025-0044" in out.text and "INV-2025-0045" not in out.text
    assert set(out.text) <= GSM7, set(out.text) - GSM7  # no UCS-2 surprise from the fixed wording


def test_sms_names_two_or_three_invoices_in_full() -> None:
    two = render("reminder_overdue", "en", "sms", "neutral", **context(2)).text
    assert "invoices INV-2025-0042 and INV-2025-0043 are overdue" in two
    three = render("reminder_overdue", "nl", "sms", "neutral", **context(3)).text
    assert "facturen INV-2025-0042, INV-2025-0043 en INV-2025-0044 zijn nog niet betaald" in three


def test_email_lists_every_invoice_and_a_chat_at_most_ten() -> None:
    ctx = context(12)
    email = render("reminder_second", "en", "email", "neutral", **ctx)
    assert all(inv["number"] in email.text for inv in ctx["invoices"])
    assert all(inv["number"] in (email.html or "") for inv in ctx["invoices"])
    chat = render("reminder_second", "nl", "telegram", "neutral", **ctx)
    assert "INV-2025-0051" in chat.text and "INV-2025-0052" not in chat.text
    assert "- en nog 2 facturen" in chat.text
    one_more = render("reminder_second", "en", "whatsapp", "firm", **context(11))
    assert "- and 1 more invoice" in one_more.text


def test_singular_and_plural_wording() -> None:
    one = render("reminder_due_today", "en", "email", "neutral", **context(1))
    assert one.subject == "Reminder: invoice INV-2025-0042 is due today"
    assert "The invoice below is due for payment today." in one.text
    many = render("reminder_due_today", "nl", "email", "neutral", **context(3))
    assert many.subject == "Herinnering: 3 facturen vervallen vandaag"
    assert "De onderstaande facturen vervallen vandaag." in many.text
    assert (
        "1 dag te laat"
        in render(
            "reminder_overdue",
            "nl",
            "telegram",
            "neutral",
            **context(1, invoices=[invoice(0, days_overdue=1)]),
        ).text
    )


def test_days_overdue_only_shown_when_past_due() -> None:
    ctx = context(1, invoices=[invoice(0, days_overdue=-3)])
    out = render("reminder_before_due", "en", "email", "friendly", **ctx)
    assert "overdue" not in out.text and "overdue" not in (out.html or "")


def test_pay_line_is_left_out_without_a_pay_url() -> None:
    for locale, reference in (("en", "quote the invoice number"), ("nl", "het factuurnummer")):
        out = render("reminder_overdue", locale, "email", "neutral", **context(1, pay_url=None))
        assert "http" not in out.text and "href" not in (out.html or "")
        assert reference in out.text and reference in (out.html or "")
        sms = render("reminder_overdue", locale, "sms", "neutral", **context(1, pay_url=None))
        assert "http" not in sms.text and "Pay:" not in sms.text and "Betalen:" not in sms.text


def test_optional_values_may_be_left_out() -> None:
    ctx = context(1)
    for key in ("pay_url", "fee", "interest_rate", "deadline"):
        del ctx[key]
    for name, locale, channel, tone in ALL:
        assert render(name, locale, channel, tone, **ctx).text


def test_fee_is_named_in_the_second_reminder() -> None:
    en = render("reminder_second", "en", "email", "neutral", **context(1))
    assert "a reminder fee of €15.00 has been added" in en.text and "Reminder fee: €15.00" in en.text
    assert "Reminder fee" in (en.html or "")
    nl = render("reminder_second", "nl", "sms", "firm", **context(1))
    assert "Aanmaningskosten: € 15,00." in nl.text
    without = render("reminder_second", "en", "email", "neutral", **context(1, fee=None))
    assert "fee" not in without.text


def test_final_notice_mentions_statutory_interest_and_the_agency() -> None:
    en = render("final_notice", "en", "email", "firm", **context(1))
    assert "Statutory interest of 12.15% a year" in en.text and "collection agency" in en.text
    nl = render("final_notice", "nl", "email", "neutral", **context(1, interest_rate="8%"))
    assert "wettelijke rente van 8% per jaar" in nl.text and "incassobureau" in nl.text
    nl_rate = render("final_notice", "nl", "telegram", "friendly", **context(1))
    assert "12,15% per jaar" in nl_rate.text
    bare = render("final_notice", "en", "email", "neutral", **context(1, interest_rate=None))
    assert "Statutory interest is charged" in bare.text


def test_deadline_or_a_fallback() -> None:
    with_deadline = render("final_notice", "nl", "email", "firm", **context(1))
    assert "Betaal het totaalbedrag uiterlijk 1 april 2025." in with_deadline.text
    without = render("final_notice", "nl", "email", "firm", **context(1, deadline=None))
    assert "Betaal het totaalbedrag per omgaande." in without.text
    assert "Blijft betaling uit, dan dragen wij" in without.text


@dataclass
class InvoiceRow:
    number: str
    due_date: date
    open: Money
    days_overdue: int


def test_invoices_may_be_objects() -> None:
    rows = [InvoiceRow("A-1", DUE, Money(1000, "EUR"), 3), InvoiceRow("A-2", DUE, Money(2000, "EUR"), 3)]
    out = render("reminder_overdue", "en", "email", "neutral", **context(invoices=rows))
    assert "- Invoice A-1: €10.00" in out.text and "- Invoice A-2: €20.00" in out.text
    once = render("reminder_overdue", "en", "email", "neutral", **context(invoices=iter(rows)))
    assert once.text == out.text  # an iterator is read once, then listed in every part


@pytest.mark.parametrize("missing", ["debtor_name", "creditor_name", "invoices", "total"])
def test_a_missing_variable_fails_the_message(missing: str) -> None:
    ctx = context()
    del ctx[missing]
    for channel in CHANNELS:
        with pytest.raises(TemplateRenderError) as err:
            render("reminder_overdue", "nl", channel, "neutral", **ctx)
        assert err.value.code == "template_failed"
        assert missing in err.value.message
        assert "reminder_overdue (nl, " in err.value.message
        assert isinstance(err.value, DomainError)


def test_bad_values_fail_the_message_with_the_reason() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"invoices": [{"number": "X", "due_date": DUE, "open": Money(1, "EUR")}]}, "days_overdue"),
        ({"total": "12.50"}, "money filter expects Money"),
        ({"invoices": [invoice(0) | {"due_date": "2025-03-05"}]}, "date filter expects a date"),
        ({"invoices": [invoice(0) | {"number": None}]}, "printed None"),
        ({"invoices": []}, "invoices is empty"),
        ({"invoices": "INV-1"}, "invoices must be a list"),
        ({"pay_url": "javascript:alert(1)"}, "pay_url must be an http(s) URL"),
    ]
    for overrides, reason in cases:
        with pytest.raises(TemplateRenderError, match=r"reminder_overdue") as err:
            render("reminder_overdue", "en", "email", "firm", **context(**overrides))
        assert reason in err.value.message, (overrides, err.value.message)
    with pytest.raises(TemplateRenderError, match="is not a number"):
        render("final_notice", "en", "email", "firm", **context(interest_rate="lots"))


@pytest.mark.parametrize(
    ("name", "locale", "channel", "tone"),
    [
        ("no_such_template", "en", "email", "neutral"),
        ("_layout", "en", "email", "neutral"),
        ("../README", "en", "email", "neutral"),
        ("reminder_overdue", "de", "email", "neutral"),
        ("reminder_overdue", "fr_FR", "email", "neutral"),
        ("reminder_overdue", "", "email", "neutral"),
        ("reminder_overdue", "en", "fax", "neutral"),
        ("reminder_overdue", "en", "slack", "neutral"),
        ("reminder_overdue", "en", "email", "angry"),
        ("reminder_overdue", "en", "email", "Friendly"),
    ],
)
def test_unknown_template_locale_channel_or_tone(name: str, locale: str, channel: str, tone: str) -> None:
    with pytest.raises(TemplateNotFound) as err:
        render(name, locale, channel, tone, **context())
    assert err.value.code == "unknown_template"
    assert isinstance(err.value, DomainError)


@pytest.mark.parametrize("locale", ["nl_BE", "nl-BE", "NL", "nl_XX", "nl_NL.UTF-8"])
def test_a_regional_locale_falls_back_to_its_language(locale: str) -> None:
    expected = render("reminder_second", "nl", "email", "friendly", **context())
    out = render("reminder_second", locale, "email", "friendly", **context())
    assert out.text == expected.text
    assert out.subject == expected.subject


def test_the_regional_locale_still_formats() -> None:
    out = render("reminder_overdue", "en-GB", "email", "neutral", **context(1))
    assert "due 5 March 2025" in out.text  # en_GB date order, English words
    assert "Dear " in out.text
    assert 'lang="en-GB"' in (out.html or "")


def test_subjects_stay_on_one_line() -> None:
    ctx = context(1, invoices=[invoice(0) | {"number": "X\r\nBcc: someone@example.com"}])
    out = render("reminder_overdue", "en", "email", "neutral", **ctx)
    assert out.subject is not None and "\n" not in out.subject and "\r" not in out.subject


def test_rendered_is_frozen() -> None:
    out = render("invoice_delivery", "en", "sms", "neutral", **context(1))
    with pytest.raises(AttributeError):
        out.text = "changed"  # type: ignore[misc]


def test_every_template_file_exists_and_nothing_else_is_a_message() -> None:
    root = Path(templates.__file__).resolve().parent.parent / "templates" / "messages"
    for locale in LOCALES:
        found = {p.stem for p in (root / locale).glob("*.j2") if not p.name.startswith("_")}
        assert found == set(TEMPLATE_NAMES) | set(templates.PLAN_TEMPLATE_NAMES) | set(REQUEST_TEMPLATE_NAMES)


def test_templates_are_found_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (templates._root() / "messages" / "en" / "reminder_overdue.j2").is_file()
