"""CAMT.053 (pycamt) and MT940 (mt-940) files → plain statement lines.

A file that does not parse is refused as a whole, with the line of the file where it went wrong.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import mt940
from lxml import etree
from pycamt.parser import Camt053Parser
from stdnum import iban as stdiban

from core.errors import FieldError, InvalidInput
from core.money import MoneyError, exponent, parse_currency

CAMT = "camt.053"
MT940 = "mt940"
NOT_PROVIDED = {"NOTPROVIDED", "NONREF", ""}


@dataclass
class Line:
    """One transaction of a statement. ``amount_minor`` is unsigned; ``credit`` says which way."""

    position: int
    source_line: int | None
    account_iban: str | None
    statement_ref: str
    entry_index: int  # the transaction's place inside its entry (CAMT batch entries hold several)
    statement_position: int  # 1-based place inside its own statement
    bank_reference: str | None
    booking_date: date
    value_date: date | None
    credit: bool
    amount_minor: int
    currency: str
    counterparty_iban: str | None = None
    counterparty_name: str | None = None
    reference: str | None = None  # EndToEndId / EREF / customer reference
    remittance: str | None = None
    ignore_reason: str | None = None  # debit, reversal, not_booked


@dataclass
class ParsedFile:
    format: str
    account_iban: str | None
    statement_ref: str
    lines: list[Line] = field(default_factory=list)


def refuse(message: str, line: int | None = None, code: str = "unreadable_statement") -> InvalidInput:
    where = f" (line {line})" if line else ""
    return InvalidInput(
        f"the bank file was refused{where}: {message}; nothing was imported",
        code,
        [FieldError(("file",), message, code, line=line)],
    )


def parse(data: bytes) -> ParsedFile:
    """Detect the format (XML → CAMT.053, ``:20:`` tags → MT940) and parse the whole file."""
    body = data.removeprefix(b"\xef\xbb\xbf")
    stripped = body.lstrip()
    if not stripped:
        raise refuse("the file is empty", code="empty_statement")
    if stripped.startswith(b"<"):
        return parse_camt(body)
    text = _decode(body)
    if re.search(r"^:20:", text, re.MULTILINE):
        return parse_mt940(text)
    raise refuse("this is neither a CAMT.053 XML file nor an MT940 statement", code="unknown_format")


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")  # older MT940 exports; every byte is a character


def _minor(amount: Decimal, currency: str, line: int | None) -> int:
    scaled = abs(amount).scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise refuse(f"amount {amount} has more decimals than {currency} allows", line)
    return int(scaled)


def _currency(code: str | None, line: int | None) -> str:
    try:
        return parse_currency(code)
    except MoneyError:
        raise refuse(f"unknown currency {code!r}", line) from None


def _clean(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:limit] or None


def _iban(value: str | None) -> str | None:
    if not value:
        return None
    return _valid_iban(value)


@functools.lru_cache(maxsize=65_536)
def _valid_iban(value: str) -> str | None:
    """Checking an IBAN against the registry is slow, and a statement repeats its payers' IBANs."""
    compact = stdiban.compact(value)
    return compact if stdiban.is_valid(compact) else None


# --------------------------------------------------------------------------- CAMT.053


def _text(element: Any, path: str, ns: dict[Any, str]) -> str | None:
    found = element.find(path, ns)
    return found.text.strip() if found is not None and found.text else None


def _date(value: str | None, line: int | None, what: str) -> date:
    try:
        return date.fromisoformat((value or "")[:10])
    except ValueError:
        raise refuse(f"the {what} {value!r} is not a date", line) from None


def parse_camt(body: bytes) -> ParsedFile:
    try:
        parser = Camt053Parser(body)
    except etree.XMLSyntaxError as exc:
        raise refuse(f"the XML is not well-formed: {exc.msg}", exc.lineno) from None
    root = parser.tree
    if "camt.053" not in (etree.QName(root).namespace or ""):
        raise refuse(f"the XML is not a camt.053 statement (root element {etree.QName(root).localname})", 1)
    ns = {k: v for k, v in parser.namespaces.items()}
    statements = root.findall(".//Stmt", ns)
    if not statements:
        raise refuse("the camt.053 document holds no <Stmt> statement", root.sourceline)
    out: list[Line] = []
    refs: list[str] = []
    first_iban: str | None = None
    for stmt in statements:
        stmt_id = _text(stmt, "Id", ns)
        if not stmt_id:
            raise refuse("a <Stmt> has no <Id>", stmt.sourceline)
        account = _iban(_text(stmt, "Acct/Id/IBAN", ns)) or _text(stmt, "Acct/Id/Othr/Id", ns)
        first_iban = first_iban or account
        refs.append(stmt_id)
        first = len(out)
        for entry in stmt.findall("Ntry", ns):
            out.extend(_camt_entry(entry, ns, account, stmt_id, len(out), len(out) - first))
    return ParsedFile(CAMT, first_iban, " ".join(refs)[:255], out)


def _found_text(element: Any, path: str, ns: dict[Any, str]) -> str | None:
    found = element.find(path, ns)
    return found.text if found is not None else None


def _camt_transactions(entry: Any, ns: dict[Any, str]) -> list[dict[str, Any]]:
    """The fields of ``pycamt``'s ``Camt053Parser._extract_transaction`` that a line uses, by the same
    paths and with the same precedence (each transaction's own values over its entry's, empty ones
    dropped), looked up once each. The library's version also searches the whole statement for its
    IBAN on every entry, which makes a 50,000-entry file take minutes."""
    common: dict[str, Any] = {
        "TransactionID": _found_text(entry, ".//AcctSvcrRef", ns),
        "Amount": _found_text(entry, ".//Amt", ns),
        "CreditDebitIndicator": _found_text(entry, ".//CdtDbtInd", ns),
        "AdditionalEntryInformation": _found_text(entry, ".//AddtlNtryInf", ns),
    }
    out: list[dict[str, Any]] = []
    for details in entry.findall(".//NtryDtls", ns):
        for tx in details.findall(".//TxDtls", ns):
            ustrd = tx.findall(".//RmtInf//Ustrd", ns)
            data: dict[str, Any] = {
                "EndToEndId": _found_text(tx, ".//Refs//EndToEndId", ns),
                "Amount": _found_text(tx, ".//Amt", ns),
                "CreditorName": _found_text(tx, ".//RltdPties//Cdtr//Nm", ns),
                "CreditorIBAN": _found_text(tx, ".//RltdPties//CdtrAcct//Id//IBAN", ns),
                "DebtorName": _found_text(tx, ".//RltdPties//Dbtr//Nm", ns),
                "DebtorIBAN": _found_text(tx, ".//RltdPties//DbtrAcct//Id//IBAN", ns),
                "RemittanceInformation": ustrd[0].text if ustrd else None,
                "RemittanceInformationFull": " ".join(u.text.strip() for u in ustrd if u.text)
                if ustrd
                else None,
            }
            structured = tx.find(".//RmtInf//Strd", ns)
            if structured is not None:
                data["RemittanceInformation"] = _found_text(structured, ".//CdtrRefInf//Ref", ns)
                data["AdditionalRemittanceInformation"] = _found_text(structured, ".//AddtlRmtInf", ns)
            indicator = tx.find(".//CdtDbtInd", ns)
            if indicator is not None:
                data["CreditDebitIndicator"] = indicator.text
            out.append(common | {k: v for k, v in data.items() if v is not None})
    return out or [common]


def _camt_entry(
    entry: Any,
    ns: dict[Any, str],
    account: str | None,
    stmt_id: str,
    seen: int,
    seen_here: int,
) -> list[Line]:
    line = entry.sourceline
    amt = entry.find("Amt", ns)
    if amt is None or not (amt.text or "").strip():
        raise refuse("an <Ntry> has no <Amt>", line)
    currency = _currency(amt.get("Ccy"), line)
    indicator = _text(entry, "CdtDbtInd", ns)
    if indicator not in ("CRDT", "DBIT"):
        raise refuse(f"<CdtDbtInd> must be CRDT or DBIT, not {indicator!r}", line)
    booked_text = _text(entry, "BookgDt/Dt", ns) or _text(entry, "BookgDt/DtTm", ns)
    value_text = _text(entry, "ValDt/Dt", ns) or _text(entry, "ValDt/DtTm", ns)
    if not booked_text and not value_text:
        raise refuse("an <Ntry> has neither <BookgDt> nor <ValDt>", line)
    booked = _date(booked_text or value_text, line, "booking date")
    valued = _date(value_text, line, "value date") if value_text else None
    status = (_text(entry, "Sts/Cd", ns) or _text(entry, "Sts", ns) or "BOOK").upper()
    reversal = (_text(entry, "RvslInd", ns) or "").lower() == "true"
    # The library's per-entry extraction keeps each transaction of a batch entry with its entry.
    txs = _camt_transactions(entry, ns)
    lines: list[Line] = []
    for index, tx in enumerate(txs):
        try:
            amount = Decimal(str(tx.get("Amount") or amt.text).strip())
        except InvalidOperation:
            raise refuse(f"the amount {tx.get('Amount')!r} is not a number", line) from None
        if amount <= 0:
            raise refuse("an amount must be greater than zero", line)
        credit = (tx.get("CreditDebitIndicator") or indicator) == "CRDT"
        e2e = tx.get("EndToEndId")
        texts = [
            tx.get("RemittanceInformationFull"),
            tx.get("RemittanceInformation"),
            tx.get("AdditionalRemittanceInformation"),
            tx.get("AdditionalEntryInformation"),
        ]
        remittance = " ".join(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
        party = "Debtor" if credit else "Creditor"
        ignore = None
        if status != "BOOK":
            ignore = "not_booked"
        elif reversal:
            ignore = "reversal"
        elif not credit:
            ignore = "debit"
        lines.append(
            Line(
                position=seen + len(lines) + 1,
                source_line=line,
                account_iban=account,
                statement_ref=stmt_id,
                entry_index=index,
                statement_position=seen_here + len(lines) + 1,
                bank_reference=_clean(tx.get("TransactionID") or _text(entry, "NtryRef", ns), 64),
                booking_date=booked,
                value_date=valued,
                credit=credit,
                amount_minor=_minor(amount, currency, line),
                currency=currency,
                counterparty_iban=_iban(tx.get(f"{party}IBAN")),
                counterparty_name=_clean(tx.get(f"{party}Name"), 140),
                reference=_clean(e2e if e2e and e2e.upper() not in NOT_PROVIDED else None, 140),
                remittance=_clean(remittance, 1000),
                ignore_reason=ignore,
            )
        )
    return lines


# --------------------------------------------------------------------------- MT940

_SWIFT_KEYS = (
    "TRTP|IBAN|BIC|NAME|REMI|EREF|CNTP|ORDP|MARF|CSID|BENM|ULTD|ULTC|PREF|RTRN|SVCL|ISDT|ADDR|PURP|KREF|OCMT"
)
_FIELD = re.compile(rf"/({_SWIFT_KEYS})/")
_IBAN_LIKE = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b")


def details_fields(details: str) -> dict[str, str]:
    """Structured ``:86:`` text (``/IBAN/…/NAME/…/REMI/…``, as Dutch and many SEPA banks send it)."""
    found = list(_FIELD.finditer(details))
    out: dict[str, str] = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(details)
        value = details[m.end() : end].strip().strip("/")
        out.setdefault(m.group(1), value)
    remi = out.get("REMI", "")
    if remi.upper().startswith("USTD//"):
        out["REMI"] = remi[6:]
    return out


def parse_mt940(text: str) -> ParsedFile:
    lines = text.splitlines()
    starts = [i for i, raw in enumerate(lines) if raw.startswith(":20:")]
    out: list[Line] = []
    refs: list[str] = []
    first_iban: str | None = None
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        block = lines[start:end]
        stmt = _mt940_block(block, start + 1)
        account = _iban(stmt.data.get("account_identification")) or _clean(
            stmt.data.get("account_identification"), 34
        )
        first_iban = first_iban or account
        ref = f"{stmt.data.get('transaction_reference', '')}/{stmt.data.get('statement_number', '')}"
        ref += f"/{stmt.data.get('sequence_number') or ''}"
        refs.append(ref)
        tx_lines = [start + 1 + i for i, raw in enumerate(block) if raw.startswith(":61:")]
        for index, tx in enumerate(stmt):
            line = _mt940_line(tx.data, account, ref, len(out) + 1, tx_lines[index])
            line.statement_position = index + 1
            out.append(line)
    return ParsedFile(MT940, first_iban, " ".join(refs)[:255], out)


@contextmanager
def _quiet_mt940() -> Iterator[None]:
    """mt-940 logs every pattern mismatch at ERROR; the refusal we raise says it once, with the line."""
    log = logging.getLogger("mt940")
    previous = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(previous)


def _mt940_block(block: list[str], first_line: int) -> mt940.models.Transactions:
    if not any(raw.startswith(":25:") for raw in block):
        raise refuse("the statement has no :25: account line", first_line)
    if not any(raw.startswith((":60F:", ":60M:")) for raw in block):
        raise refuse("the statement has no :60F: opening balance", first_line)
    statement = mt940.models.Transactions()
    try:
        with _quiet_mt940():
            statement.parse("\n".join(block))
    except RuntimeError as exc:
        bad = str(exc.args[2]) if len(exc.args) > 2 else ""
        head = bad.splitlines()[0] if bad else ""
        where = next((first_line + i for i, raw in enumerate(block) if head and head in raw), first_line)
        raise refuse(f"cannot read {block[where - first_line][:60]!r}", where) from None
    except (ValueError, InvalidOperation, KeyError, TypeError) as exc:
        raise refuse(f"cannot read the statement: {exc}", first_line) from None
    return statement


def _mt940_line(data: dict[str, Any], account: str | None, ref: str, position: int, where: int) -> Line:
    amount = data["amount"]
    currency = _currency(getattr(amount, "currency", None) or data.get("currency"), where)
    status = str(data.get("status", ""))
    details = " ".join(str(data.get("transaction_details") or "").split())
    fields = details_fields(details)
    cntp = fields.get("CNTP", "").split("/")
    counter_iban = _iban(fields.get("IBAN")) or _iban(cntp[0] if cntp else None)
    if counter_iban is None:
        counter_iban = next(
            (c for m in _IBAN_LIKE.finditer(details) if (c := _iban(m.group())) and c != account), None
        )
    name = fields.get("NAME") or (cntp[2] if len(cntp) > 2 else None)
    eref = fields.get("EREF")
    customer = str(data.get("customer_reference") or "").strip()
    reference = next((r for r in (eref, customer) if r and r.upper() not in NOT_PROVIDED), None)
    remittance = fields.get("REMI") or details
    ignore = "reversal" if status.startswith("R") else ("debit" if status == "D" else None)
    value = data.get("date")
    booked = data.get("entry_date") or value
    if booked is None:
        raise refuse("a :61: line has no value date", where)
    return Line(
        position=position,
        source_line=where,
        account_iban=account,
        statement_ref=ref,
        entry_index=0,
        statement_position=position,
        bank_reference=_clean(data.get("bank_reference"), 64),
        booking_date=date(booked.year, booked.month, booked.day),
        value_date=date(value.year, value.month, value.day) if value else None,
        credit=status.endswith("C"),
        amount_minor=_minor(Decimal(amount.amount), currency, where),
        currency=currency,
        counterparty_iban=counter_iban,
        counterparty_name=_clean(name, 140),
        reference=_clean(reference, 140),
        remittance=_clean(remittance, 1000),
        ignore_reason=ignore,
    )
