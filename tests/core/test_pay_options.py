"""EPC069-12 payloads, QR images that a reader decodes back, and RF references."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image
from stdnum import iso11649

from core.money import Money
from core.payments import qr
from core.payments.reference import make_reference


def decode(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


def test_the_epc_payload_has_the_exact_layout() -> None:
    payload = qr.epc_payload(
        name="Bakkerij Smit B.V.",
        iban="nl91 abna 0417 1643 00",
        bic="ABNANL2A",
        amount=Money(12_050, "EUR"),
        reference="RF18 5390 0754 7034",
    )
    assert payload == (
        "BCD\n002\n1\nSCT\nABNANL2A\nBakkerij Smit B.V.\nNL91ABNA0417164300\nEUR120.50\n\nRF18539007547034"
    )
    without_bic = qr.epc_payload(
        name="Smit", iban="NL91ABNA0417164300", amount=Money(1, "EUR"), text="Invoice 2026-001"
    )
    assert without_bic.split("\n") == [
        "BCD",
        "002",
        "1",
        "SCT",
        "",
        "Smit",
        "NL91ABNA0417164300",
        "EUR0.01",
        "",
        "",
        "Invoice 2026-001",
    ]


def test_the_epc_qr_decodes_back_to_its_fields_with_a_qr_reader() -> None:
    ref = make_reference("2026000042")
    payload = qr.epc_payload(
        name="Café Ünïcode", iban="NL91ABNA0417164300", amount=Money(999_999, "EUR"), reference=ref
    )
    fields = decode(qr.png(payload)).split("\n")
    assert fields[:4] == ["BCD", "002", "1", "SCT"]
    assert fields[5] == "Café Ünïcode"
    assert fields[6] == "NL91ABNA0417164300" and fields[7] == "EUR9999.99"
    assert iso11649.is_valid(fields[9]) and fields[9] == ref


def test_a_checkout_url_qr_decodes_to_the_url() -> None:
    url = "https://www.mollie.com/checkout/select-method/tr_fake1"
    assert decode(qr.png(url)) == url


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"amount": Money(1000, "USD")}, "euro amounts only"),
        ({"iban": "NL92ABNA0417164300"}, "IBAN"),  # bad check digits
        ({"bic": "NOTABIC!"}, "BIC"),
        ({"reference": "RF19539007547034"}, "RF"),  # bad check digits
        ({"name": "x" * 71}, "70 characters"),
        ({"amount": Money(100_000_000_000, "EUR")}, "999,999,999.99"),
    ],
)
def test_what_cannot_go_into_an_epc_code_is_refused_with_the_reason(
    kwargs: dict[str, object], reason: str
) -> None:
    args: dict[str, object] = {
        "name": "Smit",
        "iban": "NL91ABNA0417164300",
        "amount": Money(100, "EUR"),
        "reference": "RF18539007547034",
        **kwargs,
    }
    with pytest.raises(qr.EpcUnavailable) as err:
        qr.epc_payload(**args)  # type: ignore[arg-type]
    assert reason in err.value.reason


def test_the_checkout_description_speaks_the_debtors_language() -> None:
    from core.payments.texts import checkout_description

    assert checkout_description("en", ["2026-001"], "Acme B.V.") == "Invoice 2026-001 - Acme B.V."
    many = [f"2026-{i:03d}" for i in range(1, 9)]
    assert checkout_description("nl_BE", many, "Acme") == (
        "Facturen 2026-001, 2026-002, 2026-003, 2026-004, 2026-005 en nog 3 - Acme"
    )
    assert checkout_description("fr", ["X"], "Acme") == "Invoice X - Acme"  # English otherwise
    assert len(checkout_description("en", ["N" * 60] * 5, "A" * 200)) == 255
