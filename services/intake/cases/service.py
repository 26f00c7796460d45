"""Plain functions over a unit of work: the domain knows nothing of HTTP or Kafka."""
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import and_, or_, select, update

from runtime import idempotency
from runtime.pagination import decode_cursor, encode_cursor
from runtime.problems import Conflict, DomainError, NotFound
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseReported, CaseStatusChanged, CaseUpdated
from schemas.events.contacts import ContactAttached
from schemas.vocab import CaseStatus
from services.intake.actors import Actor
from services.intake.cases import lifecycle, recording, referral_summary
from services.intake.cases.duplicates import flag_possible_duplicates
from services.intake.cases.events import case_facts
from services.intake.cases.repository import (
    CASE_COLUMNS, case_row, load_cases, locked_for_change, trafficker_rows, victim_rows, write_people,
)
from services.intake.cases.schemas import (
    CaseDetail, CaseFactsIn, CaseOut, CasePage, CasePatch, CaseReportIn, StatusChangeIn, TraffickerOut, VictimOut,
)
from services.intake.cases.urgency import highest, is_below, urgency_floor
from schemas.geography import check_commune
from services.intake.models import cases, contacts, idempotency_keys


def _child(facts: CaseFactsIn, current: bool = False, current_victims=()) -> bool:
    """A child is involved if the operator says so (or said so before) or any victim is a child."""
    explicit = facts.child_victim if facts.child_victim is not None else current
    victims = facts.victims if facts.victims is not None else current_victims
    return bool(explicit or any(v.is_child for v in victims))


_FLAGS = ("immediate_danger", "violence", "moving_across_border", "at_sea")
_SECRETS = ("abroad_place", "location_text", "urgency_reason", "narrative")  # stored encrypted, never returned


async def report_case(uow: UnitOfWork, actor: Actor, report: CaseReportIn,
                      idempotency_key: str | None) -> tuple[CaseOut, bool]:
    """Record the case and its case-reported event atomically. Returns (case, created).

    A retry under the same Idempotency-Key gets the first case, even if its work would now fail
    (its contact is attached by then)."""
    idem = idempotency.begin(idempotency_keys, f"{actor.subject}:POST /cases", idempotency_key,
                             report.model_dump(mode="json"))
    try:
        case = await _record_case(uow, actor, report, idem)
    except DomainError:
        if idem is not None and (first := await idem.replay(uow)) is not None:
            return CaseOut.model_validate(first), False
        raise
    except asyncpg.UniqueViolationError as exc:
        if idem is None or exc.table_name != idempotency_keys.name:
            raise
        case = None  # a concurrent twin with this key committed first
    if case is None:
        return CaseOut.model_validate(await idem.first_response(uow)), False
    return case, True


async def _record_case(uow: UnitOfWork, actor: Actor, report: CaseReportIn,
                       idem: idempotency.IdempotentRequest | None) -> CaseOut | None:
    """None when the Idempotency-Key was used before: then nothing was written."""
    conn = await uow.driver()
    # Without a contact the one statement is the whole transaction; a contact is locked first.
    async with conn.transaction() if report.contact_id else nullcontext():
        contact = await _claim_contact(conn, report.contact_id) if report.contact_id else None
        case = _new_case(actor, report, contact)
        uow.emit(CaseReported(**case_facts(case), reported_at=case.reported_at, channel=case.channel),
                 key=str(case.id))
        if contact:
            uow.emit(ContactAttached(contact_id=contact["id"], case_id=case.id, contact_type=contact["contact_type"]),
                     key=str(case.id))
        number = await recording.insert_case(
            conn, case=case.model_dump(exclude={"victims", "traffickers"}) | {
                **{f: getattr(report, f) for f in _SECRETS}, "created_at": case.updated_at},
            victim_rows=victim_rows(case.id, report.victims or []),
            trafficker_rows=trafficker_rows(case.id, report.traffickers or []),
            contact_id=report.contact_id, events=uow.take_events(), channel=uow.channel,
            number_prefix=f"111-{case.updated_at.year}-",
            idem_scope=idem and idem.scope, idem_key=idem and idem.key, idem_hash=idem and idem.body_hash,
            response=case.model_dump_json())
    return None if number is None else case.model_copy(update={"case_number": number})


def _new_case(actor: Actor, report: CaseReportIn, contact) -> CaseOut:
    """The case as intake records it: what was sent, and what intake computes over it."""
    child = _child(report)
    floor = urgency_floor(bool(report.immediate_danger), child, bool(report.violence), bool(report.moving_across_border))
    urgency = report.urgency or floor
    if is_below(urgency, floor) and not report.urgency_reason:
        raise DomainError(f"below the floor '{floor}' set by the facts; give an urgency_reason", field="urgency")
    now = datetime.now(UTC)
    return CaseOut.model_validate(report.model_dump(include=set(CaseOut.model_fields)) | {
        **{f: bool(getattr(report, f)) for f in _FLAGS},
        "id": uuid.uuid4(), "case_number": "", "version": 1, "status": CaseStatus.open, "outcome": None,
        "operator": actor.subject, "child_victim": child, "urgency": urgency, "urgency_floor": floor,
        "exploitation": report.exploitation or [], "means_of_control": report.means_of_control or [],
        "consent_share_identity": bool(contact and contact["consent_share_identity"]),
        "reported_at": report.reported_at or now, "updated_at": now,
        "victims": [VictimOut.model_validate(v.model_dump()) for v in report.victims or ()],
        "traffickers": [TraffickerOut.model_validate(t.model_dump()) for t in report.traffickers or ()],
    })


async def _claim_contact(conn: asyncpg.Connection, contact_id: uuid.UUID):
    row = await conn.fetchrow(
        f"SELECT id, case_id, contact_type, consent_share_identity FROM {contacts.fullname} WHERE id = $1 FOR UPDATE",
        contact_id)
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


async def get_case_detail(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID) -> CaseDetail:
    case = await get_case(uow, actor, case_id)
    return CaseDetail(**dict(case), referrals=await referral_summary.referrals_of(uow, case_id))


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
    # null clears a field: a flag to false, a list to empty (those columns are never null)
    values |= {f: False for f in _FLAGS if f in values and values[f] is None}
    values |= {f: [] for f in ("exploitation", "means_of_control") if f in values and values[f] is None}
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
    case = await apply_status_change(uow, actor, row, change)
    await uow.commit()
    return case


async def apply_status_change(uow: UnitOfWork, actor: Actor, row, change: StatusChangeIn) -> CaseOut:
    """Move a locked case row, uncommitted: the caller's transaction (a request's, or a consumed event's with
    its inbox row) commits it. One path for people and events: same check, version bump (ETag) and event."""
    lifecycle.check(row["status"], change.status, actor.is_supervisor)
    case_id = row["id"]
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
    return case
