"""Event handlers: record what must be sent; the dispatcher sends it after the transaction commits."""
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.tracing import current_carrier
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus, NotificationStatusChanged
from schemas.events.referrals import AgencyContact, ContactChannel, ReferralContactFallback, ReferralCreated
from services.notify.models import SCHEMA, notifications
from services.notify.notifications.templates import referral_email

log = get_logger(__name__)
DISPATCH_CHANNEL = f"{SCHEMA}_dispatch"
SUPPORTED_CHANNELS = {ContactChannel.email}  # SMS arrives with its provider
UNSUPPORTED = "channel-unsupported"  # provider code of an alert on a channel notify cannot send yet


async def on_referral_created(uow: UnitOfWork, event: Event[ReferralCreated]) -> None:
    referral = event.payload
    subject, body = referral_email(referral)
    # Sendable alerts first: referral then knows of them before any failure of the unsendable ones.
    contacts = sorted(referral.contacts, key=lambda c: c.channel not in SUPPORTED_CHANNELS)
    queued = [await queue_alert(uow, event.id, referral.referral_id, referral.case_id, contact, subject, body)
              for contact in contacts]
    if any(queued):
        await wake_dispatcher(uow)


async def on_contact_fallback(uow: UnitOfWork, event: Event[ReferralContactFallback]) -> None:
    """An alert of the referral failed for good: the same message goes to the unit's next contact."""
    fallback = event.payload
    # The failed alert is a row of this table, so the referral's message is always here to copy.
    message = (await uow.session.execute(
        select(notifications.c.subject, notifications.c.body).where(notifications.c.referral_id == fallback.referral_id)
        .order_by(notifications.c.created_at, notifications.c.id).limit(1))).first()
    if message is None:
        log.warning("fallback_without_message", referral_id=str(fallback.referral_id))
        return
    already = await uow.session.scalar(select(notifications.c.id).where(
        notifications.c.referral_id == fallback.referral_id, notifications.c.channel == fallback.contact.channel,
        notifications.c.recipient == fallback.contact.address).limit(1))
    if already is not None:  # that contact has the message already, whatever event asked for it
        return
    if await queue_alert(uow, event.id, fallback.referral_id, fallback.case_id, fallback.contact, *message):
        await wake_dispatcher(uow)


async def queue_alert(uow: UnitOfWork, source_id: uuid.UUID, referral_id: uuid.UUID, case_id: uuid.UUID,
                      contact: AgencyContact, subject: str, body: str) -> bool:
    """Record one alert to one contact and emit its first status. A channel notify cannot send yet fails at
    once (technical-failure), so referral moves on to the unit's next contact instead of waiting for the
    deadline. True when the dispatcher has something new to send; an alert already recorded is left alone."""
    supported = contact.channel in SUPPORTED_CHANNELS
    status = DeliveryStatus.created if supported else DeliveryStatus.technical_failure
    notification_id = uuid.uuid4()
    inserted = await uow.session.scalar(
        insert(notifications)
        .values(
            id=notification_id, source_id=source_id, referral_id=referral_id, case_id=case_id, channel=contact.channel,
            recipient=contact.address, subject=subject, body=body, status=status, trace=current_carrier(),
            provider_code=None if supported else UNSUPPORTED,
        )
        .on_conflict_do_nothing(constraint="uq_notification_source_target")
        .returning(notifications.c.id)
    )
    if inserted is None:
        return False
    uow.emit(
        NotificationStatusChanged(
            notification_id=notification_id, referral_id=referral_id, case_id=case_id, channel=contact.channel,
            status=status, occurred_at=datetime.now(UTC), attempts=0, recipient=contact.address,
        ),
        key=str(case_id),
    )
    return supported


async def wake_dispatcher(uow: UnitOfWork) -> None:
    await uow.session.execute(text("SELECT pg_notify(:c, '')"), {"c": DISPATCH_CHANNEL})
