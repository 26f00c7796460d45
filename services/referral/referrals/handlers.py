"""Event handlers: plain functions over a unit of work. A case's facts go through the rules in force
against the directory in memory; each chosen unit gets one referral, with the trace of why."""
import asyncio
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from prometheus_client import Counter
from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from runtime.consumer import Event
from runtime.logging import get_logger
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseFacts, CaseReported, CaseUpdated
from schemas.events.common import Urgency
from schemas.events.referrals import AgencyContact, ContactChannel, ReferralCause, ReferralCreated
from services.referral.directory.model import Unit
from services.referral.directory.repository import DirectoryCache
from services.referral.matching.engine import Match, explain
from services.referral.matching.loader import RuleBook
from services.referral.models import case_facts, referrals
from services.referral.referrals.links import AckLinks, link_expiry
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

    @cached_property
    def links(self) -> AckLinks | None:
        """Signs acknowledge links; None without REFERRAL_LINK_SECRET (the serving app refuses to start so)."""
        secret = self.settings.referral_link_secret
        return AckLinks(secret.get_secret_value(), self.settings.referral_public_url) if secret else None

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
    await remember_facts(uow, case, now)
    directory = await referrer.directory.current(uow.session)
    outcome = explain(case, directory, referrer.rules, now)
    if outcome.unmatched:
        log.warning("case_match_gaps", case_id=str(case.case_id), case_number=case.case_number,
                    rules=list(outcome.unmatched))
        for gap in outcome.unmatched:
            MATCH_GAPS.labels(gap).inc()
    # Units the case already has are left out (a redelivery, or an update matching them again).
    return len(await create_referrals(uow, referrer, case, list(outcome.matches), now))


def language_of(unit: Unit) -> str:
    """What to write to a unit in: Vietnamese when it reads it, else English (foreign counterparts)."""
    return "vi" if "vi" in unit.languages else "en"


def contacts_of(unit: Unit) -> list[AgencyContact]:
    """Where to alert a unit, in its order of preference."""
    return [AgencyContact(channel=ContactChannel(c.channel), address=c.address) for c in unit.contacts_in_order()]


def first_contacts(unit: Unit, urgency: Urgency = Urgency.normal) -> list[AgencyContact]:
    """Where to alert a unit first: its most preferred contact of each channel, in order of preference;
    for an emergency, its 24/7 duty contacts first. The others are kept for when an alert fails
    (referrals/delivery.py)."""
    first = {}
    ordered = unit.contacts_in_order()
    if urgency is Urgency.emergency:
        ordered.sort(key=lambda c: not c.duty_24_7)  # stable: preference order within each group
    for c in ordered:
        first.setdefault(c.channel, c)
    return [AgencyContact(channel=ContactChannel(c.channel), address=c.address) for c in first.values()]


async def create_referral(uow: UnitOfWork, referrer: Referrer, case: CaseFacts, m: Match, now: datetime, *,
                          cause: ReferralCause = ReferralCause.matched, previous: uuid.UUID | None = None,
                          why: str = "") -> uuid.UUID | None:
    """A referral of the case to the matched unit, with its ReferralCreated event; None if the case
    already has one there. `why` goes before the rules' reasons (e.g. what a re-route replaces)."""
    made = await create_referrals(uow, referrer, case, [m], now, cause=cause, previous=previous, why=why)
    return made[0] if made else None


async def create_referrals(uow: UnitOfWork, referrer: Referrer, case: CaseFacts, matches: list[Match],
                           now: datetime, *, cause: ReferralCause = ReferralCause.matched,
                           previous: uuid.UUID | None = None, why: str = "") -> list[uuid.UUID]:
    """Referrals of the case to the matched units it does not have yet, in one statement, each with its
    ReferralCreated event. Returns the ids made, in match order."""
    if not matches:
        return []
    due = ack_deadline(referrer.settings, case.urgency, now)
    contacts = {m.unit.id: first_contacts(m.unit, Urgency(case.urgency)) for m in matches}
    rows = {m.unit.id: {
        "id": uuid.uuid4(), "case_id": case.case_id, "case_number": case.case_number, "agency_unit_id": m.unit.id,
        "status": "created", "urgency": case.urgency, "province_code": case.province_code,
        "match_reason": (why + _reason(m))[:500], "rule_ids": list(m.rules), "trace": _trace(m),
        "identity_shared": m.identity_shared, "acknowledge_by": due, "created_at": now, "updated_at": now,
        "due_step": "remind", "due_at": due, "cause": cause, "previous_referral_id": previous,
        "alerted": [c.model_dump(mode="json") for c in contacts[m.unit.id]],
    } for m in matches}
    inserted = set((await uow.session.scalars(
        insert(referrals).values(list(rows.values()))
        .on_conflict_do_nothing(constraint="uq_referral_case_unit").returning(referrals.c.agency_unit_id)
    )).all())
    links, made = referrer.links, []
    for m in matches:
        if m.unit.id not in inserted:
            continue
        row = rows[m.unit.id]
        made.append(row["id"])
        uow.emit(ReferralCreated(
            referral_id=row["id"], case_id=case.case_id, case_number=case.case_number,
            agency_unit_id=m.unit.id, agency_unit_name=m.unit.name, agency_kind=m.unit.kind,
            agency_level=m.unit.level, province_code=case.province_code, urgency=case.urgency,
            acknowledge_by=due, match_reason=row["match_reason"], rule_ids=list(m.rules),
            identity_shared=m.identity_shared, contacts=contacts[m.unit.id], cause=cause, previous_referral_id=previous,
            ack_url=links.ack_link(row["id"], link_expiry(due)) if links else None,
            commune_code=case.commune_code, exploitation=list(case.exploitation), language=language_of(m.unit),
        ), key=str(case.case_id), subject=case.case_number)
    return made


async def remember_facts(uow: UnitOfWork, case: CaseFacts, now: datetime) -> None:
    """Keep the case's newest facts (a late, older event does not overwrite them)."""
    stmt = insert(case_facts).values(case_id=case.case_id, version=case.version, updated_at=now,
                                     facts=case.model_dump(mode="json", include=set(CaseFacts.model_fields)))
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=[case_facts.c.case_id],
        set_={"version": stmt.excluded.version, "facts": stmt.excluded.facts, "updated_at": stmt.excluded.updated_at},
        where=case_facts.c.version <= stmt.excluded.version,
    ))


async def latest_facts(uow: UnitOfWork, case_id: uuid.UUID) -> CaseFacts | None:
    """The case's newest facts; None for a case referred before they were kept."""
    facts = await uow.session.scalar(select(case_facts.c.facts).where(case_facts.c.case_id == case_id))
    return None if facts is None else CaseFacts.model_validate(facts)


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
