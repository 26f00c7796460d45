"""Helpers for tests on a referral database of their own (the `db` and `referrer` fixtures in
conftest.py): no service consumes or scans it, so a test drives the handlers and the scanner itself,
under its own clock."""
import uuid
from datetime import UTC, datetime

from runtime.db import notify_channel, session_factory
from runtime.uow import UnitOfWork
from schemas.events.cases import CaseFacts
from services.referral.models import outbox
from services.referral.referrals.handlers import refer

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi, a Tuesday


def uow(db) -> UnitOfWork:
    return UnitOfWork(session_factory(db[0]), outbox, "/tests/referral-own-database", notify_channel("referral"))


async def report(db, referrer, **facts) -> CaseFacts:
    case = CaseFacts(case_id=uuid.uuid4(), case_number=f"111-2026-{uuid.uuid4().int % 10**6:06d}",
                     urgency="normal", **facts)
    async with uow(db) as u:
        await refer(u, referrer, case, T0)
        await u.commit()
    return case


