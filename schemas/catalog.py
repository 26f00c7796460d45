"""Which event types exist, on which topic, produced and consumed by whom.

Topic creation, the AsyncAPI document and the Kubernetes KafkaTopic manifests all derive from this.
"""
import re
from dataclasses import dataclass

from pydantic import BaseModel

from schemas.events.cases import CaseMerged, CaseNoteAdded, CaseReported, CaseStatusChanged, CaseUpdated
from schemas.events.contacts import ContactAttached, ContactRecorded
from schemas.events.directory import DirectoryUnitChanged
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import (
    ReferralContactFallback, ReferralCreated, ReferralEscalated, ReferralOutcomeRecorded, ReferralReminder,
    ReferralStatusChanged,
)
from schemas.feeds import FEEDS

TYPE_PREFIX = "vn.hotline111"
# <prefix>.<family>.<name>.v<major>, e.g. vn.hotline111.case.status-changed.v1, vn.hotline111.feed.police.referral.v1
_TYPE_NAME = re.compile(
    rf"{re.escape(TYPE_PREFIX)}\.(?P<family>[a-z][a-z0-9-]*)\.(?P<name>[a-z0-9][a-z0-9.-]*)\.v(?P<major>[0-9]+)")


@dataclass(frozen=True)
class EventSpec:
    type: str
    model: type[BaseModel]
    topic: str
    summary: str


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    producer: str
    consumers: tuple[str, ...]
    description: str
    key: str = "case id"  # what the Kafka key of every event on it is
    readers: tuple[str, ...] = ()  # systems outside the platform that read it (an agency's Kafka user)
    dead_letters: bool = True  # False: none of our services consumes it, so there is nothing to dead-letter

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


TOPICS: tuple[Topic, ...] = (
    Topic(
        name="intake.cases.v1",
        partitions=6,
        producer="intake",
        consumers=("referral", "reporting"),
        description="Case lifecycle events from intake. Key: case id.",
    ),
    Topic(
        name="intake.contacts.v1",
        partitions=6,
        producer="intake",
        consumers=("reporting",),
        description="Every contact with the hotline, case or not. Key: case id if attached, else contact id.",
    ),
    Topic(
        name="referral.referrals.v1",
        partitions=6,
        producer="referral",
        consumers=("intake", "notify", "reporting"),
        description="Referrals of cases to agency units. Key: case id.",
    ),
    Topic(
        name="notify.notifications.v1",
        partitions=6,
        producer="notify",
        consumers=("referral", "reporting"),
        description="Delivery status of agency alerts. Key: case id.",
    ),
    Topic(
        name="referral.directory.v1",
        partitions=6,
        producer="referral",
        consumers=(),
        description="Changes to the agency directory, one event per changed unit. Key: unit code.",
        key="unit code",
    ),
) + tuple(
    Topic(
        name=feed.topic,
        partitions=feed.partitions,
        producer="referral",
        consumers=(),
        readers=(feed.reader,),
        dead_letters=False,
        description=f"Agency feed for {feed.organisation}: its referrals, only the fields it may see. Read by "
                    f"its own system alone. Key: case id.",
    )
    for feed in FEEDS
)

EVENTS: tuple[EventSpec, ...] = (
    EventSpec(f"{TYPE_PREFIX}.case.reported.v1", CaseReported, "intake.cases.v1", "A case was reported."),
    EventSpec(f"{TYPE_PREFIX}.case.updated.v1", CaseUpdated, "intake.cases.v1", "A case's facts changed."),
    EventSpec(
        f"{TYPE_PREFIX}.case.status-changed.v1", CaseStatusChanged, "intake.cases.v1", "A case changed status."
    ),
    EventSpec(f"{TYPE_PREFIX}.case.merged.v1", CaseMerged, "intake.cases.v1", "A duplicate case was merged."),
    EventSpec(f"{TYPE_PREFIX}.case.note-added.v1", CaseNoteAdded, "intake.cases.v1", "A note was added to a case."),
    EventSpec(
        f"{TYPE_PREFIX}.contact.recorded.v1", ContactRecorded, "intake.contacts.v1", "A contact was recorded."
    ),
    EventSpec(
        f"{TYPE_PREFIX}.contact.attached.v1", ContactAttached, "intake.contacts.v1", "A contact joined a case."
    ),
    EventSpec(
        f"{TYPE_PREFIX}.referral.created.v1", ReferralCreated, "referral.referrals.v1", "A case was referred."
    ),
    EventSpec(f"{TYPE_PREFIX}.referral.status-changed.v1", ReferralStatusChanged, "referral.referrals.v1",
              "A referral moved in its lifecycle."),
    EventSpec(f"{TYPE_PREFIX}.referral.outcome-recorded.v1", ReferralOutcomeRecorded, "referral.referrals.v1",
              "An agency recorded a result."),
    EventSpec(f"{TYPE_PREFIX}.referral.reminder.v1", ReferralReminder, "referral.referrals.v1",
              "A referral missed its acknowledgement deadline; the unit is reminded."),
    EventSpec(f"{TYPE_PREFIX}.referral.escalated.v1", ReferralEscalated, "referral.referrals.v1",
              "An unacknowledged referral went one level up."),
    EventSpec(f"{TYPE_PREFIX}.referral.contact-fallback.v1", ReferralContactFallback, "referral.referrals.v1",
              "An alert failed for good; the unit is alerted on its next contact."),
    EventSpec(
        f"{TYPE_PREFIX}.notification.status-changed.v1",
        NotificationStatusChanged,
        "notify.notifications.v1",
        "An alert changed delivery status.",
    ),
    EventSpec(f"{TYPE_PREFIX}.directory.unit-changed.v1", DirectoryUnitChanged, "referral.directory.v1",
              "An agency unit was created or changed."),
)

FEED_EVENTS: tuple[EventSpec, ...] = tuple(
    EventSpec(f"{TYPE_PREFIX}.feed.{feed.id}.referral.v1", feed.payload, feed.topic,
              f"A referral to a unit of {feed.organisation} was made or changed; its whole current state.")
    for feed in FEEDS
)


@dataclass(frozen=True)
class Catalog:
    topics: tuple[Topic, ...]
    events: tuple[EventSpec, ...]

    def topic(self, name: str) -> Topic:
        return next(t for t in self.topics if t.name == name)

    def events_on(self, topic: str) -> list[EventSpec]:
        return [e for e in self.events if e.topic == topic]

    def unexpected_type(self, topic: str, ce_type: str) -> str | None:
        """Why an event of type `ce_type` has no place on `topic`, or None if it may be there.

        A consumer ignores a type it does not handle only when it may be a newer type of that topic: one of
        the platform (`vn.hotline111.`), of the family the topic carries (`case.*` on intake.cases.v1) and
        of the topic's major version. That is how a release adds an event (roll out its consumers first;
        docs/operations.md). Anything else is a dead letter: a foreign type, another major version (which
        docs/events.md puts on a topic of its own), or a type the catalogue puts on another topic. Nothing
        is known of a topic outside the catalogue: None."""
        spec = _BY_TYPE.get(ce_type)
        if spec is not None and spec.topic == topic:  # the common case, first: once per event consumed
            return None
        on_topic = self.events_on(topic)
        if not on_topic:
            return None
        if spec is not None:
            return f"{ce_type} belongs on {spec.topic}, not here"
        shown = ce_type[:120]
        parsed = _TYPE_NAME.fullmatch(ce_type)
        if parsed is None:
            return f"{shown!r} is not an event type of the platform ({TYPE_PREFIX}.<family>.<name>.v<N>)"
        known = [_TYPE_NAME.fullmatch(e.type) for e in on_topic]
        families = sorted({k["family"] for k in known})
        if parsed["family"] not in families:
            return f"{topic} carries {', '.join(families)} events, not {parsed['family']}"
        majors = sorted({k["major"] for k in known})
        if parsed["major"] not in majors:
            return (f"{topic} carries version {', '.join(majors)} events: "
                    f"a v{parsed['major']} type has a topic of its own")
        return None


CATALOG = Catalog(TOPICS, EVENTS + FEED_EVENTS)
_BY_TYPE = {e.type: e for e in CATALOG.events}
_BY_MODEL = {e.model: e for e in CATALOG.events}


def event_spec_for_type(ce_type: str) -> EventSpec | None:
    return _BY_TYPE.get(ce_type)


def event_spec_for_model(model: type[BaseModel]) -> EventSpec:
    return _BY_MODEL[model]
