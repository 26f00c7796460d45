"""Plain functions over a unit of work: the domain knows nothing of HTTP or Kafka."""
import uuid
from datetime import UTC, datetime

from sqlalchemy import Text, and_, cast, func, insert, or_, select, update

from runtime import idempotency
from runtime.pagination import decode_cursor, encode_cursor
from runtime.problems import Conflict, DomainError, NotFound
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseReported, CaseStatusChanged, CaseUpdated
from schemas.events.contacts import ContactAttached
from schemas.vocab import CaseStatus
from services.intake.actors import Actor
from services.intake.cases import lifecycle
from services.intake.cases.duplicates import flag_possible_duplicates
from services.intake.cases.events import case_facts
from services.intake.cases.repository import CASE_COLUMNS, case_row, load_cases, locked_for_change, write_people
from services.intake.cases.schemas import (
    CaseFactsIn, CaseOut, CasePage, CasePatch, CaseReportIn, StatusChangeIn, TraffickerOut, VictimOut,
)
from services.intake.cases.urgency import highest, is_below, urgency_floor
from services.intake.geography import check_commune
from services.intake.models import case_number_seq, cases, contacts, idempotency_keys


def _child(facts: CaseFactsIn, current: bool = False, current_victims=()) -> bool:
    """A child is involved if the operator says so (or said so before) or any victim is a child."""
    explicit = facts.child_victim if facts.child_victim is not None else current
    victims = facts.victims if facts.victims is not None else current_victims
    return bool(explicit or any(v.is_child for v in victims))


async def report_case(uow: UnitOfWork, actor: Actor, report: CaseReportIn,
                      idempotency_key: str | None) -> tuple[CaseOut, bool]:
    """Record the case and its case-reported event atomically. Returns (case, created)."""
    idem = idempotency.begin(idempotency_keys, f"{actor.subject}:POST /cases", idempotency_key,
                             report.model_dump(mode="json"))
    return await idempotency.run_once(uow, idem, CaseOut, lambda: _record_case(uow, actor, report))


async def _record_case(uow: UnitOfWork, actor: Actor, report: CaseReportIn) -> CaseOut:
    contact = await _claim_contact(uow, report.contact_id) if report.contact_id else None
    child = _child(report)
    floor = urgency_floor(bool(report.immediate_danger), child, bool(report.violence), bool(report.moving_across_border))
    urgency = report.urgency or floor
    if is_below(urgency, floor) and not report.urgency_reason:
        raise DomainError(f"below the floor '{floor}' set by the facts; give an urgency_reason", field="urgency")
    now = datetime.now(UTC)
    case_id = uuid.uuid4()
    number = func.concat(f"111-{now.year}-", func.lpad(cast(case_number_seq.next_value(), Text), 6, "0"))
    values = report.model_dump(exclude={"victims", "traffickers", "contact_id", "channel", "reported_at"},
                               exclude_none=True)
    values |= {f: bool(getattr(report, f)) for f in ("immediate_danger", "violence", "moving_across_border", "at_sea")}
    row = values | {  # what intake computes overrides what was sent
        "id": case_id, "case_number": number, "status": CaseStatus.open, "channel": report.channel,
        "operator": actor.subject, "child_victim": child, "urgency": urgency, "urgency_floor": floor,
        "consent_share_identity": bool(contact and contact["consent_share_identity"]),
        "reported_at": report.reported_at or now, "created_at": now, "updated_at": now,
    }
    created = (await uow.session.execute(insert(cases).values(**row).returning(*CASE_COLUMNS))).mappings().one()
    await write_people(uow, case_id, report.victims or [], report.traffickers or [], new_case=True)
    if contact:
        await uow.session.execute(update(contacts).where(contacts.c.id == contact["id"]).values(case_id=case_id))
    await flag_possible_duplicates(uow, case_id)
    # Answer from what was written, not a second read: the create path is the hotline's hot path.
    case = CaseOut.model_validate({
        **created,
        "victims": [VictimOut.model_validate(v.model_dump()) for v in report.victims or ()],
        "traffickers": [TraffickerOut.model_validate(t.model_dump()) for t in report.traffickers or ()],
    })
    uow.emit(CaseReported(**case_facts(case), reported_at=case.reported_at, channel=case.channel),
             key=str(case_id), subject=case.case_number)
    if contact:
        uow.emit(ContactAttached(contact_id=contact["id"], case_id=case_id, contact_type=contact["contact_type"]),
                 key=str(case_id))
    return case


async def _claim_contact(uow: UnitOfWork, contact_id: uuid.UUID):
    row = (await uow.session.execute(
        select(contacts.c.id, contacts.c.case_id, contacts.c.contact_type, contacts.c.consent_share_identity)
        .where(contacts.c.id == contact_id).with_for_update()
    )).mappings().first()
    if row is None:
        raise DomainError(f"no contact {contact_id}", field="contact_id")
    if row["case_id"] is not None:
        raise Conflict(f"contact {contact_id} already belongs to a case", field="contact_id")
    return row


async def get_case(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID) -> CaseOut:
    row = await case_row(uow, case_id)
    if row is None or not actor.may_see(row["operator"]):
        raise NotFound(f"no case {case_id}")
    return (await load_cases(uow, [row]))[0]


async def list_cases(uow: UnitOfWork, actor: Actor, *, status=None, urgency=None, province_code=None,
                     reported_from=None, reported_to=None, operator=None, cursor=None, limit=50) -> CasePage:
    query = select(*CASE_COLUMNS)
    conditions = [
        cases.c.status == status if status else None,
        cases.c.urgency == urgency if urgency else None,
        cases.c.province_code == province_code if province_code else None,
        cases.c.reported_at >= reported_from if reported_from else None,
        cases.c.reported_at < reported_to if reported_to else None,
        cases.c.operator == operator if operator else None,
        None if actor.is_supervisor else cases.c.operator == actor.subject,
    ]
    if cursor:
        at, last_id = decode_cursor(cursor, uuid.UUID)
        conditions.append(or_(cases.c.reported_at < at, and_(cases.c.reported_at == at, cases.c.id < last_id)))
    query = query.where(*[c for c in conditions if c is not None])
    rows = (await uow.session.execute(
        query.order_by(cases.c.reported_at.desc(), cases.c.id.desc()).limit(limit + 1)
    )).mappings().all()
    page = await load_cases(uow, rows[:limit])
    more = len(rows) > limit
    return CasePage(items=page, next_cursor=encode_cursor(page[-1].reported_at, page[-1].id) if more else None)


async def update_case(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID, patch: CasePatch,
                      if_match: int | None) -> CaseOut:
    row = await locked_for_change(uow, actor, case_id, if_match)
    changed = sorted(patch.model_fields_set)
    if not changed:
        return (await load_cases(uow, [row]))[0]
    current = (await load_cases(uow, [row]))[0]
    merged = {f: getattr(patch, f) if f in patch.model_fields_set else getattr(current, f, None)
              for f in ("immediate_danger", "violence", "moving_across_border")}
    child = _child(patch, current.child_victim, current.victims)
    floor = urgency_floor(bool(merged["immediate_danger"]), child, bool(merged["violence"]),
                          bool(merged["moving_across_border"]))
    reason = patch.urgency_reason or row["urgency_reason"]
    if patch.urgency is not None and is_below(patch.urgency, floor) and not reason:
        raise DomainError(f"below the floor '{floor}' set by the facts; give an urgency_reason", field="urgency")
    # Worse facts raise the urgency by themselves; lowering is always an explicit, reasoned act.
    urgency = patch.urgency or (current.urgency if reason else highest(current.urgency, floor))
    values = patch.model_dump(include=patch.model_fields_set - {"victims", "traffickers", "child_victim"})
    if "province_code" in values and "commune_code" not in values:
        values["commune_code"] = None  # a commune of the old province no longer applies
    if values.get("commune_code"):
        try:
            check_commune(values["commune_code"], values.get("province_code", current.province_code))
        except ValueError as exc:
            raise DomainError(str(exc), field="commune_code") from exc
    row_values = values | {  # what intake computes overrides what was sent
        "child_victim": child, "urgency": urgency, "urgency_floor": floor,
        "version": cases.c.version + 1, "updated_at": datetime.now(UTC),
    }
    await uow.session.execute(update(cases).where(cases.c.id == case_id).values(**row_values))
    await write_people(uow, case_id, patch.victims, patch.traffickers)
    await flag_possible_duplicates(uow, case_id)
    case = (await load_cases(uow, [await case_row(uow, case_id)]))[0]
    uow.emit(CaseUpdated(**case_facts(case), changed=changed, updated_at=case.updated_at),
             key=str(case_id), subject=case.case_number)
    await uow.commit()
    return case


async def change_status(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID, change: StatusChangeIn,
                        if_match: int | None) -> CaseOut:
    row = await locked_for_change(uow, actor, case_id, if_match)
    lifecycle.check(row["status"], change.status, actor.is_supervisor)
    now = datetime.now(UTC)
    await uow.session.execute(update(cases).where(cases.c.id == case_id).values(
        status=change.status, outcome=change.outcome, version=cases.c.version + 1, updated_at=now,
        closed_at=now if change.status == CaseStatus.closed else None,
    ))
    case = (await load_cases(uow, [await case_row(uow, case_id)]))[0]
    uow.emit(CaseStatusChanged(
        case_id=case_id, case_number=case.case_number, province_code=case.province_code, version=case.version,
        from_status=row["status"], to_status=change.status, outcome=change.outcome, changed_at=now,
    ), key=str(case_id), subject=case.case_number)
    await uow.commit()
    return case
