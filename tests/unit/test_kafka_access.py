"""How the services reach Kafka: plaintext locally, TLS with a SCRAM user on Kubernetes."""
import ssl

import pytest
from pydantic import ValidationError

from runtime.kafka import KafkaAccess, client_args
from runtime.settings import ServiceSettings


def test_plaintext_by_default_and_from_a_bare_bootstrap_string():
    assert client_args("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert ServiceSettings(_env_file=None).kafka == KafkaAccess("127.0.0.1:9092")


def test_sasl_ssl_carries_the_scram_user_and_a_verifying_tls_context(monkeypatch):
    for name, value in {"KAFKA_BOOTSTRAP_SERVERS": "hotline111-kafka-bootstrap:9093",
                        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "KAFKA_SASL_USERNAME": "intake", "KAFKA_SASL_PASSWORD": "s3cret"}.items():
        monkeypatch.setenv(name, value)
    access = ServiceSettings().kafka
    args = access.client_args()
    assert args["security_protocol"] == "SASL_SSL" and args["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (args["sasl_plain_username"], args["sasl_plain_password"]) == ("intake", "s3cret")
    assert isinstance(args["ssl_context"], ssl.SSLContext) and args["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in repr(access)  # the password never reaches a log line through the settings


def test_sasl_without_credentials_fails_at_start_naming_what_is_missing(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "intake")
    settings = ServiceSettings()  # a migration reads the settings and never needs Kafka
    with pytest.raises(ValueError, match="KAFKA_SASL_MECHANISM, KAFKA_SASL_PASSWORD"):
        settings.kafka
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_TLS")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        ServiceSettings()


def test_the_direct_url_serves_sessions_only_when_a_pooler_is_in_between(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@intake-db-pooler-rw:5432/intake")
    assert ServiceSettings().session_database_url.startswith("postgresql+asyncpg://u:p@intake-db-pooler-rw")
    monkeypatch.setenv("DATABASE_DIRECT_URL", "postgresql+asyncpg://u:p@intake-db-rw:5432/intake")
    assert ServiceSettings().session_database_url == "postgresql+asyncpg://u:p@intake-db-rw:5432/intake"
