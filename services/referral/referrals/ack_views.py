"""The acknowledge link in an alert. No login: the signed link is the credential.

Opening the link (GET) only shows the case and a button; pressing it (POST to the same address)
acknowledges. Mail scanners and chat previews open links before anyone reads them, and an
acknowledgement nobody gave would stop the reminders and escalation that protect the victim.
A second press changes nothing and says so. Browsers get HTML, programs JSON.
"""
from datetime import UTC
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from runtime.problems import problems
from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.referral.referrals import service
from services.referral.referrals.schemas import AckOut, AckPreview

router = APIRouter(tags=["acknowledge links"])
# A browser (Accept: text/html) gets the page; anyone else the JSON. An expired or altered link is a 401.
HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
Uow = Annotated[UnitOfWork, Depends(get_uow)]

PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>111 – {case}</title></head><body style="font-family:sans-serif;max-width:32rem;margin:2rem auto">
<h1>Đường dây nóng 111 / Hotline 111</h1><p><strong>{case}</strong></p><p>{text}</p>{form}</body></html>"""
FORM = ('<form method="post"><button type="submit" style="font-size:1.2rem;padding:.6rem 1.2rem">'
        "Xác nhận đã nhận / Acknowledge receipt</button></form>")


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _page(case: str, text: str, form: bool = False) -> HTMLResponse:
    return HTMLResponse(PAGE.format(case=escape(case), text=escape(text), form=FORM if form else ""),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/ack/{token}", response_model=AckPreview, responses={200: HTML, **problems(401, 404)})
async def show_link(token: str, uow: Uow, request: Request):
    """What the link acknowledges, and the button; changes nothing. 401 for an expired or altered link,
    404 for a referral that does not exist."""
    referral_id = request.app.state.referrer.links.verify(token)
    row = await service.link_target(uow, referral_id)
    preview = AckPreview(referral_id=referral_id, case_number=row["case_number"], status=row["status"],
                         acknowledged_at=row["acknowledged_at"])
    if not _wants_html(request):
        return preview
    if row["acknowledged_at"] is not None:
        return _page(row["case_number"], f"Đã xác nhận / Acknowledged at {_when(row)}.")
    return _page(row["case_number"], "Xác nhận đơn vị của bạn đã nhận vụ việc này. / "
                                     "Confirm that your unit has received this case.", form=True)


@router.post("/ack/{token}", response_model=AckOut, responses={200: HTML, **problems(401, 404)})
async def acknowledge_by_link(token: str, uow: Uow, request: Request):
    """Acknowledge the referral the link names. A second press changes nothing."""
    referral_id = request.app.state.referrer.links.verify(token)
    row, already = await service.acknowledge_by_link(uow, referral_id)
    detail = (f"Case {row['case_number']} was already acknowledged at {_when(row)}; nothing changed." if already else
              f"Case {row['case_number']} is acknowledged: the hotline knows your unit has it.")
    if _wants_html(request):
        return _page(row["case_number"], detail)
    return AckOut(referral_id=referral_id, case_number=row["case_number"], status=row["status"],
                  acknowledged_at=row["acknowledged_at"], already_acknowledged=already, detail=detail)


def _when(row) -> str:
    return f"{row['acknowledged_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC"
