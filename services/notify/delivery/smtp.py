"""Email through SMTP, and the map from SMTP reply codes to delivery outcomes.

Our relay's 250 counts as delivered: plain SMTP gives no later receipt to wait for.
"""
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from services.notify.delivery.outcome import Receipt, SendOutcome, Verdict
from services.notify.delivery.providers import OutgoingMessage
from services.notify.settings import NotifySettings


def outcome_for_smtp_code(code: int) -> SendOutcome:
    """RFC 5321 reply classes: 2xx accepted, 4xx transient (the mailbox may recover), 5xx permanent."""
    if 200 <= code < 300:
        return SendOutcome(Verdict.delivered, str(code))
    if 400 <= code < 500:
        return SendOutcome(Verdict.retry, str(code), exhausts_to="temporary-failure")
    return SendOutcome(Verdict.permanent, str(code))


def email_message(sender: str, out: OutgoingMessage) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = out.recipient
    msg["Subject"] = out.subject
    # The Message-ID is the notification's own, the same on every attempt: a copy sent again after a crash
    # (reconcile.py) is one message to mail servers and readers' clients (RFC 5322 3.6.4).
    msg["Message-ID"] = message_id(sender, out.notification_id)
    for name, value in out.headers.items():
        msg[name] = value
    msg.set_content(out.body)
    return msg


def message_id(sender: str, notification_id: str) -> str:
    """`<notification id@the sender's domain>`: unique per notification, stable across its attempts."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    domain = (at and domain) or "hotline111.example"
    return f"<{notification_id}@{domain}>"


class SmtpProvider:
    name = "smtp"
    channel = "email"

    def __init__(self, settings: NotifySettings):
        self._s = settings

    async def send(self, out: OutgoingMessage) -> SendOutcome:
        s = self._s
        message = email_message(s.notify_email_from, out)
        try:
            errors, response = await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return outcome_for_smtp_code(min(r.code for r in exc.recipients))
        except aiosmtplib.SMTPResponseException as exc:
            return outcome_for_smtp_code(exc.code)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return SendOutcome(Verdict.retry, type(exc).__name__)
        if errors:  # some recipients refused; we send one recipient per message
            return outcome_for_smtp_code(min(code for code, _ in errors.values()))
        return SendOutcome(Verdict.delivered, "250", provider_ref=response[:200])

    async def lookup(self, provider_ref: str | None, reference: str) -> Receipt | None:
        return None  # SMTP cannot be asked what became of a message

    async def aclose(self) -> None:
        return None
