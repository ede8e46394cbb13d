"""The OpenAPI document says what the API accepts, so that a client generated from it sends what passes.

The validators stay the judges (with their own messages and codes); these tests check that the
document's enums and patterns agree with them: everything the document allows for a currency,
an amount, a stage's template, tone and channels passes, and what it excludes is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.db import Database
from core.dunning.schemas import PolicyIn, StageIn
from core.money import MoneyError, parse_currency, parse_minor
from core.templates import TEMPLATE_NAMES, TONES
from core.validation import SUPPORTED_LOCALES
from tests import factories
from tests.api.helpers import API, bearer


async def _spec(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec: dict[str, Any] = r.json()
    return spec


def _properties(spec: dict[str, Any], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(schema name, property) of every component schema property called ``name``."""
    for schema_name, schema in spec["components"]["schemas"].items():
        prop = schema.get("properties", {}).get(name)
        if prop is not None:
            for option in prop.get("anyOf", [prop]):  # optional fields: [{…}, {"type": "null"}]
                if option.get("type") == "string":
                    yield schema_name, option


async def test_every_currency_field_lists_the_codes_the_api_accepts(client: httpx.AsyncClient) -> None:
    fields = list(_properties(await _spec(client), "currency"))
    assert len(fields) >= 5  # payments, credit notes, payment requests, fees, plan amounts …
    codes = fields[0][1]["enum"]
    for schema_name, prop in fields:
        assert prop["enum"] == codes, schema_name
    assert {"EUR", "USD", "GBP", "JPY", "KWD"} <= set(codes)
    assert not {"DEM", "NLG", "XAU", "XTS", "eur"} & set(codes)  # withdrawn, metal, testing, lower case
    assert [parse_currency(code) for code in codes] == codes  # each one passes
    with pytest.raises(MoneyError):
        parse_currency("DEM")


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("12.50", True),
        ("0.01", True),
        ("100", True),
        ("0", False),
        ("0.00", False),
        ("-5.00", False),
        ("1e3", False),
        ("12,50", False),
        (".5", False),
    ],
)
async def test_the_amount_pattern_agrees_with_the_parser(
    client: httpx.AsyncClient, text: str, accepted: bool
) -> None:
    patterns = {prop["pattern"] for _, prop in _properties(await _spec(client), "amount")}
    assert len(patterns) == 1  # one form of amount everywhere
    assert bool(re.fullmatch(patterns.pop(), text)) is accepted
    if accepted:
        assert parse_minor(text, "EUR") > 0
    else:
        with pytest.raises(MoneyError):
            parse_minor(text, "EUR")


async def test_a_policy_built_from_the_documented_choices_is_accepted(
    client: httpx.AsyncClient, db: Database
) -> None:
    spec = await _spec(client)
    stage = spec["components"]["schemas"][StageIn.__name__]["properties"]
    assert stage["template"]["enum"] == list(TEMPLATE_NAMES)
    assert stage["tone"]["enum"] == list(TONES)
    channels = stage["channels"]["items"]["enum"]
    locale = next(p for _, p in _properties(spec, "locale") if "pattern" in p)
    assert all(re.fullmatch(locale["pattern"], code) for code in SUPPORTED_LOCALES)

    key = await factories.api_key(db, ["dunning:write"])
    stages = [
        {
            "key": f"stage_{i}",
            "offset_days": 7 * i,
            "template": template,
            "tone": stage["tone"]["enum"][i % len(TONES)],
            "channels": channels[i % len(channels) :] + channels[: i % len(channels)],
            "fee": ({"amount": "1", "currency": "JPY"} if i == 1 else {"amount": "0.01", "currency": "EUR"})
            if i
            else None,
        }
        for i, template in enumerate(stage["template"]["enum"])
        if template != "invoice_delivery"  # delivery is not a reminder stage
    ]
    rate = spec["components"]["schemas"][PolicyIn.__name__]["properties"]["interest_rate"]["pattern"]
    assert re.fullmatch(rate, "8.5") and not re.fullmatch(rate, "8,5")
    body = {"name": "Every choice", "interest_rate": "8.5", "stages": stages}
    r = await client.put(f"{API}/dunning/policies/every", json=body, headers=bearer(key))
    assert r.status_code in (200, 201), r.text
    assert [s["template"] for s in r.json()["stages"]] == [s["template"] for s in stages]
