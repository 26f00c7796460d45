"""Cases and their potential victims. Facts follow the newest case version seen; a case first seen through
one of its referrals gets a row at once and its facts when they arrive."""
from sqlalchemy import delete, func, insert, update
from sqlalchemy.dialects.postgresql import insert as upsert

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseMerged, CaseReported, CaseStatusChanged, CaseUpdated
from services.reporting.models import cases, victims
from services.reporting.projections.batch import Upsert
from services.reporting.projections.clock import local_day

t = cases.c


async def on_case_facts(uow: UnitOfWork, event: Event[CaseReported | CaseUpdated]) -> None:
    f = event.payload
    facts = {
        "facts_version": f.version, "province_code": f.province_code, "urgency": f.urgency,
        "exploitation": sorted(f.exploitation), "child_involved": f.child_involved or any(v.is_child for v in f.victims),
        "cross_border": bool(f.moving_across_border or f.abroad_country or f.destination_country),
        "at_sea": f.at_sea, "abroad_country": f.abroad_country, "destination_country": f.destination_country,
        "means_of_control": sorted(f.means_of_control), "recruitment_channel": f.recruitment_channel,
    }
    applied = await uow.session.scalar(
        upsert(cases).values(case_id=f.case_id, **facts)
        .on_conflict_do_update(index_elements=[t.case_id], set_=facts, where=t.facts_version < f.version)
        .returning(t.case_id))
    if applied is not None:
        await uow.session.execute(delete(victims).where(victims.c.case_id == f.case_id))
        if f.victims:
            await uow.session.execute(insert(victims), [
                {"case_id": f.case_id, "seq": i, "sex": v.sex, "age_band": v.age_band, "is_child": v.is_child,
                 "nationality": v.nationality, "needs": sorted(v.needs)} for i, v in enumerate(f.victims)])
    if isinstance(f, CaseReported):
        await uow.session.execute(update(cases).where(t.case_id == f.case_id).values(
            reported=True, reported_at=f.reported_at, day=local_day(f.reported_at), channel=f.channel))


async def on_case_status_changed(uow: UnitOfWork, event: Event[CaseStatusChanged]) -> None:
    s = event.payload
    values = {"status_version": s.version, "status": s.to_status, "outcome": s.outcome,
              "status_changed_at": s.changed_at}
    await uow.session.execute(
        upsert(cases).values(case_id=s.case_id, province_code=s.province_code, **values)
        .on_conflict_do_update(index_elements=[t.case_id], set_=values, where=t.status_version < s.version))


async def on_case_merged(uow: UnitOfWork, event: Event[CaseMerged]) -> None:
    await uow.session.execute(
        upsert(cases).values(case_id=event.payload.case_id, merged=True)
        .on_conflict_do_update(index_elements=[t.case_id], set_={"merged": True}))


REFERRED = Upsert(cases, ("case_id",), lambda ex: {
    "first_referred_at": func.least(t.first_referred_at, ex.first_referred_at),
    "province_code": func.coalesce(t.province_code, ex.province_code)})


def note_referred(uow: UnitOfWork, case_id, province_code: str, at) -> None:
    """A referral of the case was made at `at`: the case counts as referred from its earliest one."""
    REFERRED.stage(uow, {"case_id": case_id, "province_code": province_code, "first_referred_at": at})
