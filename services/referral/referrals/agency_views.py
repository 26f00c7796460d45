"""The agency API: a unit's staff read their referrals and move them on. Every change needs If-Match
with the ETag last read (428 without, 412 when stale); a move the lifecycle forbids is a 409."""
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from runtime.auth import Principal, Role, require
from runtime.etags import etag, parse_if_match
from runtime.problems import problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from schemas.events.referrals import ReferralStatus
from services.referral.referrals import service
from services.referral.referrals.handlers import Referrer
from services.referral.referrals.schemas import (
    AgencyReferralOut,
    AgencyReferralPage,
    DeclineIn,
    DeclineOut,
    OutcomeIn,
)
from services.referral.referrals.scope import AgencyScope, scope_of

router = APIRouter(prefix="/agency", tags=["agency"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Agency = Annotated[Principal, Depends(require(Role.AGENCY))]
IfMatch = Annotated[str | None, Header(description="The ETag of the referral as you last read it.")]
# Every move: another unit's referral is a 404, a move the lifecycle forbids a 409, If-Match 428 or 412.
CHANGE = problems(404, 409, 412, 428)


def referrer_of(request: Request) -> Referrer:
    return request.app.state.referrer


async def agency_scope(principal: Agency, uow: Uow, referrer: Annotated[Referrer, Depends(referrer_of)]) -> AgencyScope:
    return scope_of(principal, await referrer.directory.current(uow.session))


Scope = Annotated[AgencyScope, Depends(agency_scope)]
Ref = Annotated[Referrer, Depends(referrer_of)]


def _with_etag(response: Response, referral: AgencyReferralOut) -> AgencyReferralOut:
    response.headers["ETag"] = etag(referral.version)
    return referral


@router.get("/referrals", response_model=AgencyReferralPage)
async def list_referrals(
    uow: Uow, scope: Scope,
    status_: Annotated[ReferralStatus | None, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AgencyReferralPage:
    """Your units' referrals, newest first (a unit's code also covers the units below it)."""
    return await service.agency_referrals(uow, scope, status=status_, cursor=cursor, limit=limit)


@router.get("/referrals/{referral_id}", response_model=AgencyReferralOut, responses=problems(404))
async def get_referral(referral_id: UUID, uow: Uow, scope: Scope, response: Response) -> AgencyReferralOut:
    """One of your referrals, with its `ETag`. Another unit's referral is a 404."""
    return _with_etag(response, await service.agency_referral(uow, scope, referral_id))


async def _move(referral_id: UUID, uow: UnitOfWork, scope: AgencyScope, response: Response, if_match: str | None,
                to: ReferralStatus) -> AgencyReferralOut:
    return _with_etag(response, await service.transition(uow, scope, referral_id, parse_if_match(if_match), to))


@router.post("/referrals/{referral_id}/acknowledge", response_model=AgencyReferralOut, responses=CHANGE)
async def acknowledge(referral_id: UUID, uow: Uow, scope: Scope, response: Response,
                      if_match: IfMatch = None) -> AgencyReferralOut:
    """Your unit has the case: reminders and escalation stop. Allowed before delivery is reported."""
    return await _move(referral_id, uow, scope, response, if_match, ReferralStatus.acknowledged)


@router.post("/referrals/{referral_id}/accept", response_model=AgencyReferralOut, responses=CHANGE)
async def accept(referral_id: UUID, uow: Uow, scope: Scope, response: Response,
                 if_match: IfMatch = None) -> AgencyReferralOut:
    """Your unit takes the case on (after acknowledging it)."""
    return await _move(referral_id, uow, scope, response, if_match, ReferralStatus.accepted)


@router.post("/referrals/{referral_id}/decline", response_model=DeclineOut, responses=CHANGE)
async def decline(referral_id: UUID, body: DeclineIn, uow: Uow, scope: Scope, referrer: Ref, response: Response,
                  if_match: IfMatch = None) -> DeclineOut:
    """Your unit cannot take the case (after acknowledging it): it goes on to the next competent unit."""
    referral, rerouted = await service.decline(uow, referrer, scope, referral_id, parse_if_match(if_match),
                                               body.reason)
    detail = ("The case was referred on to another unit." if rerouted else
              "No other unit is left for this case; the hotline will act on it.")
    _with_etag(response, referral)
    return DeclineOut(**referral.model_dump(), rerouted=bool(rerouted), detail=detail)


@router.post("/referrals/{referral_id}/outcomes", response_model=AgencyReferralOut,
             status_code=status.HTTP_201_CREATED, responses=CHANGE)
async def record_outcome(referral_id: UUID, body: OutcomeIn, uow: Uow, scope: Scope, referrer: Ref,
                         response: Response, if_match: IfMatch = None) -> AgencyReferralOut:
    """A result of an accepted referral: counts and codes, never names."""
    referral = await service.record_outcome(uow, referrer, scope, referral_id, parse_if_match(if_match), body)
    return _with_etag(response, referral)


@router.post("/referrals/{referral_id}/close", response_model=AgencyReferralOut, responses=CHANGE)
async def close(referral_id: UUID, uow: Uow, scope: Scope, response: Response,
                if_match: IfMatch = None) -> AgencyReferralOut:
    """Your unit's work on the case is done (outcomes first, or directly)."""
    return await _move(referral_id, uow, scope, response, if_match, ReferralStatus.closed)
