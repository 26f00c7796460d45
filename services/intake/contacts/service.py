"""Recording contacts, recognising repeat callers, attaching contacts to cases."""
import uuid

from sqlalchemy import and_, func, insert, or_, select, update

from runtime import idempotency
from runtime.crypto import phone_index
from runtime.pagination import decode_cursor, encode_cursor
from runtime.problems import Conflict, DomainError, NotFound
from runtime.uow import UnitOfWork
from schemas.events.contacts import ContactAttached, ContactRecorded
from services.intake.actors import Actor
from services.intake.audit import record_read
from services.intake.contacts.blocks import active_block_until
from services.intake.cases.duplicates import flag_possible_duplicates
from services.intake.contacts.schemas import ContactIn, ContactOut, ContactPage, ContactPersonalDataOut
from services.intake.models import PERSONAL_CONTACT_FIELDS, cases, contacts, idempotency_keys

c = contacts.c
CONTACT_COLUMNS = [*(contacts.c[f] for f in ContactOut.model_fields if f in contacts.c),
                   active_block_until(contacts.c.caller_phone_hmac).label("caller_blocked_until")]


def _out(row, earlier: int = 0) -> ContactOut:
    data = dict(row)
    data["duration_s"] = int((data["ended_at"] - data["started_at"]).total_seconds())
    return ContactOut.model_validate({**data, "earlier_contacts_from_number": earlier})


async def record_contact(uow: UnitOfWork, actor: Actor, contact: ContactIn,
                         idempotency_key: str | None) -> tuple[ContactOut, bool]:
    idem = idempotency.begin(idempotency_keys, f"{actor.subject}:POST /contacts", idempotency_key,
                             contact.model_dump(mode="json"))
    return await idempotency.run_once(uow, idem, ContactOut, lambda: _record_contact(uow, actor, contact))


async def _record_contact(uow: UnitOfWork, actor: Actor, contact: ContactIn) -> ContactOut:
    if contact.case_id is not None:
        await _visible_case(uow, actor, contact.case_id, field="case_id")
    phone_hmac = phone_index(contact.caller_phone) if contact.caller_phone else None
    earlier = 0
    if phone_hmac is not None:
        earlier = await uow.session.scalar(select(func.count()).where(c.caller_phone_hmac == phone_hmac))
    contact_id = uuid.uuid4()
    row = (await uow.session.execute(insert(contacts).values(
        **contact.model_dump(), id=contact_id, operator=actor.subject, caller_phone_hmac=phone_hmac,
    ).returning(*CONTACT_COLUMNS))).mappings().one()
    if contact.case_id is not None:
        await flag_possible_duplicates(uow, contact.case_id)
    out = _out(row, earlier)
    uow.emit(ContactRecorded(
        contact_id=contact_id, case_id=contact.case_id, channel=contact.channel, contact_type=contact.contact_type,
        non_case_reason=contact.non_case_reason, started_at=contact.started_at, duration_s=out.duration_s,
        language=contact.language, caller_role=contact.caller_role, caller_sex=contact.caller_sex,
        caller_age_band=contact.caller_age_band, caller_province_code=contact.caller_province_code,
        repeat_caller=earlier > 0, consent_callback=contact.consent_callback,
        consent_share_identity=contact.consent_share_identity, consultation_topics=contact.consultation_topics,
        consultation_given=contact.consultation_given,
    ), key=str(contact.case_id or contact_id))
    return out


async def _visible_case(uow: UnitOfWork, actor: Actor, case_id: uuid.UUID, field: str) -> None:
    owner = await uow.session.scalar(select(cases.c.operator).where(cases.c.id == case_id))
    if owner is None or not actor.may_see(owner):
        raise DomainError(f"no case {case_id}", field=field)


async def _row(uow: UnitOfWork, actor: Actor, contact_id: uuid.UUID, *extra, for_update=False):
    query = select(*CONTACT_COLUMNS, *extra).where(c.id == contact_id)
    row = (await uow.session.execute(query.with_for_update() if for_update else query)).mappings().first()
    if row is None or not actor.may_see(row["operator"]):
        raise NotFound(f"no contact {contact_id}")
    return row


async def get_contact(uow: UnitOfWork, actor: Actor, contact_id: uuid.UUID) -> ContactOut:
    row = await _row(uow, actor, contact_id, c.caller_phone_hmac)
    earlier = 0
    if row["caller_phone_hmac"] is not None:
        earlier = await uow.session.scalar(select(func.count()).where(
            c.caller_phone_hmac == row["caller_phone_hmac"], c.started_at < row["started_at"]))
    return _out({k: v for k, v in row.items() if k != "caller_phone_hmac"}, earlier)


async def personal_data(uow: UnitOfWork, actor: Actor, contact_id: uuid.UUID) -> ContactPersonalDataOut:
    await _row(uow, actor, contact_id)
    row = (await uow.session.execute(
        select(*(c[f] for f in PERSONAL_CONTACT_FIELDS)).where(c.id == contact_id))).mappings().one()
    await record_read(uow, actor, list(PERSONAL_CONTACT_FIELDS), contact_id=contact_id)
    await uow.commit()
    return ContactPersonalDataOut.model_validate(dict(row))


async def attach(uow: UnitOfWork, actor: Actor, contact_id: uuid.UUID, case_id: uuid.UUID) -> ContactOut:
    row = await _row(uow, actor, contact_id, for_update=True)
    if row["case_id"] == case_id:
        return _out(row)
    if row["case_id"] is not None:
        raise Conflict(f"contact {contact_id} already belongs to case {row['case_id']}", field="case_id")
    await _visible_case(uow, actor, case_id, field="case_id")
    await uow.session.execute(update(contacts).where(c.id == contact_id).values(case_id=case_id))
    await flag_possible_duplicates(uow, case_id)
    uow.emit(ContactAttached(contact_id=contact_id, case_id=case_id, contact_type=row["contact_type"]),
             key=str(case_id))
    await uow.commit()
    return _out({**row, "case_id": case_id})


async def list_contacts(uow: UnitOfWork, actor: Actor, *, contact_type=None, channel=None, operator=None,
                        case_id=None, started_from=None, started_to=None, cursor=None, limit=50) -> ContactPage:
    conditions = [
        c.contact_type == contact_type if contact_type else None,
        c.channel == channel if channel else None,
        c.operator == operator if operator else None,
        c.case_id == case_id if case_id else None,
        c.started_at >= started_from if started_from else None,
        c.started_at < started_to if started_to else None,
        None if actor.is_supervisor else c.operator == actor.subject,
    ]
    if cursor:
        at, last_id = decode_cursor(cursor, uuid.UUID)
        conditions.append(or_(c.started_at < at, and_(c.started_at == at, c.id < last_id)))
    rows = (await uow.session.execute(
        select(*CONTACT_COLUMNS).where(*[x for x in conditions if x is not None])
        .order_by(c.started_at.desc(), c.id.desc()).limit(limit + 1)
    )).mappings().all()
    items = [_out(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].started_at, items[-1].id) if len(rows) > limit else None
    return ContactPage(items=items, next_cursor=nxt)
