"""Alert texts. They carry case and referral numbers only: never a name, phone number or story."""
from email.message import EmailMessage

from schemas.events.referrals import ReferralCreated
from schemas.geography import province_name


def referral_email(r: ReferralCreated) -> tuple[str, str]:
    due = r.acknowledge_by.strftime("%Y-%m-%d %H:%M UTC")
    subject = f"[111] {r.urgency.upper()} referral {r.case_number}: acknowledge by {due}"
    body = "\n".join(
        [
            f"The 111 hotline has referred case {r.case_number} to {r.agency_unit_name}.",
            "",
            f"Urgency: {r.urgency}",
            f"Province: {province_name(r.province_code) or r.province_code} ({r.province_code})",
            f"Acknowledge by: {due}",
            f"Referral id: {r.referral_id}",
            "",
            "Case details are available to authorised staff through the hotline's referral system.",
            "This message contains no personal data by design.",
        ]
    )
    return subject, body + "\n"


def email_message(sender: str, recipient: str, subject: str, body: str, headers: dict[str, str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(body)
    return msg
