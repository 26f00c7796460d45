"""Recipients checked and put in one canonical form: E.164 numbers, email addresses, webhook URLs.

The canonical form is what is stored and compared (rate limits, simulated recipients, duplicates), so
each function is idempotent: normalising a normalised value gives it back.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

from services.notify.delivery import simulated

MAX_LENGTH = 320  # what notifications.recipient holds (and an email address's upper bound)


class InvalidRecipient(ValueError):
    """The message never quotes the value: it may be personal data, or a URL carrying an access token."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ---- sms -------------------------------------------------------------------------------------------

# Digits and the usual separators only: no letters (vanity numbers), no extensions, '+' only in front
# (or as "(+84) ...").
_PHONE_CHARS = re.compile(r"\(?\+?[0-9 ().\-]+")
_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "has no valid country code: start with + and the country code, "
                                               "or write a Vietnamese number as 09xx xxx xxx",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    NumberParseException.TOO_SHORT_NSN: "is too short",
    NumberParseException.TOO_LONG: "is too long",
}
_LENGTH_ERRORS = {
    ValidationResult.TOO_SHORT: "is too short",
    ValidationResult.TOO_LONG: "is too long",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
    ValidationResult.INVALID_COUNTRY_CODE: "has no valid country code",
}
_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "a landline", PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number", PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.VOIP: "a VoIP number", PhoneNumberType.UAN: "a service number",
}


# The seed directory's placeholder numbers (services/referral/directory/generate.py): no real number
# uses the range, so they are invalid; a development stack lets them through to its local gateway.
FICTITIOUS_SMS = re.compile(r"\+8400000[0-9]{5}")


def normalise_sms(value: str, *, region: str = "VN", field: str = "sms", allow_fictitious: bool = False) -> str:
    """A mobile number in E.164 (+84912345678). Numbers without a country code are read as `region`'s:
    0912 345 678, 84912345678 and +84 91 234 5678 are the same number."""
    text = _text(value, field)
    if allow_fictitious and FICTITIOUS_SMS.fullmatch(text):
        return text
    if not _PHONE_CHARS.fullmatch(text):
        raise InvalidRecipient(field, "is not a phone number: use digits, spaces, - . ( ) and a leading +")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidRecipient(field, _PARSE_ERRORS.get(exc.error_type, "is not a phone number")) from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if e164 in simulated.SMS:
        return e164  # drill numbers: invalid on purpose, so they can never reach a real phone
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in _LENGTH_ERRORS:
        raise InvalidRecipient(field, _LENGTH_ERRORS[reason])
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number)
        plan = "Vietnam's" if where == "VN" else f"+{number.country_code}'s"
        raise InvalidRecipient(field, f"is not a valid number: {plan} numbering plan has no such number")
    kind = phonenumbers.number_type(number)
    if kind not in _SMS_TYPES:
        raise InvalidRecipient(field, f"is {_TYPE_NAMES.get(kind, 'not a mobile number')}, which cannot receive SMS")
    return e164


# ---- email -----------------------------------------------------------------------------------------

def normalise_email(value: str, *, field: str = "email") -> str:
    """The address checked for syntax only (no DNS: deliverability shows in the delivery status).
    ASCII form: the domain in punycode. Mailboxes with non-ASCII names are refused, since they need
    SMTPUTF8 at every hop and our relay may not offer it."""
    text = _text(value, field)
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidRecipient(field, f"is not an email address: {exc}") from None
    return checked.ascii_email


# ---- webhook ---------------------------------------------------------------------------------------

_URL_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: percent-encode anything else
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_DEFAULT_PORTS = {"https": 443, "http": 80}
_LOOPBACK = {"localhost", "127.0.0.1", "[::1]"}  # as the webhooks API allows (README): this machine


def normalise_webhook(value: str, *, field: str = "webhook") -> str:
    """An https URL (http only to this machine, for local receivers), with its scheme and host in lower
    case, the default port dropped and an empty path made '/'. Path and query are kept as given."""
    text = _text(value, field)
    if not _URL_CHARS.fullmatch(text):
        raise InvalidRecipient(field, "a URL is printable ASCII without spaces: percent-encode other characters, "
                                      "and write an international domain in its xn-- form")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidRecipient(field, "is not a URL: check the brackets around an IPv6 address, and the port") \
            from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidRecipient(field, "must start with https://")
    if "@" in parts.netloc:
        raise InvalidRecipient(field, "no user name or password in the URL: they would show in logs; "
                                      "the webhook's signing secret authenticates us")
    if "#" in text:
        raise InvalidRecipient(field, "no #fragment: it is never sent to the receiver")
    host = _host(parts.hostname or "", field)
    if scheme == "http" and host not in _LOOPBACK:
        raise InvalidRecipient(field, "must use https (http only to 127.0.0.1 or localhost)")
    if port == 0:
        raise InvalidRecipient(field, "port 0 is not a port")
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    url = f"{scheme}://{netloc}{parts.path or '/'}{query}"
    if len(url) > MAX_LENGTH:  # the '/' added to an empty path
        raise InvalidRecipient(field, f"is longer than {MAX_LENGTH} characters")
    return url


def _host(name: str, field: str) -> str:
    """The host as written in a canonical URL."""
    if not name:
        raise InvalidRecipient(field, "the URL has no host")
    if ":" in name:  # urlsplit has taken the brackets off an IPv6 literal
        try:
            ip6 = ipaddress.IPv6Address(name)
        except ValueError:
            raise InvalidRecipient(field, "the host is not an IPv6 address") from None
        if ip6.scope_id:
            raise InvalidRecipient(field, "no IPv6 zone (%...) in a webhook URL")
        return f"[{ip6.compressed}]"
    name = name.removesuffix(".")
    labels = name.split(".")
    if labels[-1].isdigit():  # a top-level domain is never all digits: this is meant as an IPv4 address
        try:
            ip4 = ipaddress.IPv4Address(name)
        except ValueError:
            raise InvalidRecipient(field, "the host is not an IPv4 address or a host name") from None
        return str(ip4)
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidRecipient(field, "the host is not a host name: letters, digits and hyphens between dots")
    return name


# ---- any channel -----------------------------------------------------------------------------------

_BY_CHANNEL = {"sms": normalise_sms, "email": normalise_email, "webhook": normalise_webhook}


def normalise(channel: str, value: str, *, field: str | None = None, allow_fictitious: bool = False) -> str:
    """The canonical form of a recipient of `channel` (sms, email or webhook); InvalidRecipient if it
    is not one. `field` names the input in the error (default: the channel). `allow_fictitious` lets
    the seed directory's placeholder numbers through (development stacks only)."""
    check = _BY_CHANNEL.get(channel)
    if check is None:
        raise InvalidRecipient("channel", f"unknown channel {channel!r}: one of {', '.join(_BY_CHANNEL)}")
    if channel == "sms":
        return normalise_sms(value, field=field or "sms", allow_fictitious=allow_fictitious)
    return check(value, field=field or str(channel))


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidRecipient(field, "must be text")
    text = value.strip()
    if not text:
        raise InvalidRecipient(field, "is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidRecipient(field, f"is longer than {MAX_LENGTH} characters")
    return text
