"""The classifier on the labelled utterances (tests/data/utterances.tsv), dates and amounts."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from core.conversation.nlu import Intent, RulesClassifier, find_date, parse_amount_minor

DATA = Path(__file__).resolve().parents[2] / "data" / "utterances.tsv"
NOW = datetime(2026, 11, 24, 10, 0)  # a Tuesday, in the debtor's timezone
MIN_ACCURACY = 0.9


def _rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        rows.append((parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return rows


def test_labelled_set_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows()
    assert len(rows) >= 150
    assert {intent for _, _, intent, _ in rows} >= {i.value for i in Intent}
    assert {locale for _, locale, _, _ in rows} == {"en", "nl"}
    classifier = RulesClassifier()
    misses = []
    dates_right = dates_total = 0
    for text, locale, intent, expected_date in rows:
        got = classifier.classify(text, locale=locale, now=NOW)
        predicted = got.intent.value if got.sure else "unknown"
        if predicted != intent:
            misses.append((text, intent, predicted))
        if expected_date:
            dates_total += 1
            dates_right += got.date == date.fromisoformat(expected_date)
    accuracy = 1 - len(misses) / len(rows)
    with capsys.disabled():
        print(
            f"\nNLU accuracy {accuracy:.3f} on {len(rows)} utterances (en+nl); "
            f"dates {dates_right}/{dates_total}; misses: {misses}"
        )
    assert accuracy >= MIN_ACCURACY, misses
    assert dates_right == dates_total


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("end of the month", "en", date(2026, 11, 30)),
        ("eind van de maand", "nl", date(2026, 11, 30)),
        ("the day after tomorrow", "en", date(2026, 11, 26)),
        ("over twee weken", "nl", date(2026, 12, 8)),
        ("ik betaal volgende week vrijdag", "nl", date(2026, 12, 4)),
        ("friday next week", "en", date(2026, 12, 4)),
        ("I will pay 200", "en", None),
        ("3", "en", None),
        ("asap", "en", None),
    ],
)
def test_dates(text: str, lang: str, expected: date | None) -> None:
    found = find_date(text, lang, NOW)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("249.50", 24_950),
        ("€ 249,50", 24_950),
        ("1.250,00", 125_000),
        ("1,250.00", 125_000),
        ("1.250", 125_000),
        ("89", 8_900),
        ("12.5", 1_250),
        ("about 10 or 20", None),
        ("", None),
        ("1.25.0", None),
    ],
)
def test_amounts_are_read_exactly_or_not_at_all(text: str, minor: int | None) -> None:
    assert parse_amount_minor(text) == minor


def test_unsure_text_is_unknown() -> None:
    got = RulesClassifier().classify("blue", locale="en", now=NOW)
    assert got.intent is Intent.unknown and not got.sure
