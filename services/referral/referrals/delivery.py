"""notify reports how each alert fares. A delivered alert means the unit was told (created → notified).
When every alert of a referral has failed for good, nobody was told: the referral escalates now
instead of waiting for its acknowledgement deadline (the deadline scanner takes it at its next scan).
"""
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import ReferralStatus as S
from services.referral.deadlines.scanner import ESCALATE
from services.referral.models import referral_deliveries as deliveries
from services.referral.models import referrals
from services.referral.referrals.service import mark_notified

log = get_logger(__name__)
FAILED = {D.permanent_failure, D.temporary_failure, D.technical_failure}  # notify retries before these
TERMINAL = FAILED | {D.delivered}


async def on_notification(uow: UnitOfWork, event: Event[NotificationStatusChanged]) -> None:
    sent = event.payload
    await _record(uow, sent)
    if sent.status is D.delivered:
        if await mark_notified(uow, sent.referral_id, sent.occurred_at):
            log.info("referral_notified", referral_id=str(sent.referral_id), channel=sent.channel)
    elif sent.status in FAILED and await _all_failed(uow, sent):
        await _escalate_now(uow, sent)


async def _record(uow: UnitOfWork, sent: NotificationStatusChanged) -> None:
    """Keep each alert's latest status; a late event about an alert already settled changes nothing."""
    stmt = insert(deliveries).values(notification_id=sent.notification_id, referral_id=sent.referral_id,
                                     channel=sent.channel, status=sent.status, updated_at=sent.occurred_at)
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[deliveries.c.notification_id],
        set_={"status": stmt.excluded.status, "updated_at": stmt.excluded.updated_at},
        where=deliveries.c.status.not_in([s.value for s in TERMINAL]),
    ))


async def _all_failed(uow: UnitOfWork, sent: NotificationStatusChanged) -> bool:
    """Every alert notify made for the referral has failed. notify records all of a referral's alerts in
    one transaction and their events share the case's partition, so none is still unknown here."""
    not_failed = await uow.session.scalar(select(func.count()).where(
        deliveries.c.referral_id == sent.referral_id, deliveries.c.status.not_in([s.value for s in FAILED])))
    return not_failed == 0


async def _escalate_now(uow: UnitOfWork, sent: NotificationStatusChanged) -> None:
    moved = await uow.session.scalar(
        update(referrals).where(referrals.c.id == sent.referral_id, referrals.c.status == S.created,
                                referrals.c.due_step.is_not(None))
        .values(due_step=ESCALATE, due_at=sent.occurred_at, updated_at=func.now()).returning(referrals.c.id))
    if moved is not None:
        log.warning("referral_undeliverable_escalating", referral_id=str(sent.referral_id),
                    last_failure=sent.status, channel=sent.channel)
