"""Settings: the one place that reads the environment (CONTRACT section 2)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/duebot.db"


class Settings(BaseSettings):
    """Built once at start-up and passed down; nothing else reads os.environ."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    test_database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/duebot_test"
    test_redis_url: str = "redis://127.0.0.1:6379/15"
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = Field(default=None, alias="DUEBOT_SECRET_KEY")
    var_dir: Path = Field(default=Path("./var"), alias="DUEBOT_VAR_DIR")
    require_services: bool = Field(default=False, alias="DUEBOT_REQUIRE_SERVICES")
    log_level: str = Field(default="INFO", alias="DUEBOT_LOG_LEVEL")

    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"

    whatsapp_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    # Outside the 24-hour window only an approved template may be sent (README, "WhatsApp").
    whatsapp_reminder_template: str | None = None
    whatsapp_reminder_template_language: str = "en"
    whatsapp_reminder_template_body_param: bool = True

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_base: str = "https://slack.com/api/"
    slack_staff_channel: str | None = None
    slack_allowed_users: str = ""
    slack_approvers: str = ""

    mollie_api_key: SecretStr | None = None
    mollie_api_base: str = "https://api.mollie.com"

    smtp_url: SecretStr | None = None
    smtp_from: str = "duebot <noreply@localhost>"
    sms_api_url: str | None = None
    sms_api_token: SecretStr | None = None

    # Outbound webhooks: events (stage reached, invoice paid, promise broken, handed to agency) are
    # POSTed, signed with HMAC-SHA256 under WEBHOOK_SECRET, to every URL here (comma-separated).
    webhook_urls: str = ""
    webhook_secret: SecretStr | None = None
    # The collection agency receives invoice.handed_to_agency events, with the evidence file, here.
    agency_webhook_url: str | None = None

    # The debtor chat: the Telegram bot's username for t.me deep links, the WhatsApp number (digits,
    # international form) for wa.me links, and the local demo chat page (on in `duebot run`).
    telegram_bot_username: str | None = None
    whatsapp_number: str | None = None
    demo_chat: bool = Field(default=False, alias="DUEBOT_DEMO_CHAT")

    creditor_name: str | None = None
    creditor_iban: str | None = None
    creditor_bic: str | None = None

    # Refund policy (README "Payments"): per calendar month (UTC), amounts as decimal strings in the
    # refund's currency. Counts and totals include refunds requested, approved and executed.
    refund_max_count_per_month: int = Field(default=50, ge=0, alias="DUEBOT_REFUND_MAX_COUNT_PER_MONTH")
    refund_max_total_per_month: str = Field(default="10000.00", alias="DUEBOT_REFUND_MAX_TOTAL_PER_MONTH")
    refund_staff_max_count_per_month: int = Field(
        default=10, ge=0, alias="DUEBOT_REFUND_STAFF_MAX_COUNT_PER_MONTH"
    )
    refund_staff_max_total_per_month: str = Field(
        default="2000.00", alias="DUEBOT_REFUND_STAFF_MAX_TOTAL_PER_MONTH"
    )
    # A refund above this amount waits for a second approver (someone other than the requester).
    refund_second_approval_above: str = Field(default="250.00", alias="DUEBOT_REFUND_SECOND_APPROVAL_ABOVE")

    # Limits of the invoice intake (documented in the README).
    batch_max_invoices: int = Field(default=10_000, alias="DUEBOT_BATCH_MAX_INVOICES")
    csv_max_rows: int = Field(default=1_000_000, alias="DUEBOT_CSV_MAX_ROWS")
    idempotency_ttl_hours: int = Field(default=24, alias="DUEBOT_IDEMPOTENCY_TTL_HOURS")
    distribution_per_hour: int = Field(default=1000, ge=1, alias="DUEBOT_DISTRIBUTION_PER_HOUR")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_endpoints(self) -> list[str]:
        return sorted(_csv_set(self.webhook_urls))

    @property
    def slack_allowed_user_ids(self) -> frozenset[str]:
        return _csv_set(self.slack_allowed_users)

    @property
    def slack_approver_ids(self) -> frozenset[str]:
        return _csv_set(self.slack_approvers)

    def ensure_secret_key(self) -> str:
        """Return DUEBOT_SECRET_KEY, generating and keeping one under var/ on first run."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.var_dir / "secret_key"
        if path.exists():
            key = path.read_text().strip()
        else:
            self.var_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            path.write_text(key)
            path.chmod(0o600)
        self.secret_key = SecretStr(key)
        return key


def _csv_set(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())
