"""GET /ack/{token}: the one-click acknowledgement in an alert. No login: the signed link is the
credential. A second click changes nothing and says so."""
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.referral.referrals import service
from services.referral.referrals.schemas import AckOut

router = APIRouter(tags=["acknowledge links"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.get("/ack/{token}", response_model=AckOut)
async def acknowledge_by_link(token: str, uow: Uow, request: Request) -> AckOut:
    """Acknowledge the referral the link names. 401 for an expired or altered link, 404 for a referral
    that does not exist."""
    referral_id = request.app.state.referrer.links.verify(token)
    row, already = await service.acknowledge_by_link(uow, referral_id)
    when = f"{row['acknowledged_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    detail = (f"Case {row['case_number']} was already acknowledged at {when}; nothing changed." if already else
              f"Case {row['case_number']} is acknowledged: the hotline knows your unit has it.")
    return AckOut(referral_id=referral_id, case_number=row["case_number"], status=row["status"],
                  acknowledged_at=row["acknowledged_at"], already_acknowledged=already, detail=detail)
