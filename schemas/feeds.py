"""The agency feeds: which organisations' systems read their referrals by machine, and what each may see.

Each feed is one topic, one event type and one payload model (its allowlist). The catalogue, the
AsyncAPI document, the KafkaTopics and the Kafka ACLs (one reader per feed) all derive from this list.
"""
from dataclasses import dataclass

from schemas.events.feeds import (
    BorderGuardReferral, CoastGuardReferral, ConsularReferral, FeedReferral, PoliceReferral,
)


@dataclass(frozen=True)
class AgencyFeed:
    id: str  # stable: it names the topic, the event type and the agency system's Kafka user
    organisation: str
    unit_kinds: frozenset[str]  # the directory's unit kinds that belong to the organisation
    payload: type[FeedReferral]
    partitions: int = 3

    @property
    def topic(self) -> str:
        return f"referral.feed.{self.id}.v1"

    @property
    def reader(self) -> str:
        """The agency system's name as a Kafka principal (the deploy's KafkaUser)."""
        return f"agency-{self.id}"


FEEDS: tuple[AgencyFeed, ...] = (
    AgencyFeed("police", "Ministry of Public Security: police, from commune to its anti-trafficking department",
               frozenset({"police_commune", "police_province", "police_national"}), PoliceReferral),
    AgencyFeed("border-guard", "Border Guard: provincial commands and border posts",
               frozenset({"border_guard_province", "border_post"}), BorderGuardReferral),
    AgencyFeed("coast-guard", "Vietnam Coast Guard: regional commands",
               frozenset({"coast_guard_region"}), CoastGuardReferral),
    AgencyFeed("consular", "Ministry of Foreign Affairs: consular department",
               frozenset({"consular_department"}), ConsularReferral),
)

_BY_KIND = {kind: feed for feed in FEEDS for kind in feed.unit_kinds}


def feed_for_kind(unit_kind: str) -> AgencyFeed | None:
    """The feed of the organisation a unit of this kind belongs to; None: it is alerted only."""
    return _BY_KIND.get(unit_kind)
