"""Debtor messages rendered from ``templates/messages/<language>/<name>.j2`` (jinja2), per locale, channel and tone.

Every word a debtor reads lives in those files; code only picks the template and passes the facts.

``render(name, locale, channel, tone, **ctx)`` returns a :class:`Rendered`: email gets a subject, a text
body and an HTML body; sms, telegram and whatsapp get the text only. SMS stays within a few segments
(at most three invoices are named, then "and 7 more"); chat messages name at most ten.

Context (what the dunning sweep and invoice delivery pass):

``debtor_name: str``
    How the debtor is addressed ("Jan de Vries", "Bakkerij Smit B.V.").
``creditor_name: str``
    Who is asking for the money; signs the message.
``invoices: list``
    Objects or dicts with ``number`` (str), ``due_date`` (date), ``open`` (Money: what is still to be paid
    on it) and ``days_overdue`` (int; zero or negative before the due date). At least one.
``total: Money``
    What the message asks the debtor to pay now, fees and interest included.
``pay_url: str | None``
    Optional, default None. The payment page; without it the pay line is replaced by "quote the invoice number".
``fee: Money | None``
    Optional, default None. A fee charged at this stage (reminder_second, say); listed above the total.
``interest_rate: str | None``
    Optional, default None. The annual statutory interest rate in percent as a decimal string ("8", "12.15";
    a trailing "%" is allowed), shown per locale ("12.15%", "12,15%") by final_notice.
``payment_reference: str | None``
    Optional, default None. The RF creditor reference of the pay options ("RF18 5390 0754 7034"); with it
    the texts ask a bank transfer to quote it (instead of the invoice numbers, when there is no pay_url).
``reason: str | None``
    Optional, default None. Why a payment_request asks for the money (staff's words).
``deadline: date | None``
    Optional, default None. The date the reminder asks payment by; without it the texts say "as soon as
    possible" (or "immediately" in the firm tone).

Templates also see ``locale`` (the formatting locale, e.g. "nl_BE"), ``language`` ("nl"), ``channel``,
``tone`` and ``name``, and have the filters ``money`` (Money.format for the locale), ``date`` (babel
format_date, "long" unless told otherwise), ``percent`` and ``ucfirst``.

A template file extends its locale's ``_layout.j2`` (text pieces shared by all messages) and holds the blocks
``subject``, ``text`` and ``html``. All HTML markup lives in ``_layout.html.j2``, the only kind of file
rendered with autoescaping (select_autoescape on ``.html.j2``): text is never HTML-escaped, and every value
that reaches HTML is. An ``html`` block only passes the text macros' output to ``html_letter``; do not wrap it
in ``{% autoescape true %}``, because jinja marks what a non-escaping macro returns as safe when it is called
there, and a debtor name would reach the HTML unescaped (the tests check this). Each block is rendered on its
own.

Errors: an unknown name, locale, channel or tone raises :class:`TemplateNotFound` (code
``unknown_template``); anything that goes wrong while rendering, a missing context variable first of all
(StrictUndefined), raises :class:`TemplateRenderError` (code ``template_failed``) with the reason, so that
the caller can fail that one message visibly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_percent

from core.errors import DomainError
from core.money import Money, babel_locale

TEMPLATE_NAMES: tuple[str, ...] = (
    "invoice_delivery",  # stage "issued": the invoice itself
    "reminder_before_due",  # a few days before the due date
    "reminder_due_today",
    "reminder_overdue",  # first reminder after the due date
    "reminder_second",  # second reminder, may carry a fee
    "final_notice",  # statutory interest; next step is a collection agency
    "agency_handoff",  # the claim went to a collection agency
)
# Payment-plan messages (core/plans/messages.py documents the context they add); not dunning stages.
PLAN_TEMPLATE_NAMES: tuple[str, ...] = ("instalment_reminder", "plan_confirmed")
# A personal payment request (staff or API): an amount, a reason, maybe invoices; not a dunning stage.
REQUEST_TEMPLATE_NAMES: tuple[str, ...] = ("payment_request",)
# Templates that may be rendered about no invoice at all (``invoices`` empty).
WITHOUT_INVOICES: frozenset[str] = frozenset({"payment_request"})
TONES: tuple[str, ...] = ("friendly", "neutral", "firm")
CHANNELS: tuple[str, ...] = ("email", "sms", "telegram", "whatsapp")
LOCALES: tuple[str, ...] = ("en", "nl")

# Every message needs these, whether or not a given channel and tone print them.
_REQUIRED: tuple[str, ...] = ("debtor_name", "creditor_name", "invoices", "total")
# Optional context variables; anything else a template uses must be passed (StrictUndefined).
_OPTIONAL: dict[str, object] = {
    "pay_url": None,
    "fee": None,
    "interest_rate": None,
    "deadline": None,
    "payment_reference": None,
    "reason": None,
}


@dataclass
class TemplateNotFound(DomainError):
    code: str = "unknown_template"

    status = 422


@dataclass
class TemplateRenderError(DomainError):
    code: str = "template_failed"

    status = 500


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None


def _root() -> Path:
    """The templates/ folder: in the source tree, or in the working directory of an installed copy."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        folder = candidate / "templates"
        if (folder / "messages").is_dir():
            return folder
    raise RuntimeError("templates/messages not found; run duebot from the project folder")


def _locale_of(context: jinja2.runtime.Context) -> str:
    return str(context["locale"])


@jinja2.pass_context
def _money(context: jinja2.runtime.Context, value: object) -> str:
    if not isinstance(value, Money):
        raise TypeError(f"money filter expects Money, got {type(value).__name__}")
    return value.format(_locale_of(context))


@jinja2.pass_context
def _date(context: jinja2.runtime.Context, value: object, format: str = "long") -> str:
    if not isinstance(value, date):
        raise TypeError(f"date filter expects a date, got {type(value).__name__}")
    return str(format_date(value, format=format, locale=babel_locale(_locale_of(context))))


@jinja2.pass_context
def _percent(context: jinja2.runtime.Context, value: object) -> str:
    """An annual percentage ("8", "12.15", "12.15%", Decimal) per locale: "12.15%" (en), "12,15%" (nl)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"percent filter expects a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(str(value).strip().removesuffix("%").strip())
    except InvalidOperation:
        raise ValueError(f"interest rate {value!r} is not a number") from None
    return str(format_percent(number / 100, locale=_locale_of(context), decimal_quantization=False))


def _printable(value: object) -> object:
    """Every printed value: None is a bug in the context (or a missing guard), never the word "None"."""
    if value is None:
        raise ValueError("a template printed None; that value is required or must be guarded")
    return value


def _ucfirst(value: object) -> str:
    text = str(value)
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_root()),
        # Only the HTML layouts (*.html.j2) escape; text blocks must stay as written.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        finalize=_printable,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(money=_money, date=_date, percent=_percent, ucfirst=_ucfirst)
    return env


def _resolve_locale(locale: object) -> tuple[str, str]:
    """("nl", "nl_BE") for "nl-BE": the template language, and the locale babel formats with."""
    if not isinstance(locale, str) or not locale.strip():
        raise TemplateNotFound(f"no templates for locale {locale!r}; available: {', '.join(LOCALES)}")
    tag = locale.strip().replace("-", "_")
    language = tag.split("_", 1)[0].split(".", 1)[0].lower()
    if language not in LOCALES:
        raise TemplateNotFound(f"no templates for locale {locale!r}; available: {', '.join(LOCALES)}")
    try:
        parsed = Locale.parse(tag)
    except (ValueError, TypeError, UnknownLocaleError):
        return language, language
    return language, (str(parsed) if parsed.language == language else language)


def _check(kind: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise TemplateNotFound(f"unknown {kind} {value!r}; expected one of: {', '.join(allowed)}")
    return value


_BLANK_LINES = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, no blank edges."""
    lines = (line.rstrip() for line in text.strip().splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def _one_line(text: str) -> str:
    """Subjects and SMS: one line, plain spaces (no header injection, no UCS-2 for a no-break space)."""
    return " ".join(text.split())


def render(name: str, locale: str, channel: str, tone: str, **ctx: Any) -> Rendered:
    """Render debtor message ``name`` for a locale ("nl", "nl_BE", "en-GB"), channel and tone."""
    _check("template", name, TEMPLATE_NAMES + PLAN_TEMPLATE_NAMES + REQUEST_TEMPLATE_NAMES)
    _check("channel", channel, CHANNELS)
    _check("tone", tone, TONES)
    language, fmt_locale = _resolve_locale(locale)
    path = f"messages/{language}/{name}.j2"
    where = f"{name} ({language}, {channel}, {tone})"
    try:
        template = environment().get_template(path)
    except jinja2.TemplateNotFound:
        raise TemplateNotFound(f"template {path} is missing") from None
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(f"template {where} is broken: {exc}") from exc

    missing = [key for key in _REQUIRED if key not in ctx]
    if missing:
        raise TemplateRenderError(f"template {where} failed: {', '.join(missing)} missing from the context")
    invoices = ctx["invoices"]
    if isinstance(invoices, str | bytes | Mapping) or not hasattr(invoices, "__iter__"):
        raise TemplateRenderError(f"template {where} failed: invoices must be a list of invoices")
    invoices = list(invoices)  # the templates walk it more than once
    if not invoices and name not in WITHOUT_INVOICES:
        raise TemplateRenderError(f"template {where} failed: invoices is empty; a message names at least one")
    pay_url = ctx.get("pay_url")
    if pay_url is not None and not (isinstance(pay_url, str) and pay_url.startswith(("https://", "http://"))):
        raise TemplateRenderError(f"template {where} failed: pay_url must be an http(s) URL, got {pay_url!r}")
    variables: dict[str, Any] = {**_OPTIONAL, **ctx}
    variables.update(
        invoices=invoices, name=name, locale=fmt_locale, language=language, channel=channel, tone=tone
    )
    try:
        blocks = _blocks(template, variables)
        email = channel == "email"
        subject = _one_line(blocks("subject")) if email else None
        text = blocks("text")
        text = _one_line(text) if channel == "sms" else _tidy(text)
        html = _tidy(blocks("html")) if email else None
    except TemplateRenderError:
        raise
    except Exception as exc:  # any failure fails this one message, with the reason
        reason = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
        raise TemplateRenderError(f"template {where} failed: {reason}") from exc
    if not text or (email and not (subject and html)):
        raise TemplateRenderError(f"template {where} rendered an empty subject, text or html")
    return Rendered(subject=subject, text=text, html=html)


def _blocks(template: jinja2.Template, variables: Mapping[str, Any]) -> Callable[[str], str]:
    """A function rendering one named block of ``template``.

    The template's top-level code (its macros, the layout's macros and sets) runs once first; message
    templates extend a layout without blocks, so that pass renders nothing of their own.
    """
    context = template.new_context(dict(variables))
    _drain(template.root_render_func(context))

    def block(name: str) -> str:
        found = context.blocks.get(name)
        if not found:
            raise TemplateRenderError(f"template {template.name} has no {name} block")
        return "".join(found[0](context))

    return block


def _drain(chunks: Iterator[str]) -> None:
    for _ in chunks:
        pass
