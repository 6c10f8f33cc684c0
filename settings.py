"""Every setting of the system, read from the environment in this one place.

Names and defaults are the public interface (see README, "Settings"). Other modules import
``settings`` from here and never read ``os.environ`` themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent
VAR_DIR = PROJECT_ROOT / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # Storage and broker. The defaults are the embedded mode: a SQLite file and a broker made of
    # files under ./var, so the whole system runs with nothing but Python installed.
    database_url: str = f"sqlite:///{VAR_DIR / 'wacrm.sqlite3'}"
    celery_broker_url: str = "filesystem://"
    broker_folder: Path = VAR_DIR / "broker"

    # WhatsApp Cloud API and gateways.
    whatsapp_gateway: str = "sandbox"
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_access_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    # The WhatsApp Business Account whose message templates are synced (templates off when unset).
    whatsapp_waba_id: str | None = None
    template_sync_interval_seconds: float = Field(default=3600, gt=0)
    waha_url: str | None = None
    waha_api_key: str | None = None
    waha_session: str | None = None
    waha_hmac_key: str | None = None
    order_webhook_secret: str | None = None
    # The WhatsApp Flows data endpoint's RSA private key (PEM text, or a file holding it) and its
    # passphrase; POST /flows/{name} answers 503 until the key is set.
    whatsapp_flows_private_key: str | None = None
    whatsapp_flows_passphrase: str | None = None
    # A webhook whose secret is unset answers 503 naming it; true lets it take unsigned requests
    # instead (the embedded ./run sets it). Never on a machine the internet reaches.
    development_mode: bool = False

    # Odoo CRM sync (off when ODOO_URL is unset).
    odoo_url: str | None = None
    odoo_db: str | None = None
    odoo_login: str | None = None
    odoo_api_key: str | None = None

    # The admin role's bearer token (bootstrap and service credential); a weak one is refused.
    admin_token: str | None = None
    # The key the channels' secrets are encrypted with at rest (any long random text; HKDF makes
    # the encryption key of it). Without it no channel with secrets can be stored.
    secret_key: str | None = None
    # How long a dashboard session or a sign-in token (POST /api/auth/token) lasts.
    session_hours: float = Field(default=12, gt=0, le=24 * 90)

    default_region: str = "ID"
    timezone: str = "Asia/Jakarta"
    followup_cron: str = "0 10 * * *"
    outbound_rate_per_second: float = Field(default=80, gt=0)

    ai_base_url: str | None = None
    ai_api_key: str | None = None
    ai_model: str | None = None
    ai_timeout_seconds: float = Field(default=8, gt=0)
    # An answer the model itself rates below this goes to a human instead.
    ai_min_confidence: float = Field(default=0.6, ge=0, le=1)

    # Routing: who answers, how fast, and when the business is open.
    business_hours: str = "mon-fri 08:00-17:00, sat 08:00-13:00"
    automation_file: Path = PROJECT_ROOT / "templates" / "automation.toml"
    faq_match_threshold: float = Field(default=82, ge=0, le=100)
    default_team: str = "sales"
    # First-response targets by lead class, in seconds.
    response_target_hot_seconds: float = Field(default=300, gt=0)
    response_target_warm_seconds: float = Field(default=1800, gt=0)
    response_target_cold_seconds: float = Field(default=14400, gt=0)

    # Adaptive follow-ups after our question meets silence (defaults; changeable through the API).
    adaptive_followup_min_seconds: float = Field(default=3600, gt=0)
    adaptive_followup_max_seconds: float = Field(default=86400, gt=0)
    adaptive_followup_max_attempts: int = Field(default=1, ge=0)
    # The delay is this many times the customer's typical response time, then bounded.
    adaptive_followup_factor: float = Field(default=3, gt=0)
    adaptive_followup_tick_seconds: float = Field(default=30, gt=0)
    # Follow-ups timed by what works: a delivery follow-up waits for the customer's usual hour up
    # to this local hour of its day; this share of due adaptive follow-ups is held back as the
    # silence they are compared with; a follow-up worked when the customer wrote within
    # FOLLOWUP_EFFECT_HOURS (or ordered within FOLLOWUP_ORDER_DAYS); a verdict needs this many of each.
    followup_latest_hour: int = Field(default=20, ge=0, le=23)
    followup_holdout_share: float = Field(default=0.1, ge=0, le=0.5)
    followup_effect_hours: float = Field(default=24, gt=0)
    followup_order_days: float = Field(default=7, gt=0)
    followup_min_sample: int = Field(default=20, ge=1)
    survey_enabled: bool = True

    # Flower's basic auth, "user:password" (comma-separated for several); Flower refuses to
    # start without it unless FLOWER_UNAUTHENTICATED=1.
    flower_basic_auth: str | None = None

    # Operational knobs of this implementation.
    max_body_bytes: int = Field(default=3 * 1024 * 1024, gt=0)  # Meta's payload ceiling is 3 MB
    inbox_sweep_interval_seconds: float = Field(default=30, gt=0)
    inbox_sweep_after_seconds: float = Field(default=120, ge=0)
    inbox_max_attempts: int = Field(default=10, gt=0)
    conversation_idle_hours: float = Field(default=24, gt=0)

    # Automated order messages and the outbound worker.
    business_name: str = "Toko Kami"
    # Where customers reach this system (https://crm.example.id): the order tracker links
    # (/t/<token>) and the short links (/r/<code>) are made absolute with it. Unset: a tracker
    # link is a path only, a short link uses the API's own address.
    public_url: str | None = None
    order_messages_file: Path = PROJECT_ROOT / "templates" / "order_messages.toml"
    followup_tick_seconds: float = Field(default=30, gt=0)
    outbound_timeout_seconds: float = Field(default=10, gt=0)
    outbound_max_attempts: int = Field(default=8, gt=0)
    outbound_retry_base_seconds: float = Field(default=2, gt=0)
    outbound_retry_max_seconds: float = Field(default=300, gt=0)
    outbox_sweep_after_seconds: float = Field(default=300, ge=0)
    # The longest a send waits for its rate-limit slot; a slot further away gives the message
    # back to the queue until then (nobody holds a claimed message, or a worker, meanwhile).
    outbound_max_slot_wait_seconds: float = Field(default=5, gt=0)
    # Where the shared send-rate limit lives; defaults to CELERY_BROKER_URL when that is Redis.
    outbound_rate_redis_url: str | None = None
    # Slots are (1 + this) / OUTBOUND_RATE_PER_SECOND apart: how late a send may reach the gateway
    # after its slot and still leave every one-second window within the ceiling.
    outbound_rate_guard_seconds: float = Field(default=0.03, ge=0, lt=1)

    # Media (images, videos, voice notes, documents) kept for the team: a directory, or an
    # S3-compatible bucket ("s3://bucket/prefix"; credentials from the usual AWS_* variables).
    media_store: str = str(VAR_DIR / "media")
    media_s3_endpoint_url: str | None = None
    media_max_bytes: int = Field(default=100 * 1024 * 1024, gt=0)  # WhatsApp's largest, a document
    media_download_timeout_seconds: float = Field(default=60, gt=0)
    # Hosts a Cloud API media URL may point at (besides WHATSAPP_API_BASE's own): nothing else is
    # fetched, so a forged URL cannot reach an internal address.
    media_download_hosts: str = "lookaside.fbsbx.com"

    # Labels and the dashboard: the label that marks a good lead.
    target_label: str = "Grade A"

    # CRM sync to Odoo.
    odoo_timeout_seconds: float = Field(default=10, gt=0)
    # auto: JSON-2 on Odoo 19 and later, JSON-RPC before; jsonrpc or json2 to insist on one.
    odoo_protocol: Literal["auto", "jsonrpc", "json2"] = "auto"
    crm_retry_max_seconds: float = Field(default=300, gt=0)
    # The internal reference (default_code) of the Odoo product an order line goes on when its
    # sku matches no product (and of the line of an order without items).
    odoo_generic_product: str = "WACRM-ITEM"
    # The Odoo stage (crm.stage, by name, of the lead's team or shared) of each milestone of a
    # deal (domain/deal_stages.py); won and lost are Odoo's actions, not a stage from this map.
    crm_stage_map: str = "replied=Qualified,qualified=Qualified,ordered=Proposition"
    # Labels that make a lead qualified (as a hot lead class does), comma-separated.
    crm_qualified_labels: str = "Grade A"
    # The lost reasons (crm.lost.reason, by name, created if missing) of a lost lead.
    crm_lost_reason_cancelled: str = "Order cancelled"
    crm_lost_reason_opted_out: str = "Opted out"
    # How often beat reads back the leads changed in Odoo (their write_date).
    odoo_poll_seconds: float = Field(default=60, gt=0)
    # Odoo is the order system: confirmed sale orders, paid invoices and done deliveries in Odoo
    # become order events (and their messages).
    odoo_order_system: bool = False
    # The secret in the path of Odoo's webhook, POST /webhooks/odoo/{secret} (Odoo cannot sign).
    odoo_webhook_secret: str | None = None
    log_level: str = "INFO"

    # Outcomes and campaigns (docs/campaigns.md). An order counts for a conversation that started
    # at most this many days before it; an open conversation whose customer has not written for
    # OUTCOME_SILENCE_HOURS went silent (beat looks every OUTCOME_SWEEP_INTERVAL_SECONDS).
    outcome_order_window_days: float = Field(default=7, gt=0)
    outcome_silence_hours: float = Field(default=72, gt=0)
    outcome_sweep_interval_seconds: float = Field(default=300, gt=0)
    # The learned lead score (docs/routing.md#learned-lead-score): refitted every
    # LEAD_MODEL_REFIT_SECONDS (0: only on request) from conversations with a final outcome; the
    # most recent LEAD_MODEL_BACKTEST_SHARE of them is the back-test. It scores only with at
    # least LEAD_MODEL_MIN_OUTCOMES outcomes and when it beats the fixed weights (AUC higher by
    # LEAD_MODEL_MIN_AUC_GAIN, Brier score no worse); a chance of an
    # order of LEAD_MODEL_HOT_CHANCE makes a lead hot, LEAD_MODEL_WARM_CHANCE warm.
    lead_model_refit_seconds: float = Field(default=86400, ge=0)
    lead_model_min_outcomes: int = Field(default=200, ge=10)
    lead_model_backtest_share: float = Field(default=0.2, gt=0, lt=1)
    # How much higher than the fixed weights' its back-test AUC must be (a noise win is no win).
    lead_model_min_auc_gain: float = Field(default=0.01, ge=0, lt=1)
    lead_model_hot_chance: float = Field(default=0.5, gt=0, le=1)
    lead_model_warm_chance: float = Field(default=0.2, gt=0, le=1)
    # A customer who writes within this many hours of a broadcast reaching them answers it.
    broadcast_attribution_hours: float = Field(default=72, gt=0)
    # Meta's Conversions API for business messaging (off by default): the dataset the events go
    # to, and the token (unset: WHATSAPP_ACCESS_TOKEN) and Graph base (unset: WHATSAPP_API_BASE).
    meta_conversions_enabled: bool = False
    # The currency of an order that names none (what a Purchase event reports it in).
    default_currency: str = "IDR"
    meta_conversions_dataset_id: str | None = None
    meta_conversions_token: str | None = None
    meta_conversions_api_base: str | None = None
    meta_conversions_max_attempts: int = Field(default=8, gt=0)
    # The first retry's wait after a failed send; each next one waits twice as long (at most 1 h).
    meta_conversions_retry_base_seconds: float = Field(default=30, gt=0)
    # The live event stream of the inbox (GET /api/events, docs/live.md): a Redis Stream, on
    # CELERY_BROKER_URL when that is Redis unless LIVE_REDIS_URL names another; off without Redis.
    live_redis_url: str | None = None
    # The stream keeps about this many events: how far back a reconnecting page can resume.
    live_stream_maxlen: int = Field(default=100_000, gt=0)
    # Events waiting for one slow client before it is cut off (it reconnects and resumes).
    live_client_buffer: int = Field(default=1000, gt=0)
    live_keepalive_seconds: float = Field(default=15, gt=0)

    @property
    def live_stream_redis_url(self) -> str | None:
        """Where the live stream is kept; None: no Redis, and the stream is off."""
        if self.live_redis_url:
            return self.live_redis_url
        return (
            self.celery_broker_url if self.celery_broker_url.startswith(("redis://", "rediss://")) else None
        )

    @property
    def rate_limit_redis_url(self) -> str | None:
        if self.outbound_rate_redis_url:
            return self.outbound_rate_redis_url
        return (
            self.celery_broker_url if self.celery_broker_url.startswith(("redis://", "rediss://")) else None
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_secrets(self) -> dict[str, str | None]:
        """Each webhook's secret by its setting's name (the handshake's verify token too)."""
        return {
            "WHATSAPP_APP_SECRET": self.whatsapp_app_secret,
            "WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token,
            "WAHA_HMAC_KEY": self.waha_hmac_key,
            "ORDER_WEBHOOK_SECRET": self.order_webhook_secret,
        }


settings = Settings()
