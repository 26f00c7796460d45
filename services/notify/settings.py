from pydantic import Field, SecretStr

from runtime.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    port: int = 8003
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    notify_email_from: str = "111 Hotline <alerts@hotline111.example>"
    notify_max_attempts: int = Field(5, ge=1)
    notify_retry_base_s: float = 2.0
    # A claimed send not finished in this time (crashed worker) is tried again.
    notify_claim_lease_s: float = 60.0
    notify_batch_size: int = 20
