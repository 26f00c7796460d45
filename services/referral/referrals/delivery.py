"""notify reports how each alert fares. A delivered alert means the unit was told (created → notified).
A failed one moves on to the unit's next contact, on the same channel if it has one left, else on any
(referral.contact-fallback). When no contact is left and every alert made has failed for good, nobody
was told: the referral escalates now instead of waiting for its acknowledgement deadline (the deadline
scanner takes it at its next scan).
"""
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import AgencyContact, ContactChannel, ReferralContactFallback
from schemas.events.referrals import ReferralStatus as S
from services.referral.deadlines.scanner import ESCALATE
from services.referral.models import referral_deliveries as deliveries
from services.referral.models import referrals
from services.referral.referrals.handlers import Referrer
from services.referral.referrals.service import mark_notified

log = get_logger(__name__)
FAILED = {D.permanent_failure, D.temporary_failure, D.technical_failure}  # notify retries before these
TERMINAL = FAILED | {D.delivered}
# A webhook reaches the unit's system: delivered, the unit was told; failed, its contacts' alerts still
# decide (a webhook is no contact to fall back from, nor one whose failure means nobody was told).
CONTACT_CHANNELS = frozenset(c.value for c in ContactChannel)


def on_notification(referrer: Referrer):
    """The handler of NotificationStatusChanged; it reads the unit's contacts from the referrer's directory."""
    async def handle(uow: UnitOfWork, event: Event[NotificationStatusChanged]) -> None:
        sent = event.payload
        if not await _record(uow, sent):
            return  # a late or repeated report about an alert already settled
        if sent.status is D.delivered:
            if await mark_notified(uow, sent.referral_id, sent.occurred_at):
                log.info("referral_notified", referral_id=str(sent.referral_id), channel=sent.channel)
        elif sent.status in FAILED and sent.channel in CONTACT_CHANNELS:
            await _failed(uow, referrer, sent)

    return handle


async def _record(uow: UnitOfWork, sent: NotificationStatusChanged) -> bool:
    """Keep each alert's latest status. False when the alert was already settled: the report changes nothing."""
    stmt = insert(deliveries).values(notification_id=sent.notification_id, referral_id=sent.referral_id,
                                     channel=sent.channel, recipient=sent.recipient, status=sent.status,
                                     updated_at=sent.occurred_at)
    return await uow.session.scalar(stmt.on_conflict_do_update(
        index_elements=[deliveries.c.notification_id],
        set_={"status": stmt.excluded.status, "updated_at": stmt.excluded.updated_at},
        where=deliveries.c.status.not_in([s.value for s in TERMINAL]),
    ).returning(deliveries.c.notification_id)) is not None


async def _failed(uow: UnitOfWork, referrer: Referrer, sent: NotificationStatusChanged) -> None:
    # Locked while deciding, so two failures of one referral never pick the same next contact.
    row = (await uow.session.execute(select(referrals).where(referrals.c.id == sent.referral_id)
                                     .with_for_update())).mappings().first()
    if row is None or row["status"] != S.created:
        return  # acknowledged or told by another alert meanwhile: nothing to chase
    if row["alerted"] is not None:
        nxt = await _next_contact(uow, referrer, row, sent.channel)
        if nxt is not None:
            await _fall_back(uow, row, nxt, sent)
            return
    if await _all_failed(uow, row):
        await _escalate_now(uow, sent)


async def _next_contact(uow: UnitOfWork, referrer: Referrer, row, channel: str) -> AgencyContact | None:
    """The unit's most preferred contact not alerted yet: on `channel` if one is left, else on any."""
    unit = (await referrer.directory.current(uow.session)).by_id.get(row["agency_unit_id"])
    alerted = {(c["channel"], c["address"]) for c in row["alerted"]}
    left = [c for c in (unit.contacts_in_order() if unit else []) if (c.channel, c.address) not in alerted]
    pick = next((c for c in left if c.channel == channel), left[0] if left else None)
    return None if pick is None else AgencyContact(channel=pick.channel, address=pick.address)


async def _fall_back(uow: UnitOfWork, row, contact: AgencyContact, sent: NotificationStatusChanged) -> None:
    await uow.session.execute(update(referrals).where(referrals.c.id == row["id"]).values(
        alerted=[*row["alerted"], contact.model_dump(mode="json")], updated_at=func.now()))
    uow.emit(ReferralContactFallback(
        referral_id=row["id"], case_id=row["case_id"], case_number=row["case_number"],
        agency_unit_id=row["agency_unit_id"], contact=contact, failed_channel=sent.channel,
        failed_status=sent.status, occurred_at=sent.occurred_at,
    ), key=str(row["case_id"]), subject=row["case_number"])
    log.warning("referral_alert_failed_trying_next_contact", referral_id=str(row["id"]), failed=sent.status,
                failed_channel=sent.channel, next_channel=contact.channel)


async def _all_failed(uow: UnitOfWork, row) -> bool:
    """Every alert of the referral has failed for good, and every contact alerted has been reported on: a
    fallback notify has not reported yet may still get through. Without `alerted` (referrals made before
    v1.1) or recipients (notify before v1.1), every alert notify has reported stands for all of them."""
    known = (await uow.session.execute(select(deliveries.c.channel, deliveries.c.recipient, deliveries.c.status)
                                       .where(deliveries.c.referral_id == row["id"],
                                              deliveries.c.channel.in_(CONTACT_CHANNELS)))).all()
    if any(status not in FAILED for _channel, _recipient, status in known):
        return False
    if row["alerted"] is None or any(recipient is None for _channel, recipient, _status in known):
        return True
    reported = {(channel, recipient) for channel, recipient, _status in known}
    return all((c["channel"], c["address"]) in reported for c in row["alerted"])


async def _escalate_now(uow: UnitOfWork, sent: NotificationStatusChanged) -> None:
    moved = await uow.session.scalar(
        update(referrals).where(referrals.c.id == sent.referral_id, referrals.c.status == S.created,
                                referrals.c.due_step.is_not(None))
        .values(due_step=ESCALATE, due_at=sent.occurred_at, updated_at=func.now()).returning(referrals.c.id))
    if moved is not None:
        log.warning("referral_undeliverable_escalating", referral_id=str(sent.referral_id),
                    last_failure=sent.status, channel=sent.channel)
