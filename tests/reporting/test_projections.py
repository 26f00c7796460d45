"""Projections fold events into the same rows whatever the order across topics, and a referral seen
before its case still counts. Handlers are driven directly, on a database of their own."""
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from runtime.consumer import Event
from runtime.db import create_engine, session_factory
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseMerged, CaseReported, CaseStatusChanged, CaseUpdated, VictimSummary
from schemas.events.contacts import ContactRecorded
from schemas.events.notifications import NotificationStatusChanged
from schemas.events.referrals import (
    ReferralCreated, ReferralEscalated, ReferralOutcomeRecorded, ReferralReminder, ReferralStatusChanged,
)
from services.reporting.models import PROJECTIONS, SCHEMA, cases, referrals, victims
from services.reporting.projections import HANDLERS
from services.reporting.stats.counts import CountQuery, count_table
from services.reporting.stats.measures import MEASURES
from services.reporting.stats.periods import Group
from tests.support import own_database

T0 = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)  # 06:30 on the 10th in Vietnam


@pytest.fixture(scope="module")
async def engine(stack):
    engine = create_engine(await own_database(stack, "reporting"), 4)
    yield engine
    await engine.dispose()


def uow_for(engine) -> UnitOfWork:
    return UnitOfWork(session_factory(engine), None, "/tests", "unused")


async def apply(engine, payloads, at: datetime = T0) -> None:
    for payload in payloads:
        async with uow_for(engine) as uow:
            event = Event(uuid.uuid4(), "t", "/tests", None, at, None, payload, {})
            await HANDLERS[type(payload)](uow, event)
            await uow.commit()


async def reset(engine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(f'{SCHEMA}.{t.name}' for t in PROJECTIONS)}"))


async def snapshot(engine) -> dict[str, list]:
    """Every projection's rows, sorted, without ids that events do not determine."""
    out = {}
    async with engine.connect() as conn:
        for table in PROJECTIONS:
            if table.name in ("positions", "outcomes"):
                continue
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
        out["outcomes"] = sorted(tuple(str(v) for v in row) for row in (await conn.execute(
            text(f"SELECT referral_id, outcome, victims, services FROM {SCHEMA}.outcomes"))).all())
    return out


def case_events(case_id: uuid.UUID, province: str = "01") -> list:
    facts = dict(case_id=case_id, case_number="111-2026-000001", province_code=province, urgency="high",
                 victims=[VictimSummary(sex="female", age_band="9-17", is_child=True, nationality="VN",
                                        needs=["shelter", "medical"])],
                 child_involved=True, exploitation=["forced_marriage"], moving_across_border=True,
                 destination_country="CN")
    reported = CaseReported(**facts, version=1, reported_at=T0, channel="phone")
    updated = CaseUpdated(**facts | {"victims": [*facts["victims"], VictimSummary(
        sex="male", age_band="18-20", is_child=False, needs=[])], "urgency": "emergency"},
        version=2, changed=["victims", "urgency"], updated_at=T0 + timedelta(minutes=5))
    status = CaseStatusChanged(case_id=case_id, case_number="111-2026-000001", province_code=province, version=3,
                               from_status="open", to_status="referred", changed_at=T0 + timedelta(minutes=6))
    return [reported, updated, status]


def referral_events(case_id: uuid.UUID, referral_id: uuid.UUID, province: str = "01") -> list:
    ids = dict(referral_id=referral_id, case_id=case_id, case_number="111-2026-000001",
               agency_unit_id=uuid.UUID(int=7))
    created = ReferralCreated(**ids, agency_unit_name="Police", agency_kind="police_province", province_code=province,
                              urgency="high", acknowledge_by=T0 + timedelta(hours=1), match_reason="rule",
                              contacts=[], agency_level="province")
    notified = ReferralStatusChanged(**ids, from_status="created", to_status="notified", via="delivery",
                                     changed_at=T0 + timedelta(minutes=1))
    acked = ReferralStatusChanged(**ids, from_status="notified", to_status="acknowledged", via="agency_api",
                                  changed_at=T0 + timedelta(minutes=20))
    accepted = ReferralStatusChanged(**ids, from_status="acknowledged", to_status="accepted", via="agency_api",
                                     changed_at=T0 + timedelta(minutes=30))
    outcome = ReferralOutcomeRecorded(**ids, agency_kind="police_province", province_code=province,
                                      outcome="victims_rescued", victims=3, recorded_at=T0 + timedelta(days=2))
    note = dict(notification_id=uuid.UUID(int=99), referral_id=referral_id, case_id=case_id, channel="sms")
    alerts = [NotificationStatusChanged(**note, status=s, occurred_at=T0 + timedelta(seconds=i), attempts=min(i, 1),
                                        provider="gateway" if i else None, kind="referral.created")
              for i, s in enumerate(["created", "sending", "sent", "delivered"])]
    return [created, notified, acked, accepted, outcome, *alerts]


def contact(at: datetime, **fields) -> ContactRecorded:
    base = dict(contact_id=uuid.uuid4(), channel="phone", contact_type="consultation", started_at=at, duration_s=60,
                language="vi", caller_role="citizen_or_witness", caller_sex="female", caller_age_band="30-38",
                caller_province_code="01", repeat_caller=False, consent_callback=False, consent_share_identity=False)
    return ContactRecorded(**base | fields)


async def test_a_referral_seen_before_its_case_counts_and_gets_the_case_facts_later(engine):
    await reset(engine)
    case_id, referral_id = uuid.uuid4(), uuid.uuid4()
    await apply(engine, referral_events(case_id, referral_id))
    async with uow_for(engine) as uow:
        referred = await count_table(uow.session, CountQuery(MEASURES["cases-referred"], T0.date(), T0.date() +
                                                             timedelta(days=3), Group.all, ("province",)), None)
        row = (await uow.session.execute(select(cases).where(cases.c.case_id == case_id))).mappings().one()
    assert referred.categories == [("01",)] and referred.cells == [[1]]
    assert row["reported"] is False and row["urgency"] is None  # not a reported case yet: no facts
    await apply(engine, case_events(case_id))
    async with uow_for(engine) as uow:
        row = (await uow.session.execute(select(cases).where(cases.c.case_id == case_id))).mappings().one()
        people = (await uow.session.execute(select(victims.c.sex).where(victims.c.case_id == case_id))).scalars()
        ref = (await uow.session.execute(select(referrals))).mappings().one()
    assert (row["reported"], row["urgency"], row["status"], row["cross_border"]) == (True, "emergency", "referred", True)
    assert sorted(people) == ["female", "male"]  # version 2's victims, not version 1's
    assert (ref["status"], ref["first_response_at"]) == ("accepted", T0 + timedelta(minutes=20))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
async def test_any_order_across_topics_gives_the_same_rows(engine, seed):
    case_id, referral_id = uuid.UUID(int=1), uuid.UUID(int=2)
    events = case_events(case_id) + referral_events(case_id, referral_id) + [
        ReferralReminder(referral_id=referral_id, case_id=case_id, case_number="x", agency_unit_id=uuid.UUID(int=7),
                         agency_unit_name="Police", urgency="high", acknowledge_by=T0, escalate_at=T0, contacts=[]),
        ReferralEscalated(referral_id=referral_id, case_id=case_id, case_number="x", agency_unit_id=uuid.UUID(int=7),
                          escalated_referral_id=None, to_level=None, escalated_at=T0 + timedelta(hours=2)),
        contact(T0, contact_id=uuid.UUID(int=3)),
    ]
    await reset(engine)
    await apply(engine, events)
    in_order = await snapshot(engine)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    await reset(engine)
    await apply(engine, shuffled)
    assert await snapshot(engine) == in_order


async def test_a_merged_duplicate_and_a_duplicate_closure_do_not_count(engine):
    await reset(engine)
    kept, merged, closed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for case_id in (kept, merged, closed):
        await apply(engine, case_events(case_id)[:1])
    await apply(engine, [CaseMerged(case_id=merged, case_number="m", into_case_id=kept, into_case_number="k",
                                    merged_at=T0),
                         CaseStatusChanged(case_id=closed, case_number="c", province_code="01", version=4,
                                           from_status="open", to_status="closed", outcome="duplicate",
                                           changed_at=T0)])
    async with uow_for(engine) as uow:
        table = await count_table(uow.session, CountQuery(MEASURES["cases"], T0.date(), T0.date() + timedelta(days=1),
                                                          Group.all), None)
    assert table.cells == [[1]]


async def test_contacts_count_on_the_vietnam_day_they_started(engine):
    await reset(engine)
    # 23:30 UTC on the 9th is 06:30 on the 10th in Vietnam; 16:59 UTC is 23:59 on the 9th.
    await apply(engine, [contact(T0), contact(T0 - timedelta(hours=6, minutes=31)),
                         contact(T0, caller_province_code=None, contact_type="non_case")])
    async with uow_for(engine) as uow:
        table = await count_table(uow.session, CountQuery(MEASURES["contacts"], T0.date(), T0.date() + timedelta(days=1),
                                                          Group.day, ("province",)), None)
    assert table.periods == ["2026-03-09", "2026-03-10"]
    assert table.categories == [("01",), ("unknown",)] and table.cells == [[1, 0], [1, 1]]
