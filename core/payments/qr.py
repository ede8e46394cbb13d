"""Pay-option images: the EPC069-12 SEPA credit-transfer QR ("GiroCode") and a QR of a checkout URL.

EPC payload, version 002 (REFERENCE.md), lines joined by ``\\n``::

    BCD / 002 / 1 (UTF-8) / SCT / BIC (optional) / name (≤ 70) / IBAN / EUR12.34 /
    purpose (empty) / RF reference (≤ 35) / unstructured text (≤ 140, empty with a reference) /
    information (≤ 70)

Trailing empty lines are left off. Euro only (0.01 to 999,999,999.99); at most 331 bytes; error
correction level M. Anything that cannot go into a valid code raises :class:`EpcUnavailable` with
the reason, which the caller logs before leaving the EPC code out.
"""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError

from core.money import Money, format_minor
from core.payments.reference import normalize

EPC_MAX_BYTES = 331
EPC_MAX_MINOR = 99_999_999_999


class EpcUnavailable(ValueError):
    """No EPC QR code can be made; ``reason`` says why (logged by the caller)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def checked_iban(value: str) -> str:
    """The IBAN in compact form, or EpcUnavailable when its check digits or format are wrong."""
    try:
        return str(stdnum_iban.validate(value))
    except ValidationError as exc:
        raise EpcUnavailable(f"the creditor IBAN {value!r} is not valid: {exc}") from exc


def epc_payload(
    *,
    name: str,
    iban: str,
    amount: Money,
    reference: str | None = None,
    text: str | None = None,
    bic: str | None = None,
    information: str | None = None,
) -> str:
    if amount.currency != "EUR":
        raise EpcUnavailable(f"EPC QR codes carry euro amounts only, not {amount.currency}")
    if not 1 <= amount.minor <= EPC_MAX_MINOR:
        raise EpcUnavailable("an EPC QR amount is between EUR 0.01 and EUR 999,999,999.99")
    name = " ".join(name.split())
    if not 1 <= len(name) <= 70:
        raise EpcUnavailable("the creditor name must be 1 to 70 characters")
    compact_iban = checked_iban(iban)
    compact_bic = ""
    if bic:
        try:
            compact_bic = str(stdnum_bic.validate(bic))
        except ValidationError as exc:
            raise EpcUnavailable(f"the creditor BIC {bic!r} is not valid: {exc}") from exc
    rf = ""
    if reference:
        found = normalize(reference)
        if found is None:
            raise EpcUnavailable(f"{reference!r} is not a valid RF creditor reference")
        rf = found
    unstructured = "" if rf else " ".join((text or "").split())
    if len(unstructured) > 140:
        raise EpcUnavailable("the remittance text is longer than 140 characters")
    info = " ".join((information or "").split())
    if len(info) > 70:
        raise EpcUnavailable("the information line is longer than 70 characters")
    lines = [
        "BCD",
        "002",
        "1",
        "SCT",
        compact_bic,
        name,
        compact_iban,
        f"EUR{format_minor(amount.minor, 'EUR')}",
        "",
        rf,
        unstructured,
        info,
    ]
    payload = "\n".join(lines).rstrip("\n")
    if len(payload.encode("utf-8")) > EPC_MAX_BYTES:
        raise EpcUnavailable(f"the EPC payload is longer than {EPC_MAX_BYTES} bytes")
    return payload


def png(data: str, *, box_size: int = 6, border: int = 4) -> bytes:
    """A PNG image of a QR code holding ``data`` (UTF-8, byte mode, error correction M)."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(data.encode("utf-8"))
    code.make(fit=True)
    out = io.BytesIO()
    code.make_image().save(out, format="PNG")
    return out.getvalue()
