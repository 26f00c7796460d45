"""notify reports how its alerts fare: a delivered alert means the unit was told (created → notified).
Failed deliveries change nothing here yet; the deadline timer still reminds and escalates."""
from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus, NotificationStatusChanged
from services.referral.referrals.service import mark_notified

log = get_logger(__name__)


async def on_notification(uow: UnitOfWork, event: Event[NotificationStatusChanged]) -> None:
    sent = event.payload
    if sent.status is not DeliveryStatus.delivered:
        return
    if await mark_notified(uow, sent.referral_id, sent.occurred_at):
        log.info("referral_notified", referral_id=str(sent.referral_id), channel=sent.channel)
