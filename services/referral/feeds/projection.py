"""Agency feeds (schemas/feeds.py): each referral event about a unit whose organisation reads by machine
is also written to that organisation's own topic, in the same transaction as the event itself, so a
feed never misses nor invents a change."""
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import select

from runtime.logging import get_logger
from runtime.uow import BeforeCommit, UnitOfWork
from schemas.events.cases import CaseFacts
from schemas.feeds import feed_for_kind
from services.referral.directory.repository import DirectoryCache
from services.referral.feeds.messages import FEED_SOURCES, feed_message
from services.referral.models import case_facts, referrals

log = get_logger(__name__)


def feed_projection(directory: DirectoryCache) -> BeforeCommit:
    async def project(uow: UnitOfWork, emitted: list[BaseModel]) -> None:
        wanted = []
        for event in emitted:
            if isinstance(event, FEED_SOURCES):
                unit = await directory.unit(uow.session, event.agency_unit_id)
                feed = unit and feed_for_kind(unit.kind)
                if feed:
                    wanted.append((event, unit, feed))
        if not wanted:
            return
        rows = await _referrals(uow, {event.referral_id for event, _, _ in wanted})
        for event, unit, feed in wanted:
            row = rows[event.referral_id]
            if row["facts"] is None:  # a referral older than case_facts: nothing safe to say about the case
                log.warning("feed_skipped_no_facts", referral_id=str(event.referral_id), feed=feed.id)
                continue
            message = feed_message(feed, event, unit, row, CaseFacts.model_validate(row["facts"]))
            uow.emit(message, key=str(event.case_id), subject=event.case_number)

    return project


async def _referrals(uow: UnitOfWork, ids: set[UUID]) -> dict[UUID, dict]:
    r = referrals.c
    found = await uow.session.execute(
        select(r.id, r.status, r.urgency, r.province_code, r.acknowledge_by, r.identity_shared, r.decline_reason,
               r.created_at, r.reminded_at, case_facts.c.facts)
        .outerjoin(case_facts, case_facts.c.case_id == r.case_id).where(r.id.in_(ids)))
    return {row["id"]: dict(row) for row in found.mappings()}
