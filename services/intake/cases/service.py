"""Plain functions over a unit of work: the domain knows nothing of HTTP or Kafka."""
import uuid
from datetime import UTC, datetime

from sqlalchemy import Text, cast, func, select
from sqlalchemy.exc import IntegrityError

from runtime.problems import DomainError, NotFound
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseReported
from services.intake.cases.schemas import CaseOut, CaseReportIn
from services.intake.cases.urgency import is_below, urgency_floor
from services.intake.models import case_number_seq, cases

CASE_FIELDS = [cases.c[f] for f in CaseOut.model_fields]


async def report_case(uow: UnitOfWork, report: CaseReportIn, idempotency_key: str | None) -> tuple[CaseOut, bool]:
    """Record the case and its case-reported event atomically. Returns (case, created)."""
    if idempotency_key and (existing := await _by_idempotency_key(uow, idempotency_key)):
        return existing, False
    floor = urgency_floor(report.immediate_danger, report.child_victim)
    urgency = report.urgency or floor
    if is_below(urgency, floor) and not (report.urgency_reason or "").strip():
        raise DomainError(f"urgency below the floor '{floor}' needs an urgency_reason", field="urgency")
    now = datetime.now(UTC)
    case_id = uuid.uuid4()
    number_sql = func.concat(f"111-{now.year}-", func.lpad(cast(case_number_seq.next_value(), Text), 6, "0"))
    created = (await uow.session.execute(
        cases.insert().values(
            id=case_id, case_number=number_sql, status="open", channel=report.channel,
            province_code=report.province_code, commune_code=report.commune_code,
            immediate_danger=report.immediate_danger, child_victim=report.child_victim,
            urgency=urgency, urgency_floor=floor, urgency_reason=report.urgency_reason,
            narrative=report.narrative, idempotency_key=idempotency_key, reported_at=now,
        ).returning(*CASE_FIELDS)
    )).mappings().one()
    number = created["case_number"]
    uow.emit(
        CaseReported(
            case_id=case_id, case_number=number, reported_at=now, channel=report.channel,
            province_code=report.province_code, commune_code=report.commune_code, urgency=urgency,
        ),
        key=str(case_id),
        subject=number,
    )
    try:
        await uow.commit()
    except IntegrityError:
        # Two retries of one submission raced; the other one won.
        await uow.session.rollback()
        if idempotency_key and (existing := await _by_idempotency_key(uow, idempotency_key)):
            return existing, False
        raise
    return CaseOut.model_validate(dict(created)), True


async def get_case(uow: UnitOfWork, case_id: uuid.UUID) -> CaseOut:
    row = (await uow.session.execute(select(*CASE_FIELDS).where(cases.c.id == case_id))).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return CaseOut.model_validate(dict(row))


async def _by_idempotency_key(uow: UnitOfWork, key: str) -> CaseOut | None:
    row = (await uow.session.execute(select(*CASE_FIELDS).where(cases.c.idempotency_key == key))).mappings().first()
    return CaseOut.model_validate(dict(row)) if row else None
