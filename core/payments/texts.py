"""Words a debtor reads on the PSP's pages: from templates/payments/<language>/ (en, nl)."""

from __future__ import annotations

from collections.abc import Sequence

from core.templates import LOCALES, environment


def _language(locale: str) -> str:
    language = locale.replace("-", "_").split("_", 1)[0].lower()
    return language if language in LOCALES else "en"


def checkout_description(locale: str, numbers: Sequence[str], creditor_name: str) -> str:
    """ "Invoice 2026-001 - Acme" or "Invoices A, B and 3 more - Acme", in the debtor's language."""
    template = environment().get_template(f"payments/{_language(locale)}/checkout_description.j2")
    text = " ".join(template.render(numbers=list(numbers), creditor_name=creditor_name).split())
    return text[:255]
