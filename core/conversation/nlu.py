"""Free-text understanding for the debtor chat, in English and Dutch.

A :class:`Classifier` turns a message into an :class:`Understanding`: an intent, a confidence and,
where the text names one, a date. The :class:`RulesClassifier` scores weighted keyword patterns per
language; a model-based classifier can replace it later (anything with the same ``classify``).

Dates come from dateparser (``PREFER_DATES_FROM: future``, relative to the debtor's local "now"),
after a few normalisations it lacks ("end of the month", "day after tomorrow", number words). The
engine never acts on a date or amount found here without confirming it with the debtor first.
"""

from __future__ import annotations

import calendar
import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from dateparser.search import search_dates


class Intent(StrEnum):
    balance = "balance"
    invoices = "invoices"
    pay = "pay"
    plan = "plan"
    promise = "promise"
    paid = "paid"  # "I already paid"
    dispute = "dispute"
    human = "human"
    stop = "stop"
    help = "help"
    channel = "channel"
    language = "language"
    yes = "yes"
    no = "no"
    unknown = "unknown"


@dataclass(frozen=True)
class Understanding:
    intent: Intent
    confidence: float  # 0..1
    date: date | None = None
    date_text: str | None = None

    @property
    def sure(self) -> bool:
        return self.intent is not Intent.unknown and self.confidence >= SURE


SURE = 0.6


class Classifier(Protocol):
    def classify(self, text: str, *, locale: str, now: datetime) -> Understanding:
        """``now`` is the debtor's local time (naive or aware), the base for relative dates."""
        ...


# (pattern, weight) per intent; patterns are regular expressions matched on lower-case text with
# word boundaries. Multi-word phrases weigh more than single words, so "already paid the invoice"
# is a payment claim and not a request for the invoice.
_P = dict[Intent, list[tuple[str, float]]]

_EN: _P = {
    Intent.balance: [
        (r"balance", 2),
        (r"how much", 2),
        (r"\bowe\b", 2),
        (r"outstanding", 1.5),
        (r"amount (due|open|outstanding)", 2),
        (r"what do i (still )?have to pay", 2.5),
        (r"\btotal\b", 1),
        (r"\bstatement\b", 1.5),
        (r"left to pay|still (owe|open|due)", 2.5),
    ],
    Intent.invoices: [
        (r"invoices?\b", 1.5),
        (r"\bbills?\b", 1.5),
        (r"\bpdf\b", 2),
        (r"\bcopy\b", 1.5),
        (r"send (me )?(the|my|a) (invoice|bill|copy)", 2),
        (r"(never|not|didn'?t) (got|get|received?) (the|my|an?) (invoice|bill)", 5),
        (r"\bdocument", 1.5),
    ],
    Intent.pay: [
        (r"\bpay now\b", 3),
        (r"payment link", 3),
        (r"\blink\b", 2),
        (r"how (can|do|should) i pay", 3),
        (r"\biban\b", 2.5),
        (r"\bqr\b", 2.5),
        (r"bank (details|account)|account number", 2.5),
        (r"\bpay online\b", 3),
        (r"\bideal\b", 2),
        (r"want to pay", 2),
        (r"where (can|do) i pay", 3),
        (r"^pay$", 3),
        (r"\bpay\b", 0.5),
    ],
    Intent.plan: [
        (r"payment plan", 4),
        (r"\bplan\b", 2),
        (r"instal+ments?", 4),
        (r"in (parts|portions|pieces|chunks)", 3),
        (r"\bmonthly\b", 2.5),
        (r"per month|a month|each month|every month", 2.5),
        (r"spread|\bsplit\b", 3),
        (r"arrangement", 3),
        (r"can'?t pay (it )?all|cannot pay (it )?all|not all at once|in one go", 3),
        (r"pay (it )?off (slowly|gradually|over)", 3),
    ],
    Intent.promise: [
        (r"i'?ll pay|i will pay|i am going to pay|i'm going to pay|gonna pay", 3),
        (r"i (can|could) pay (it )?(on|by|next|tomorrow|after|before|at|in)", 3),
        (r"pay (it |you |the rest )?(on|by|next|tomorrow|after|before|at the end|at|in \d)", 2),
        (r"\bpromise", 3),
        (r"i'?ll (clear|settle|transfer|send)|payment (is )?coming", 3),
        (r"will (transfer|send)", 3),
        (r"(transfer|send) (it|the money) (on|by|next|tomorrow)", 3),
        (r"payday|pay ?day|when i get paid|salary", 2.5),
        (r"you('ll| will) (have|get) (it|the money|your money)", 3),
    ],
    Intent.paid: [
        (r"already paid", 5),
        (r"\bi (have |'ve |just )?paid\b", 4),
        (r"i'?ve paid|i have paid|has been paid|was paid|paid (it|this|that|the|last|yesterday|already)", 4),
        (r"(already |have )?(transferred|sent) (it|the money|the payment|you)", 3),
        (r"payment (was|has been) (made|sent|done)", 4),
        (r"paid (it )?(on|last)", 2),
        (r"\bpaid\b", 2),
    ],
    Intent.dispute: [
        (r"dispute", 4),
        (r"\bwrong\b", 3),
        (r"incorrect", 3),
        (r"not mine|isn'?t mine", 3.5),
        (r"never (ordered|received|got|bought|asked)", 4),
        (r"(didn'?t|did not|don'?t|do not) (order|receive|recognise|recognize|agree)", 3.5),
        (r"disagree", 3.5),
        (r"\b(error|mistake)\b", 3),
        (r"complain", 3),
        (r"overcharged|too (much|high)", 3),
        (r"\bobject", 3),
        (r"\bcontest", 3),
        (r"fraud|scam", 3),
    ],
    Intent.human: [
        (r"\bhuman\b", 4),
        (r"\b(a |real )?person\b", 3.5),
        (r"\bagent\b", 3),
        (r"\bsomeone\b|\bsomebody\b", 3),
        (r"call me|phone me|ring me", 3.5),
        (r"speak (to|with)|talk (to|with)", 3),
        (r"representative|employee|staff|operator|manager", 3),
        (r"\breal\b", 1),
    ],
    Intent.stop: [
        (r"^stop\b|\bstop (messaging|sending|texting|contacting)", 5),
        (r"unsubscribe|opt ?out", 5),
        (r"(don'?t|do not) (message|text|contact|send)", 4),
        (r"no more (messages|reminders|texts)", 5),
        (r"leave me alone", 5),
        (r"\bstop\b", 2),
    ],
    Intent.help: [
        (r"^help\b|\bhelp\b", 3),
        (r"what can you do", 4),
        (r"\bmenu\b|\boptions\b", 3),
        (r"^(hi|hello|hey|good (morning|afternoon|evening))\b", 2.5),
        (r"how does this work", 3),
    ],
    Intent.channel: [
        (r"\bchannel\b", 4),
        (r"(by|via|through|over) (e-?mail|sms|text|whatsapp|telegram)", 3),
        (r"(e-?mail|sms|whatsapp|telegram) instead", 4),
        (r"(contact|reach) me (by|on|via)", 3),
        (r"use (e-?mail|sms|text|whatsapp|telegram)", 3),
    ],
    Intent.language: [
        (r"\blanguage\b", 4),
        (r"\b(in )?(dutch|english)\b", 3),
        (r"nederlands", 3),
    ],
    Intent.yes: [
        (
            r"^(yes|yeah|yep|yup|sure|ok|okay|correct|right|confirm(ed)?|that'?s right|fine|y)( please| thanks| thank you)?[.! ]*$",
            5,
        ),
    ],
    Intent.no: [
        (r"^(no|nope|nah|cancel|wrong date|not (right|correct)|n)( thanks| thank you)?[.! ]*$", 5),
    ],
}

_NL: _P = {
    Intent.balance: [
        (r"\bsaldo\b", 3),
        (r"hoeveel", 2.5),
        (r"openstaand", 2),
        (r"staat (er )?(nog )?open", 2.5),
        (r"\bschuld", 2),
        (r"\bbedrag\b", 1.5),
        (r"wat moet ik (nog )?betalen", 3),
        (r"\btotaal\b", 1),
        (r"\bstand\b", 1.5),
        (r"\bachterstand\b", 2),
    ],
    Intent.invoices: [
        (r"\bfactu+r(en)?\b", 1.5),
        (r"\bnota'?s?\b", 1.5),
        (r"\bpdf\b", 2),
        (r"\bkopie\b", 2),
        (r"stuur (me |mij )?(de|mijn|een) (factuur|nota|kopie)", 2),
        (r"(factuur|nota|rekening) (nooit |niet )(ontvangen|gekregen|gehad)", 5),
        (r"\bdocument", 1.5),
    ],
    Intent.pay: [
        (r"betaallink|betaal ?link|betalingslink", 3),
        (r"\blink\b", 2),
        (r"hoe (kan|moet) ik (het )?betalen|hoe betaal ik|waar (kan|moet) ik betalen", 3),
        (r"\biban\b|rekeningnummer|bankgegevens", 2.5),
        (r"\bqr\b", 2.5),
        (r"nu betalen|direct betalen|online betalen|meteen betalen", 3),
        (r"\bideal\b", 2),
        (r"wil (graag )?betalen", 2),
        (r"^betalen$", 3),
        (r"\bbetalen\b", 0.5),
    ],
    Intent.plan: [
        (r"betalingsregeling|regeling", 4),
        (r"termijn(en)?", 3.5),
        (r"in (delen|stukjes|gedeelten|delen betalen)", 3),
        (r"per maand|maandelijks|elke maand", 2.5),
        (r"gespreid|spreiden", 3),
        (r"afbetal", 3),
        (r"niet (alles )?in (een|één) keer|niet alles tegelijk|kan niet alles", 3),
        (r"\bplan\b", 2),
    ],
    Intent.promise: [
        (r"ik (betaal|ga betalen|zal betalen|kan betalen)", 2.5),
        (r"betaal ik|ga ik betalen|zal ik betalen|kan ik (het )?betalen op", 2.5),
        (r"\bbeloof|\bbelofte", 3),
        (r"(maak|stort) (het|ik|het geld) .*over|overmaken op|maak ik over", 2.5),
        (r"volgende week|deze week|morgen|overmorgen|na het weekend", 1.5),
        (r"salaris|loon|als ik (mijn )?(geld|loon|salaris) (heb|krijg)", 2.5),
        (r"krijgt u (het|uw geld)|krijg je (het|je geld)", 3),
    ],
    Intent.paid: [
        (r"al betaald|reeds betaald|allang betaald|al voldaan|al overgemaakt", 5),
        (r"heb (het |de factuur |al |gisteren |vorige week )*(betaald|overgemaakt|voldaan)", 4),
        (r"is (al |reeds )?(betaald|voldaan|overgemaakt)", 4),
        (r"betaling (is )?(al |vorige week |gisteren )*(gedaan|verricht|verstuurd)", 4),
        (r"\bbetaald\b", 2),
        (r"\bovergemaakt\b", 2),
    ],
    Intent.dispute: [
        (r"klopt niet|niet (juist|correct)|onjuist", 4),
        (r"\bfout\b|vergissing|\bfoutief", 3.5),
        (r"(niet|nooit) (besteld|ontvangen|geleverd|van mij|gekregen)", 4),
        (r"ben het (er )?niet mee eens|niet eens|oneens", 3.5),
        (r"bezwaar|betwist|klacht", 4),
        (r"te (veel|hoog)", 3),
        (r"oplichting|fraude", 3),
        (r"ken (ik )?niet|herken (ik )?niet|herken deze", 3),
    ],
    Intent.human: [
        (r"medewerker|mens\b|persoon|iemand", 3.5),
        (r"bel (me|mij)|(terug)?bellen|telefonisch", 3.5),
        (r"spreken|praten met", 3),
        (r"klantenservice|echte", 2),
    ],
    Intent.stop: [
        (r"^stop\b|\bstop (met|alsjeblieft)", 5),
        (r"afmelden|uitschrijven|meld (me|mij) af", 5),
        (r"geen (berichten|herinneringen|appjes) meer", 5),
        (r"laat me (met rust|gerust)", 5),
        (r"niet meer (sturen|berichten|appen)", 4),
        (r"\bstop\b|\bstoppen\b", 2),
    ],
    Intent.help: [
        (r"^help\b|\bhelp\b|\bhulp\b", 3),
        (r"wat kun (je|jij)|wat kan ik", 4),
        (r"\bmenu\b|\bopties\b|mogelijkheden", 3),
        (r"^(hoi|hallo|hey|goedemorgen|goedemiddag|goedenavond|dag)\b", 2.5),
        (r"hoe werkt (dit|het)", 3),
    ],
    Intent.channel: [
        (r"\bkanaal\b", 4),
        (r"(per|via|over) (e-?mail|mail|sms|whatsapp|telegram)", 3),
        (r"liever (per |via )?(e-?mail|mail|sms|whatsapp|telegram)", 4),
    ],
    Intent.language: [
        (r"\btaal\b", 4),
        (r"\b(in het )?(engels|nederlands)\b", 3),
        (r"\benglish\b", 3),
    ],
    Intent.yes: [
        (
            r"^(ja|jazeker|jawel|klopt|prima|goed|ok|oké|oke|akkoord|correct|dat klopt|j)( hoor| graag| dank je| bedankt)?[.! ]*$",
            5,
        ),
    ],
    Intent.no: [
        (r"^(nee|neen|nope|annuleer|annuleren|klopt niet|n)( hoor| bedankt| dank je)?[.! ]*$", 5),
    ],
}

_PATTERNS: dict[str, list[tuple[Intent, re.Pattern[str], float]]] = {
    lang: [(intent, re.compile(p), w) for intent, items in table.items() for p, w in items]
    for lang, table in (("en", _EN), ("nl", _NL))
}
# When scores tie, the more specific (and more consequential) intent wins.
_PRIORITY = [
    Intent.yes,
    Intent.no,
    Intent.stop,
    Intent.paid,
    Intent.dispute,
    Intent.plan,
    Intent.promise,
    Intent.human,
    Intent.pay,
    Intent.balance,
    Intent.invoices,
    Intent.channel,
    Intent.language,
    Intent.help,
]
_DATED = (Intent.promise, Intent.paid)
_PAYISH = re.compile(
    r"\b(pay|paying|settle|transfer|send|money|betaal|betalen|stort|storten|geld|overmaken|krijgt|krijg)\b"
)
MIN_SCORE = 1.5


def language_of(locale: str) -> str:
    lang = (locale or "en").replace("-", "_").split("_", 1)[0].lower()
    return lang if lang in _PATTERNS else "en"


def _scores(text: str, lang: str) -> dict[Intent, float]:
    scores: dict[Intent, float] = {}
    for intent, pattern, weight in _PATTERNS[lang]:
        if pattern.search(text):
            scores[intent] = scores.get(intent, 0.0) + weight
    return scores


class RulesClassifier:
    """Weighted keywords per language; the other language is tried when the first finds nothing."""

    def classify(self, text: str, *, locale: str, now: datetime) -> Understanding:
        clean = " ".join(text.lower().replace("\u2019", "'").split())[:500]
        if not clean or not any(ch.isalpha() for ch in clean):
            return Understanding(Intent.unknown, 0.0)
        lang = language_of(locale)
        scores = _scores(clean, lang)
        if not scores:
            lang = "nl" if lang == "en" else "en"
            scores = _scores(clean, lang)
        other = "nl" if lang == "en" else "en"
        found = find_date(clean, lang, now) or find_date(clean, other, now)
        dated = found is not None and (len(found[1]) >= len(clean) / 2 or _PAYISH.search(clean) is not None)
        if dated and not scores.get(Intent.paid) and not scores.get(Intent.dispute):
            # "next Friday", "ik stort het woensdag": a date on its own or with money words, in a
            # debt chat, is a promise to pay then (confirmed before anything is recorded).
            scores[Intent.promise] = scores.get(Intent.promise, 0.0) + 1.5
        if not scores:
            return Understanding(Intent.unknown, 0.0)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], _PRIORITY.index(kv[0])))
        best, top = ranked[0]
        if top < MIN_SCORE:
            return Understanding(Intent.unknown, top / 10)
        runner = ranked[1][1] if len(ranked) > 1 else 0.0
        confidence = min(1.0, 0.5 + (top - runner) / 4 + min(top, 5) / 20)
        if best is Intent.paid:  # a payment made: the date is in the past
            found = find_date(clean, lang, now, past=True) or find_date(clean, other, now, past=True)
        if best in _DATED and found is not None:
            return Understanding(best, confidence, found[0], found[1])
        return Understanding(best, confidence)


# --------------------------------------------------------------------------- dates

_NUMBERS = {
    "en": {
        "one": "1",
        "a": "1",
        "two": "2",
        "three": "3",
        "four": "4",
        "five": "5",
        "six": "6",
        "seven": "7",
        "eight": "8",
        "nine": "9",
        "ten": "10",
        "a couple of": "2",
        "a few": "3",
    },
    "nl": {
        "een": "1",
        "één": "1",
        "twee": "2",
        "drie": "3",
        "vier": "4",
        "vijf": "5",
        "zes": "6",
        "zeven": "7",
        "acht": "8",
        "negen": "9",
        "tien": "10",
        "paar": "2",
    },
}
_UNITS = r"(days?|weeks?|months?|dagen|dag|weken|week|maanden|maand)"
_END_OF_MONTH = re.compile(
    r"end of (the |this )?month|eind(e)? (van )?(de |deze )?maand|einde maand|end of month"
)
_END_OF_NEXT_MONTH = re.compile(r"end of next month|eind(e)? (van )?volgende maand")
_DAY_AFTER = re.compile(r"(the )?day after tomorrow")
_WEEKDAYS = {
    **{
        d: i
        for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    },
    **{
        d: i
        for i, d in enumerate(
            ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
        )
    },
}
_DAY_NAMES = "|".join(_WEEKDAYS)
# "volgende week vrijdag", "friday next week": that weekday in the week after this one.
_WEEKDAY_NEXT_WEEK = re.compile(
    rf"(?:next week|volgende week|komende week) (?:on )?(?P<a>{_DAY_NAMES})"
    rf"|(?P<b>{_DAY_NAMES}) (?:of |in )?(?:next week|volgende week|komende week)"
)
_BARE_NUMBER = re.compile(r"^[\d\s.,€$£]*$")
_SETTINGS_BASE = {"PREFER_DATES_FROM": "future", "RETURN_AS_TIMEZONE_AWARE": False}


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def find_date(text: str, lang: str, now: datetime, *, past: bool = False) -> tuple[date, str] | None:
    """The first date named in ``text`` (relative to ``now``, the debtor's local time) and the words
    that named it, or None. Bare numbers ("200", "3") are never dates."""
    clean = " ".join(text.lower().split())
    today = now.date()
    if match := _END_OF_NEXT_MONTH.search(clean):
        year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        return _last_day(year, month), match.group(0)
    if match := _END_OF_MONTH.search(clean):
        return _last_day(today.year, today.month), match.group(0)
    if match := _DAY_AFTER.search(clean):
        return today + timedelta(days=2), match.group(0)
    if match := _WEEKDAY_NEXT_WEEK.search(clean):
        name = match.group("a") or match.group("b")
        monday = today + timedelta(days=7 - today.weekday())
        return monday + timedelta(days=_WEEKDAYS[name]), match.group(0)
    for word, digit in _NUMBERS.get(lang, {}).items():
        clean = re.sub(rf"\b{word} {_UNITS}\b", rf"{digit} \1", clean)
    settings = {
        **_SETTINGS_BASE,
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past" if past else "future",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = search_dates(clean, languages=[lang], settings=settings)  # type: ignore[arg-type]
        except Exception:  # dateparser raises odd errors on odd input; no date then
            return None
    for phrase, when in found or []:
        if _BARE_NUMBER.match(phrase):
            continue
        return when.date(), phrase.strip()
    return None


def parse_date(text: str, locale: str, now: datetime, *, past: bool = False) -> date | None:
    """A date the debtor typed in answer to "which date?" (either language), or None."""
    lang = language_of(locale)
    other = "nl" if lang == "en" else "en"
    found = find_date(text, lang, now, past=past) or find_date(text, other, now, past=past)
    return found[0] if found else None


_AMOUNT = re.compile(r"(?<![\d.,])(\d{1,9}(?:[.,]\d{3})*(?:[.,]\d{1,2})?)(?![\d]|[.,]\d)")


def parse_amount_minor(text: str, exponent: int = 2) -> int | None:
    """An amount typed by a debtor ("249,50", "€ 1.250,00", "1250.5") in minor units, or None.

    Exactly one amount must be in the text; anything ambiguous answers None (never a guess).
    """
    found = _AMOUNT.findall(text.replace("\u00a0", " ").replace(" ", ""))
    if len(found) != 1:
        return None
    raw = found[0]
    last_sep = max(raw.rfind("."), raw.rfind(","))
    if last_sep >= 0 and len(raw) - last_sep - 1 in (1, 2):
        whole, frac = raw[:last_sep], raw[last_sep + 1 :]
    else:
        whole, frac = raw, ""
    # "1.250" or "1,250": a thousands separator, only if the groups are of three digits.
    if last_sep >= 0 and not frac and not re.fullmatch(r"\d{1,3}([.,]\d{3})+", raw):
        return None
    digits = re.sub(r"[.,]", "", whole)
    if not digits.isdigit():
        return None
    frac = (frac + "0" * exponent)[:exponent] if exponent else ""
    return int(digits) * 10**exponent + (int(frac) if frac else 0)
