"""Event handlers: record what must be sent; the dispatcher sends it after the transaction commits."""
import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.tracing import current_carrier
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus, NotificationStatusChanged
from schemas.events.referrals import ContactChannel, ReferralCreated
from services.notify.models import SCHEMA, notifications
from services.notify.notifications.templates import referral_email

DISPATCH_CHANNEL = f"{SCHEMA}_dispatch"
SUPPORTED_CHANNELS = {ContactChannel.email}  # SMS arrives with its provider


async def on_referral_created(uow: UnitOfWork, event: Event[ReferralCreated]) -> None:
    referral = event.payload
    subject, body = referral_email(referral)
    queued = False
    for contact in referral.contacts:
        if contact.channel not in SUPPORTED_CHANNELS:
            continue
        notification_id = uuid.uuid4()
        inserted = await uow.session.scalar(
            insert(notifications)
            .values(
                id=notification_id, referral_id=referral.referral_id, case_id=referral.case_id,
                channel=contact.channel, recipient=contact.address, subject=subject, body=body,
                status=DeliveryStatus.created, trace=current_carrier(),
            )
            .on_conflict_do_nothing(constraint="uq_notification_target")
            .returning(notifications.c.id)
        )
        if inserted is None:
            continue
        queued = True
        uow.emit(
            NotificationStatusChanged(
                notification_id=notification_id, referral_id=referral.referral_id, case_id=referral.case_id,
                channel=contact.channel, status=DeliveryStatus.created, occurred_at=datetime.now(UTC), attempts=0,
            ),
            key=str(referral.case_id),
        )
    if queued:
        await uow.session.execute(text("SELECT pg_notify(:c, '')"), {"c": DISPATCH_CHANNEL})
