"""PaymentProvider adapters (core/ports.py). The composition roots pick one from the settings."""

from __future__ import annotations

from core.config import Settings
from core.ports import PaymentProvider


def from_settings(settings: Settings) -> PaymentProvider | None:
    """Mollie when MOLLIE_API_KEY is set; otherwise None (pay options fall back to EPC QR + RF)."""
    if settings.mollie_api_key is None:
        return None
    from core.payments.providers.mollie import MollieProvider

    return MollieProvider.from_settings(settings)
