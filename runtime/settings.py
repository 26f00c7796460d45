"""Settings every service reads from the environment (pydantic-settings)."""
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.kafka import KafkaAccess


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5433/hotline"
    # When DATABASE_URL goes through PgBouncer in transaction mode: the server itself, for what needs one
    # session throughout (LISTEN, the relay's advisory lock, migrations).
    database_direct_url: str | None = None
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # api: the HTTP API (and the relay); worker: the consumers and background loops (and the relay), with
    # only /healthz, /readyz and /metrics over HTTP; all: both, in one process (make run, tests).
    service_role: Literal["all", "api", "worker"] = "all"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    otel_exporter_otlp_endpoint: str | None = None

    db_pool_size: int = 10
    # Each hop waits at most this long for new records; the broker default of 500 ms adds ~130 ms p50.
    kafka_fetch_max_wait_ms: int = 10
    consumer_max_attempts: int = Field(3, ge=1)
    # Events of one partition applied in one transaction: fewer commits under load, while the first of them
    # waits for at most this many before it is committed (a projection applies its whole fetch).
    consumer_transaction_max_events: int = Field(20, ge=1)
    consumer_retry_backoff_s: float = 0.2
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    outbox_retention_hours: int = 72
    shutdown_timeout_s: float = 20.0

    @property
    def kafka(self) -> KafkaAccess:
        """Checked here, not at parse time: a migration job reads these settings without Kafka credentials."""
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [name for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                       if getattr(self, name) is None]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                                 f"{', '.join(m.upper() for m in missing)}")
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        return KafkaAccess(self.kafka_bootstrap_servers, self.kafka_security_protocol, self.kafka_sasl_mechanism,
                           self.kafka_sasl_username, password, self.kafka_ssl_cafile)

    @property
    def session_database_url(self) -> str:
        """For one long PostgreSQL session: LISTEN, session advisory locks, migrations."""
        return self.database_direct_url or self.database_url


class PiiSettings(BaseSettings):
    """PII_ENCRYPTION_KEYS: comma-separated `kid:key` AES-256-GCM keys; the first encrypts, all decrypt
    (prepend a new key to rotate, then re-encrypt). PII_HMAC_KEY: the separate key of the phone index."""

    model_config = SettingsConfigDict(extra="ignore")
    pii_encryption_keys: SecretStr
    pii_hmac_key: SecretStr
