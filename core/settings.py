"""Settings read from the environment (and a `.env` file), validated once at start-up."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.origins import parse_origin

DATA_DIR = Path("data")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


# Relying parties may cache the JWKS this long (its Cache-Control max-age), seconds.
JWKS_MAX_AGE = 300
# A process holds the signing key chain in memory at most this long (auth/signing_keys.py),
# so another process's new key reaches its JWKS within it, seconds.
SIGNING_KEYS_HELD_SECONDS = 60


class Settings(BaseSettings):
    """Every knob of the service. Names are the environment variables, upper-cased."""

    # A refused setting's value is left out of the error: it may be (or sit next to) a secret,
    # such as SMTP_URL's or DATABASE_URL's password or SECRET_KEY.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = f"sqlite://{DATA_DIR}/devicecloud.sqlite3"
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:8000"
    platform_name: str = "Device Cloud"

    access_token_lifetime: int = Field(3600, gt=0, description="seconds")
    refresh_token_lifetime: int = Field(30 * 24 * 3600, gt=0, description="seconds")
    # OpenID Connect: how long an ID token is valid; how often its signing key is replaced;
    # how long a key is published before it signs and after it stops (at least an ID token's
    # lifetime, so every token issued stays verifiable until it expires).
    id_token_lifetime: int = Field(3600, gt=0, description="seconds")
    signing_key_rotation_days: int = Field(90, gt=0)
    signing_key_overlap: int = Field(24 * 3600, gt=0, description="seconds")

    login_max_account_failures: int = Field(10, gt=0)
    login_max_address_failures: int = Field(100, gt=0)
    login_address_window: int = Field(300, gt=0, description="seconds")
    login_lockout: int = Field(1800, gt=0, description="seconds")

    max_body_bytes: int = Field(1024 * 1024, gt=0)
    max_upload_bytes: int = Field(6 * 1024 * 1024, gt=0)

    graphql_max_depth: int = Field(10, gt=0)
    graphql_max_aliases: int = Field(15, gt=0)
    graphql_max_tokens: int = Field(2000, gt=0)
    graphql_max_cost: int = Field(1000, gt=0)

    # smtp://user:pass@host:587 (STARTTLS when offered) or smtps://host:465; empty: emails are
    # written to the log instead of being delivered.
    smtp_url: str = ""
    email_from: str = ""  # default: f"{platform_name} <no-reply@localhost>"
    outbox_poll_interval: float = Field(5.0, gt=0, description="seconds")

    # Devices ping at least this often; a connection silent for twice as long is dead.
    device_keepalive: int = Field(30, gt=0, description="seconds")
    device_error_rate: float = Field(1.0, gt=0, description="error reports per second")
    device_error_burst: int = Field(10, ge=1)
    # Events a device may publish: this many a second on average, and this many at once.
    device_event_rate: float = Field(1.0, gt=0, description="events per second")
    device_event_burst: int = Field(4, ge=1)

    # Live fan-out: empty for the in-process broker (one app process), or redis://host:6379/0
    # so that every app process sees every other's events and reaches every device.
    broker_url: str = ""
    broker_channel_prefix: str = Field("devicecloud", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    event_retention_days: int = Field(30, gt=0)
    event_prune_interval: float = Field(3600.0, gt=0, description="seconds")
    code_prune_interval: float = Field(3600.0, gt=0, description="seconds")
    sse_keepalive: float = Field(15.0, gt=0, description="seconds")
    # How often a live stream checks that its subscriber may still watch (token, team).
    stream_access_check_interval: float = Field(5.0, gt=0, description="seconds")
    stream_buffer: int = Field(1000, ge=1, description="events queued per slow subscriber")
    stream_buffer_bytes: int = Field(
        1024 * 1024, gt=0, description="bytes of event names and data queued per slow subscriber"
    )
    function_call_timeout: float = Field(10.0, gt=0, description="seconds")
    # Whether data operations are counted (and the free plan's limit enforced): off only
    # where nobody is billed, such as a benchmark's baseline.
    usage_metering: bool = True
    # Seconds between two ticks of the usage scheduler (warnings, pauses, resumptions); 0 runs
    # none in this process.
    usage_tick_interval: int = Field(60, ge=0, description="seconds")
    # How long the cloud waits for a device to acknowledge an event delivered to its
    # subscription before sending it once more (and, after as long again, dropping it).
    device_delivery_ack_timeout: float = Field(10.0, gt=0, description="seconds")
    # Caps on what one caller can pile up: outstanding claim codes per customer, customers a
    # product's app creates per hour, live streams open per access token (SSE and GraphQL
    # subscriptions together, in each app process).
    claim_codes_per_customer: int = Field(10, ge=1)
    customers_per_app_per_hour: int = Field(100, ge=1)
    streams_per_token: int = Field(10, ge=1)

    # Origins (https://app.example.com, comma-separated) that may call the API from a browser
    # besides those of the WEB clients' redirect URIs.
    cors_allowed_origins: str = ""

    # Stripe stores the cards and moves the money of paid plans. Without an API key billing is
    # not configured: paid plans are refused, free ones work. The API base points the library
    # elsewhere than Stripe (a localstripe server, for development and tests).
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""

    log_level: str = "INFO"

    @property
    def development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    @property
    def issuer(self) -> str:
        return self.base_url.rstrip("/")

    @model_validator(mode="after")
    def _secret_key(self) -> Settings:
        if self.secret_key:
            if len(self.secret_key) < 32:
                raise ValueError("SECRET_KEY must be at least 32 characters long")
            return self
        if not self.development:
            raise ValueError("SECRET_KEY is required when ENVIRONMENT=production")
        self.secret_key = _development_secret_key()
        return self

    @model_validator(mode="after")
    def _signing_keys(self) -> Settings:
        if self.signing_key_overlap < self.id_token_lifetime:
            raise ValueError("SIGNING_KEY_OVERLAP must be at least ID_TOKEN_LIFETIME: a retired "
                             "key stays published until the tokens it signed expire")
        propagation = JWKS_MAX_AGE + SIGNING_KEYS_HELD_SECONDS
        if self.signing_key_overlap <= propagation:
            raise ValueError(
                f"SIGNING_KEY_OVERLAP must be longer than {propagation} seconds: a new key is "
                "published that long before it signs, and relying parties may cache the JWKS "
                f"for {JWKS_MAX_AGE} seconds after every process serves it "
                f"(within {SIGNING_KEYS_HELD_SECONDS} seconds)"
            )
        if self.signing_key_overlap >= self.signing_key_rotation_days * 86400:
            raise ValueError("SIGNING_KEY_OVERLAP must be shorter than "
                             "SIGNING_KEY_ROTATION_DAYS")
        return self

    @model_validator(mode="after")
    def _broker(self) -> Settings:
        if self.broker_url and urlsplit(self.broker_url).scheme not in ("redis", "rediss"):
            raise ValueError("BROKER_URL must be empty (in-process) or look like redis://host:6379/0")
        return self

    @property
    def cors_origins(self) -> frozenset[str]:
        """`cors_allowed_origins` as a set (checked at start-up, see `_cors`)."""
        return frozenset(o.strip() for o in self.cors_allowed_origins.split(",") if o.strip())

    @model_validator(mode="after")
    def _cors(self) -> Settings:
        for entry in self.cors_origins:
            try:
                parse_origin(entry)
            except ValueError as error:
                raise ValueError(f"CORS_ALLOWED_ORIGINS: {error}") from None
        return self

    @property
    def stripe_configured(self) -> bool:
        """Whether billing can charge: a Stripe API key is set."""
        return bool(self.stripe_api_key)

    @model_validator(mode="after")
    def _stripe(self) -> Settings:
        if self.stripe_api_base:
            url = urlsplit(self.stripe_api_base)
            if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
                raise ValueError("STRIPE_API_BASE must be empty (Stripe itself) or look like "
                                 "http://host:8420, without a path")
        if self.stripe_api_key and not self.stripe_api_key.startswith(("sk_", "rk_")):
            raise ValueError("STRIPE_API_KEY must be a secret or restricted key (sk_… or rk_…)")
        if self.stripe_webhook_secret and not self.stripe_webhook_secret.startswith("whsec_"):
            raise ValueError("STRIPE_WEBHOOK_SECRET must be an endpoint's signing secret (whsec_…)")
        return self

    @model_validator(mode="after")
    def _email(self) -> Settings:
        if self.smtp_url:
            url = urlsplit(self.smtp_url)
            if url.scheme not in ("smtp", "smtps") or not url.hostname:
                raise ValueError("SMTP_URL must look like smtp://host:587 or smtps://host:465")
        if not self.email_from:
            self.email_from = f"{self.platform_name} <no-reply@localhost>"
        return self


def _development_secret_key() -> str:
    """Generate the development key once and keep it under ./data/ so restarts keep sessions."""
    path = DATA_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
