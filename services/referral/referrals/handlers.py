"""Event handlers: plain functions over a unit of work. A case's facts go through the rules in force
against the directory in memory; each chosen unit gets one referral, with the trace of why."""
import asyncio
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from pydantic_core import to_jsonable_python
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseFacts, CaseReported, CaseUpdated
from schemas.events.common import Urgency
from schemas.events.referrals import AgencyContact, ContactChannel, ReferralCreated
from services.referral.directory.repository import DirectoryCache
from services.referral.matching.engine import Match, explain
from services.referral.matching.loader import RuleBook
from services.referral.models import referrals
from services.referral.settings import ReferralSettings

log = get_logger(__name__)
# A rule whose condition held but that found no unit: someone must act on it by hand, and fix the
# directory or the rules. Labels are rule ids (and "rule:need"), a few dozen at most.
MATCH_GAPS = Counter("referral_match_gaps_total", "Rules that applied to a case but found no unit", ["rule"])


def ack_deadline(settings: ReferralSettings, urgency: Urgency, now: datetime) -> datetime:
    minutes = {
        Urgency.emergency: settings.ack_minutes_emergency,
        Urgency.high: settings.ack_minutes_high,
        Urgency.normal: settings.ack_minutes_normal,
    }[urgency]
    return now + timedelta(minutes=minutes)


@dataclass
class Referrer:
    """What one referral process matches with: its settings, the rules in force, the directory."""

    settings: ReferralSettings
    rules: RuleBook
    directory: DirectoryCache

    async def watch_rules(self, stop: asyncio.Event) -> None:
        """Reload the rules file when it changes; a broken file leaves the rules in force (RuleBook)."""
        while not stop.is_set():
            self.rules.reload_if_changed()
            try:
                await asyncio.wait_for(stop.wait(), self.settings.rules_reload_s)
            except TimeoutError:
                pass


async def refer(uow: UnitOfWork, referrer: Referrer, case: CaseFacts, now: datetime) -> int:
    """One referral per chosen unit the case does not have yet. Returns how many were made."""
    directory = await referrer.directory.current(uow.session)
    due = ack_deadline(referrer.settings, case.urgency, now)
    outcome = explain(case, directory, referrer.rules, now)
    if outcome.unmatched:
        log.warning("case_match_gaps", case_id=str(case.case_id), case_number=case.case_number,
                    rules=list(outcome.unmatched))
        for gap in outcome.unmatched:
            MATCH_GAPS.labels(gap).inc()
    made = 0
    for m in outcome.matches:
        referral_id = uuid.uuid4()
        inserted = await uow.session.scalar(
            insert(referrals).values(
                id=referral_id, case_id=case.case_id, case_number=case.case_number, agency_unit_id=m.unit.id,
                status="created", urgency=case.urgency, province_code=case.province_code,
                match_reason=_reason(m), rule_ids=list(m.rules), trace=_trace(m), identity_shared=m.identity_shared,
                acknowledge_by=due, created_at=now, updated_at=now, due_step="remind", due_at=due,
            ).on_conflict_do_nothing(constraint="uq_referral_case_unit").returning(referrals.c.id)
        )
        if inserted is None:
            continue  # this case already went to this unit (a redelivery, or an update matching it again)
        made += 1
        uow.emit(ReferralCreated(
            referral_id=referral_id, case_id=case.case_id, case_number=case.case_number,
            agency_unit_id=m.unit.id, agency_unit_name=m.unit.name, agency_kind=m.unit.kind,
            agency_level=m.unit.level, province_code=case.province_code, urgency=case.urgency,
            acknowledge_by=due, match_reason=_reason(m), rule_ids=list(m.rules), identity_shared=m.identity_shared,
            contacts=[AgencyContact(channel=ContactChannel(c.channel), address=c.address)
                      for c in m.unit.contacts_in_order()],
        ), key=str(case.case_id), subject=case.case_number)
    return made


def _reason(m: Match) -> str:
    return "; ".join(m.reasons[r] for r in m.rules)[:500]


def _trace(m: Match) -> list[dict]:
    return to_jsonable_python([asdict(step) for step in m.trace])


def on_case(referrer: Referrer):
    """A reported case is matched; an updated one again, so new facts (at sea, a need) reach new units."""
    async def handle(uow: UnitOfWork, event: Event[CaseReported] | Event[CaseUpdated]) -> None:
        made = await refer(uow, referrer, event.payload, datetime.now(UTC))
        log.info("case_matched", case_id=str(event.payload.case_id), referrals=made, rules=referrer.rules.version[:12])

    return handle
