"""What the webhook endpoints API takes and gives. A secret appears in two answers only: creating an endpoint
and rotating its secret. Messages never echo the URL: it may carry the receiver's access token."""
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.notify.recipients import MAX_LENGTH, InvalidRecipient, normalise_webhook

# Each webhook message stores its URL in notifications.recipient, which holds 320 characters.
MAX_URL_CHARS = MAX_LENGTH
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_url(value: str) -> str:
    """An absolute https URL; plain http only to this machine (development). No credentials, no fragment.
    Stored in recipients.normalise_webhook's form: what each message to the endpoint is queued with."""
    value = value.strip()
    # These checks come first for messages that do not repeat the URL (its query may hold a token).
    if len(value) > MAX_URL_CHARS:
        raise ValueError(f"at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("no spaces or control characters")
    parts = urlsplit(value)
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("https", "http") or not host:
        raise ValueError("an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no user or password in the URL: a receiver authenticates us by the signature")
    if parts.fragment:
        raise ValueError("no #fragment: it is never sent")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError("https is required (plain http only to 127.0.0.1 or localhost, for development)")
    try:
        url = normalise_webhook(value, field="url")
        httpx.URL(url)  # what the sender will parse
    except (InvalidRecipient, httpx.InvalidURL):
        raise ValueError("not a valid host or port, or not printable ASCII (percent-encode other characters; "
                         "write an international domain in its xn-- form)") from None
    return url


WebhookUrl = Annotated[str, AfterValidator(check_url)]
Description = Annotated[str, Field(max_length=500)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency_unit_id: UUID = Field(description="The directory unit whose referrals this endpoint receives.")
    url: WebhookUrl = Field(description="https:// (http only to 127.0.0.1 or localhost); at most 320 characters.")
    description: Description = ""


def _no_default(schema: dict) -> None:
    schema.pop("default", None)  # left out means unchanged; null is no value any of them may take


class EndpointPatch(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    # Not nullable (the schema says so too): each may be left out, but a null would mean "unset", which none can be.
    url: WebhookUrl = Field(None, json_schema_extra=_no_default)
    description: Description = Field(None, json_schema_extra=_no_default)
    active: bool = Field(None, description="false: nothing more is sent to it. A 410 answer sets it too.",
                         json_schema_extra=_no_default)

    @field_validator("url", "description", "active", mode="before")
    @classmethod
    def _not_null(cls, value):
        # Runs only for fields sent (defaults are not validated).
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime | None = Field(
        None, description="Until when the previous secrets keep signing, beside the new one (default: 24 hours "
                          "from now; at most 30 days). A time already past retires them at once.")


class SecretOut(BaseModel):
    """A signing secret in use, without its value."""

    id: UUID
    created_at: datetime
    expires_at: datetime | None = Field(description="null: the current secret. Otherwise it signs until then.")


class EndpointOut(BaseModel):
    id: UUID
    agency_unit_id: UUID
    url: str
    description: str
    active: bool
    version: int = Field(description="Also the ETag: send it back in If-Match to change the endpoint.")
    created_at: datetime
    updated_at: datetime
    secrets: list[SecretOut] = Field(description="The secrets that sign its messages now, newest first.")


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The new signing secret (whsec_ + base64). Shown this once: store it now.")
