"""Event handlers: what each referral event makes notify send, recorded in the consumer's transaction; the
dispatcher sends it after the commit. A redelivered event makes nothing new: the inbox drops it, and a
message is unique per source event and target anyway.

- referral.created (matched, escalated to the unit, or re-routed to it): the contacts referral chose
  (the first of each channel; for an emergency the 24/7 duty ones, SMS and email at once), and the unit's
  webhooks.
- referral.reminder: every contact of the unit, and its webhooks.
- referral.escalated and a referral closed: whoever received the referral's first alert.
- referral.contact-fallback: the next contact, with the first alert rendered for its channel.
"""
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.tracing import current_carrier
from runtime.uow import UnitOfWork
from schemas.events.common import Urgency
from schemas.events.notifications import DeliveryStatus as D
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import (
    ReferralContactFallback, ReferralCreated, ReferralEscalated, ReferralReminder, ReferralStatusChanged,
)
from services.notify.delivery.registry import Senders
from services.notify.delivery.webhook import cloudevent_for
from services.notify.models import SCHEMA, notifications
from services.notify.notifications.status import count_finished
from services.notify.recipients import InvalidRecipient, normalise
from services.notify.templates.kinds import context_for, facts_of, kind_of, language_of
from services.notify.templates.rendering import render
from services.notify.templates.repository import TemplateBook
from services.notify.webhooks.service import endpoints_for

log = get_logger(__name__)
DISPATCH_CHANNEL = f"{SCHEMA}_dispatch"
PRIORITY = {Urgency.emergency: 0, Urgency.high: 1, Urgency.normal: 2}
NO_PROVIDER = "channel-unsupported"  # provider code of a message on a channel with no provider configured
INVALID = "invalid-recipient"
FIRST_KINDS = ("referral.created", "referral.rerouted")

ReferralEvent = ReferralCreated | ReferralReminder | ReferralEscalated | ReferralStatusChanged | ReferralContactFallback


@dataclass(frozen=True)
class Target:
    channel: str
    recipient: str
    webhook_endpoint_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Message:
    """What one event makes: the same kind and context for every target."""

    source_id: uuid.UUID
    ce_type: str
    referral_id: uuid.UUID
    case_id: uuid.UUID
    kind: str
    language: str
    kept: dict  # {"facts": what the referral's events said (codes), "values": the template context (words)}
    priority: int
    payload: dict  # the referral event, for webhooks
    at: datetime  # when notify took the event: every message it makes is recorded, and reported, at this instant


def referral_handlers(senders: Senders, book: TemplateBook, *, allow_fictitious: bool = False):
    """The consumer's handler for every referral event, over the providers and the templates in force."""
    async def handle(uow: UnitOfWork, event: Event[ReferralEvent]) -> None:
        payload = event.payload
        first = await _first_alert(uow, payload.referral_id)
        if isinstance(payload, ReferralContactFallback):
            if first is None:
                log.warning("fallback_without_first_alert", referral_id=str(payload.referral_id))
                return
            if await _has_alerted(uow, payload.referral_id, payload.contact.channel, payload.contact.address):
                return  # that contact has the alert already, whichever event asked for it
            # The first alert again, for the next contact's channel: same kind, language and words.
            kind, language, kept = first["kind"], first["language"], first["context"]
        else:
            kind = kind_of(payload)
            if kind is None:
                return  # a change no one is told about (acknowledged, accepted, …)
            earlier = first["context"]["facts"] if first else None
            language = language_of(payload, earlier)
            kept = {"facts": {**(earlier or {}), **facts_of(payload)},
                    "values": context_for(kind, payload, language, earlier)}
        message = Message(
            source_id=event.id, ce_type=event.type, referral_id=payload.referral_id, case_id=payload.case_id,
            kind=kind, language=language, kept=kept, priority=_priority(kept["facts"]),
            payload=payload.model_dump(mode="json"), at=datetime.now(UTC),
        )
        queued = 0
        for target in await _targets(uow, payload):
            queued += await queue(uow, senders, book, message, target, allow_fictitious=allow_fictitious)
        if queued:
            await wake_dispatcher(uow)

    return handle


async def queue(uow: UnitOfWork, senders: Senders, book: TemplateBook, m: Message, target: Target, *,
                allow_fictitious: bool = False) -> bool:
    """Record one message to one target, and emit its first status. A recipient that does not validate or
    a channel with no provider fails at once, so referral moves on to the unit's next contact. True when
    the dispatcher has something new to send."""
    now = m.at
    status, code = D.created, None
    try:
        recipient = normalise(target.channel, target.recipient, allow_fictitious=allow_fictitious)
    except InvalidRecipient as exc:
        recipient, status, code = target.recipient, D.permanent_failure, INVALID
        log.warning("notification_invalid_recipient", referral_id=str(m.referral_id), channel=target.channel,
                    reason=str(exc))
    if status is D.created and not senders.supports(target.channel, recipient):
        status, code = D.technical_failure, NO_PROVIDER
    values = {"subject": "", "body": "", "template_id": None, "template_version": None, "segments": None,
              "encoding": None}
    if target.channel == "webhook":
        values["body"] = cloudevent_for(m.ce_type, "/hotline111/referral", m.kept["values"]["reference"],
                                        m.payload, str(m.source_id), now)
    else:
        template = await book.current(uow.session, m.kind, target.channel, m.language)
        rendered = render(template, m.kept["values"])
        size = rendered.size
        values |= {"subject": rendered.subject or "", "body": rendered.body, "template_id": template.id,
                   "template_version": template.version, "segments": size and size.segments,
                   "encoding": size and size.encoding}
    notification_id = uuid.uuid4()
    inserted = await uow.session.scalar(
        insert(notifications).values(
            id=notification_id, source_id=m.source_id, referral_id=m.referral_id, case_id=m.case_id,
            channel=target.channel, recipient=recipient, status=status, provider_code=code, trace=current_carrier(),
            kind=m.kind, language=m.language, priority=m.priority, context=m.kept,
            webhook_endpoint_id=target.webhook_endpoint_id,
            retry_until=now + timedelta(seconds=senders.retry_window_s(m.priority)), **values,
            # The event's instant, as its status event says, not the transaction's start: a consumer's
            # transaction may hold several events and have begun a while before this one.
            created_at=now, updated_at=now,
        ).on_conflict_do_nothing(constraint="uq_notification_source_target").returning(notifications.c.id)
    )
    if inserted is None:
        return False
    count_finished(uow, target.channel, status)  # born failed (a bad number, no provider): an outcome too
    uow.emit(NotificationStatusChanged(
        notification_id=notification_id, referral_id=m.referral_id, case_id=m.case_id, channel=target.channel,
        status=status, occurred_at=now, attempts=0, recipient=recipient,
        kind=m.kind,
    ), key=str(m.case_id))
    return status is D.created


async def wake_dispatcher(uow: UnitOfWork) -> None:
    await uow.session.execute(text("SELECT pg_notify(:c, '')"), {"c": DISPATCH_CHANNEL})


async def _first_alert(uow: UnitOfWork, referral_id: uuid.UUID) -> dict | None:
    """The referral's first alert: its kind, language and context, which later messages build on."""
    row = (await uow.session.execute(
        select(notifications.c.kind, notifications.c.language, notifications.c.context)
        .where(notifications.c.referral_id == referral_id, notifications.c.kind.in_(FIRST_KINDS),
               notifications.c.context.is_not(None))
        .order_by(notifications.c.created_at, notifications.c.id).limit(1))).mappings().first()
    return dict(row) if row else None


async def _has_alerted(uow: UnitOfWork, referral_id: uuid.UUID, channel: str, address: str) -> bool:
    n = notifications.c
    return await uow.session.scalar(select(n.id).where(
        n.referral_id == referral_id, n.channel == channel, n.recipient == address, n.kind.in_(FIRST_KINDS)
    ).limit(1)) is not None


async def _targets(uow: UnitOfWork, payload: ReferralEvent) -> list[Target]:
    if isinstance(payload, ReferralContactFallback):
        return [Target(payload.contact.channel, payload.contact.address)]
    if isinstance(payload, ReferralCreated | ReferralReminder):
        contacts = [Target(c.channel, c.address) for c in payload.contacts]
        hooks = [Target("webhook", e.url, e.id) for e in await endpoints_for(uow.session, payload.agency_unit_id)]
        return contacts + hooks
    return await _first_recipients(uow, payload.referral_id)


async def _first_recipients(uow: UnitOfWork, referral_id: uuid.UUID) -> list[Target]:
    """Whoever the referral's first alert reached, or, if it reached nobody yet, was meant for."""
    n = notifications.c
    rows = (await uow.session.execute(
        select(n.channel, n.recipient, n.webhook_endpoint_id, n.status)
        .where(n.referral_id == referral_id, n.kind.in_(FIRST_KINDS)).order_by(n.created_at, n.id))).all()
    reached = [r for r in rows if r.status in (D.delivered, D.sent)] or rows
    return list(dict.fromkeys(Target(r.channel, r.recipient, r.webhook_endpoint_id) for r in reached))


def _priority(facts: dict) -> int:
    try:
        return PRIORITY[Urgency(facts.get("urgency") or Urgency.normal)]
    except ValueError:
        return PRIORITY[Urgency.normal]
