"""A referral's lifecycle: plain functions over a unit of work. Each change locks the row, checks the
lifecycle (409) and the caller's ETag (412), bumps the version, stamps the time and emits its event, all
in one transaction: nothing is half-written."""
import uuid
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select, update

from runtime.logging import get_logger
from runtime.pagination import decode_cursor, encode_cursor
from runtime.problems import NotFound, PreconditionFailed, PreconditionRequired
from runtime.uow import UnitOfWork
from schemas.events.referrals import (
    DeclineReason,
    ReferralOutcomeRecorded,
    ReferralStatusChanged,
    TransitionSource,
)
from schemas.events.referrals import (
    ReferralStatus as S,
)
from services.referral.models import agency_units, case_facts, referral_outcomes, referrals
from services.referral.referrals import lifecycle
from services.referral.referrals.handlers import Referrer
from services.referral.referrals.reroute import reroute
from services.referral.referrals.schemas import (
    AgencyReferralOut,
    AgencyReferralPage,
    OutcomeIn,
    OutcomeOut,
    UnitOut,
)
from services.referral.referrals.scope import AgencyScope

log = get_logger(__name__)
AGENCY = TransitionSource.agency_api


# ---- reading ----------------------------------------------------------------------------------------

_UNIT = [agency_units.c[f].label(f"unit_{f}") for f in UnitOut.model_fields]
_OWN = [referrals.c[f] for f in AgencyReferralOut.model_fields if f in referrals.c]


def _agency_query():
    return (select(*_OWN, *_UNIT, case_facts.c.facts["commune_code"].astext.label("commune_code"))
            .join(agency_units, agency_units.c.id == referrals.c.agency_unit_id)
            .outerjoin(case_facts, case_facts.c.case_id == referrals.c.case_id))


async def _agency_views(uow: UnitOfWork, rows) -> list[AgencyReferralOut]:
    ids = [r["id"] for r in rows]
    outcomes: dict[uuid.UUID, list[OutcomeOut]] = {i: [] for i in ids}
    if ids:
        for o in (await uow.session.execute(
            select(referral_outcomes).where(referral_outcomes.c.referral_id.in_(ids))
            .order_by(referral_outcomes.c.recorded_at, referral_outcomes.c.id)
        )).mappings():
            outcomes[o["referral_id"]].append(OutcomeOut.model_validate(dict(o)))
    return [AgencyReferralOut.model_validate({
        **r, "unit": {f: r[f"unit_{f}"] for f in UnitOut.model_fields}, "outcomes": outcomes[r["id"]],
    }) for r in rows]


async def agency_referral(uow: UnitOfWork, scope: AgencyScope, referral_id: uuid.UUID) -> AgencyReferralOut:
    row = (await uow.session.execute(_agency_query().where(referrals.c.id == referral_id))).mappings().first()
    if row is None or not scope.covers(row["unit_id"]):
        raise NotFound(f"no referral {referral_id}")
    return (await _agency_views(uow, [row]))[0]


async def agency_referrals(uow: UnitOfWork, scope: AgencyScope, *, status: S | None = None, cursor: str | None = None,
                           limit: int = 50) -> AgencyReferralPage:
    """The scope's referrals, newest first."""
    query = _agency_query().where(referrals.c.agency_unit_id.in_(scope.unit_ids))
    if status is not None:
        query = query.where(referrals.c.status == status)
    if cursor:
        at, last_id = decode_cursor(cursor, uuid.UUID)
        query = query.where(or_(referrals.c.created_at < at,
                                and_(referrals.c.created_at == at, referrals.c.id < last_id)))
    rows = (await uow.session.execute(
        query.order_by(referrals.c.created_at.desc(), referrals.c.id.desc()).limit(limit + 1))).mappings().all()
    page = await _agency_views(uow, rows[:limit])
    more = len(rows) > limit
    return AgencyReferralPage(items=page, next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None)


# ---- changing -----------------------------------------------------------------------------------------

async def _locked(uow: UnitOfWork, referral_id: uuid.UUID, scope: AgencyScope | None = None):
    row = (await uow.session.execute(
        select(referrals).where(referrals.c.id == referral_id).with_for_update())).mappings().first()
    if row is None or (scope is not None and not scope.covers(row["agency_unit_id"])):
        raise NotFound(f"no referral {referral_id}")
    return row


async def _locked_for_change(uow: UnitOfWork, scope: AgencyScope, referral_id: uuid.UUID, if_match: int | None,
                             to: S | None):
    """The row, once the change to `to` (None: an outcome) is allowed and the caller saw the current version."""
    if if_match is None:
        raise PreconditionRequired("send If-Match with the referral's ETag to change it", field="If-Match")
    row = await _locked(uow, referral_id, scope)
    # The lifecycle first: acknowledging twice is a 409 whichever ETag the second click sent.
    if to is None:
        lifecycle.check_outcome_allowed(row["status"])
    else:
        lifecycle.check(row["status"], to)
    if row["version"] != if_match:
        raise PreconditionFailed(f"the referral changed since it was read (now version {row['version']}); "
                                 "read it again", field="If-Match")
    return row


async def _move(uow: UnitOfWork, row, to: S, via: TransitionSource, now: datetime, **values) -> None:
    lifecycle.check(row["status"], to)
    values |= {"status": to, "version": referrals.c.version + 1, "updated_at": now, lifecycle.STAMP[to]: now}
    if to in lifecycle.STOPS_TIMER:
        values |= {"due_step": None, "due_at": None}
    await uow.session.execute(update(referrals).where(referrals.c.id == row["id"]).values(**values))
    uow.emit(ReferralStatusChanged(
        referral_id=row["id"], case_id=row["case_id"], case_number=row["case_number"],
        agency_unit_id=row["agency_unit_id"], from_status=row["status"], to_status=to, via=via,
        decline_reason=values.get("decline_reason"), changed_at=now,
    ), key=str(row["case_id"]), subject=row["case_number"])


async def _changed(uow: UnitOfWork, scope: AgencyScope, referral_id: uuid.UUID) -> AgencyReferralOut:
    out = await agency_referral(uow, scope, referral_id)
    await uow.commit()
    return out


async def transition(uow: UnitOfWork, scope: AgencyScope, referral_id: uuid.UUID, if_match: int | None,
                     to: S) -> AgencyReferralOut:
    """Acknowledge, accept or close, through the agency API."""
    row = await _locked_for_change(uow, scope, referral_id, if_match, to)
    await _move(uow, row, to, AGENCY, datetime.now(UTC))
    return await _changed(uow, scope, referral_id)


async def decline(uow: UnitOfWork, referrer: Referrer, scope: AgencyScope, referral_id: uuid.UUID,
                  if_match: int | None, reason: DeclineReason) -> tuple[AgencyReferralOut, int]:
    """Decline, and refer the case on to the next candidate. Returns the referral and how many new ones."""
    row = await _locked_for_change(uow, scope, referral_id, if_match, S.declined)
    now = datetime.now(UTC)
    await _move(uow, row, S.declined, AGENCY, now, decline_reason=reason)
    made = await reroute(uow, referrer, {**row, "decline_reason": reason}, now)
    return await _changed(uow, scope, referral_id), len(made)


async def record_outcome(uow: UnitOfWork, referrer: Referrer, scope: AgencyScope, referral_id: uuid.UUID,
                         if_match: int | None, result: OutcomeIn) -> AgencyReferralOut:
    lifecycle.check_outcome(result.outcome, result.victims, result.services)
    row = await _locked_for_change(uow, scope, referral_id, if_match, None)
    now = datetime.now(UTC)
    await uow.session.execute(referral_outcomes.insert().values(
        id=uuid.uuid4(), referral_id=referral_id, outcome=result.outcome, victims=result.victims,
        services=list(result.services), recorded_by=scope.subject, recorded_at=now))
    await uow.session.execute(update(referrals).where(referrals.c.id == referral_id)
                              .values(version=referrals.c.version + 1, updated_at=now))
    unit = (await referrer.directory.current(uow.session)).by_id.get(row["agency_unit_id"])
    uow.emit(ReferralOutcomeRecorded(
        referral_id=referral_id, case_id=row["case_id"], case_number=row["case_number"],
        agency_unit_id=row["agency_unit_id"], agency_kind=unit.kind if unit else "unknown",
        province_code=row["province_code"], outcome=result.outcome, victims=result.victims,
        services=result.services, recorded_at=now,
    ), key=str(row["case_id"]), subject=row["case_number"])
    return await _changed(uow, scope, referral_id)


async def link_target(uow: UnitOfWork, referral_id: uuid.UUID) -> dict:
    """What an acknowledge link points at, read only: opening a link must change nothing, because mail
    scanners open links before anyone reads the message."""
    row = (await uow.session.execute(
        select(referrals.c.id, referrals.c.case_number, referrals.c.status, referrals.c.acknowledged_at)
        .where(referrals.c.id == referral_id))).mappings().first()
    if row is None:
        raise NotFound(f"no referral {referral_id}")
    return dict(row)


async def acknowledge_by_link(uow: UnitOfWork, referral_id: uuid.UUID) -> tuple[dict, bool]:
    """Acknowledge from a signed link. A second click changes nothing. Returns (row after, was it already)."""
    row = await _locked(uow, referral_id)
    if row["status"] in lifecycle.ACKNOWLEDGED_OR_LATER:
        return dict(row), True
    now = datetime.now(UTC)
    await _move(uow, row, S.acknowledged, TransitionSource.ack_link, now)
    await uow.commit()
    return {**row, "status": S.acknowledged, "acknowledged_at": now}, False


async def mark_notified(uow: UnitOfWork, referral_id: uuid.UUID, now: datetime) -> bool:
    """An alert reached the unit: a created referral becomes notified. One the unit already acknowledged
    (it may act before delivery is reported), or already notified, stays as it is."""
    row = (await uow.session.execute(
        select(referrals).where(referrals.c.id == referral_id).with_for_update())).mappings().first()
    if row is None or row["status"] != S.created:
        return False
    await _move(uow, row, S.notified, TransitionSource.delivery, now)
    return True
