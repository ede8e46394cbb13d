"""GET /pay/thanks: where Mollie sends the debtor back after the checkout (no API key needed).

The words live in templates/pages/pay_thanks.<language>.html.j2; the language comes from
``?lang=`` or Accept-Language, English otherwise. The page promises nothing about the payment's
outcome: the webhook decides that.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["pay"], include_in_schema=False)
LANGUAGES = ("en", "nl")


@lru_cache(maxsize=1)
def _pages() -> jinja2.Environment:
    root = Path(__file__).resolve().parents[2] / "templates" / "pages"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(root), autoescape=True)


def _language(lang: str | None, accept: str | None) -> str:
    for candidate in [lang or "", *(part.split(";")[0] for part in (accept or "").split(","))]:
        code = candidate.strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


@router.get("/pay/thanks", response_class=HTMLResponse)
async def pay_thanks(
    lang: Annotated[str | None, Query(max_length=16)] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> HTMLResponse:
    language = _language(lang, accept_language)
    html = _pages().get_template(f"pay_thanks.{language}.html.j2").render(language=language)
    return HTMLResponse(html)
