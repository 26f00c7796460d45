"""Settings every service reads from the environment (pydantic-settings)."""
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5433/hotline"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    otel_exporter_otlp_endpoint: str | None = None

    db_pool_size: int = 10
    # Each hop waits at most this long for new records; the broker default of 500 ms adds ~130 ms p50.
    kafka_fetch_max_wait_ms: int = 10
    consumer_max_attempts: int = Field(3, ge=1)
    consumer_retry_backoff_s: float = 0.2
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    outbox_retention_hours: int = 72
    shutdown_timeout_s: float = 20.0


class PiiSettings(BaseSettings):
    """PII_ENCRYPTION_KEYS: comma-separated `kid:key` AES-256-GCM keys; the first encrypts, all decrypt
    (prepend a new key to rotate, then re-encrypt). PII_HMAC_KEY: the separate key of the phone index."""

    model_config = SettingsConfigDict(extra="ignore")
    pii_encryption_keys: SecretStr
    pii_hmac_key: SecretStr
