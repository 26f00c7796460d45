"""One scanner process for test_deadlines: fires every step due by AT against DATABASE_URL, then exits.
Usage: python -m tests.referral.scan_process <database_url> <bootstrap> <iso time>"""
import asyncio
import sys
from datetime import datetime

from runtime.db import create_engine, notify_channel, session_factory
from runtime.uow import UnitOfWork
from services.referral.deadlines.scanner import fire_due
from services.referral.directory.repository import DirectoryCache
from services.referral.matching.loader import RuleBook
from services.referral.models import outbox
from services.referral.referrals.handlers import Referrer
from services.referral.settings import ReferralSettings


async def main(url: str, bootstrap: str, at: datetime) -> None:
    engine = create_engine(url, pool_size=1)
    referrer = Referrer(ReferralSettings(database_url=url, kafka_bootstrap_servers=bootstrap), RuleBook(),
                        DirectoryCache())
    try:
        while True:
            async with UnitOfWork(session_factory(engine), outbox, "/tests/scan", notify_channel("referral")) as uow:
                if not (await fire_due(uow, referrer, at, limit=5)).total:
                    return
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])))
