"""SMS provider settings, read from SMS_PROVIDERS (a JSON list; see README.md, "SMS providers").

Each entry names one provider account. `name` is stable: it is stored on each notification sent through
it and is the last segment of its callback URL, <SMS_CALLBACK_BASE_URL>/callbacks/sms/<name>.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from schemas.events.notifications import DeliveryStatus

# A path segment and the notifications.provider column (40 characters).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
# Dotted paths into JSON: "id", "data.message_id", "messages.0.id".
JsonPath = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoAuth(_Model):
    type: Literal["none"] = "none"


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(_Model):
    type: Literal["basic"]
    username: str
    password: SecretStr


class RequestFields(_Model):
    """Where our values go in the JSON body the generic API takes. None: the API has no such field."""

    to: JsonPath = "to"
    body: JsonPath = "body"
    reference: JsonPath | None = "reference"  # our notification id: idempotency and lookup by reference
    callback_url: JsonPath | None = "callback_url"
    static: dict[str, str | int | bool] = {}  # sent as is with every message, e.g. {"sender": "111"}


class ResponseFields(_Model):
    """Where the provider's message id and status are in its JSON answers (to a send and to a lookup)."""

    id: JsonPath = "id"
    status: JsonPath | None = "status"
    reference: JsonPath | None = "reference"
    error_code: JsonPath | None = None


class CallbackSettings(_Model):
    """Delivery receipts POSTed to us as JSON, authenticated by HMAC-SHA256 of the raw body."""

    secret: SecretStr
    header: str = "X-Signature"
    encoding: Literal["hex", "base64"] = "hex"
    id: JsonPath = "id"
    status: JsonPath = "status"
    reference: JsonPath | None = "reference"
    error_code: JsonPath | None = "error_code"


class _ProviderBase(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    priority: int = 100  # lower is tried first
    weight: int = Field(1, gt=0)  # shares traffic among providers of equal priority
    timeout_s: float = Field(10.0, gt=0, le=120)


class GenericSmsConfig(_ProviderBase):
    """An HTTP/JSON gateway (most Vietnamese SMS brandname gateways look like this)."""

    adapter: Literal["generic"]
    url: str = Field(pattern=r"^https?://")
    auth: Annotated[NoAuth | BearerAuth | BasicAuth, Field(discriminator="type")] = NoAuth()
    request: RequestFields = RequestFields()
    response: ResponseFields = ResponseFields()
    # The provider's statuses, over the defaults in codes.py (keys are matched case-insensitively).
    status_map: dict[str, DeliveryStatus] = {}
    callback: CallbackSettings | None = None
    # GET this for a message's status: "{provider_ref}" and/or "{reference}" are filled in.
    status_url: str | None = Field(None, pattern=r"^https?://.*\{(provider_ref|reference)\}")

    @model_validator(mode="after")
    def _callbacks_are_signed(self) -> GenericSmsConfig:
        # A receipt can settle an alert as delivered; an unsigned one would let anybody do that.
        if self.request.callback_url and self.callback is None:
            raise ValueError("request.callback_url is mapped, so `callback` (with its secret) is required")
        return self


class TwilioSmsConfig(_ProviderBase):
    adapter: Literal["twilio"]
    account_sid: str = Field(pattern=r"^AC[0-9a-zA-Z]{1,64}$")
    auth_token: SecretStr
    from_number: str | None = Field(None, pattern=r"^\+[1-9][0-9]{6,14}$|^[A-Za-z0-9 ]{1,11}$")
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-zA-Z]{1,64}$")
    base_url: str = Field("https://api.twilio.com", pattern=r"^https?://")

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioSmsConfig:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")
        return self


SmsProviderConfig = Annotated[GenericSmsConfig | TwilioSmsConfig, Field(discriminator="adapter")]


def _unique_names(providers: list) -> list:
    names = [p.name for p in providers]
    if len(names) != len(set(names)):
        raise ValueError("SMS provider names must be unique (they key stored notifications and callback URLs)")
    return providers


SmsProviderList = Annotated[list[SmsProviderConfig], AfterValidator(_unique_names)]
