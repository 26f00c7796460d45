"""notify_notifications_finished_total: a message counts once, when its terminal status commits. A later
report about it (a late receipt, a lookup) changes nothing, and a move that rolls back is not counted."""
import pytest
from prometheus_client import REGISTRY

from schemas.events.notifications import DeliveryStatus as D
from services.notify.notifications.status import FINISHED, move, record_status
from tests.notify.pipeline import created, email, mailbox, notify, park_pending


@pytest.fixture(autouse=True)
async def parked(db):
    await park_pending(db[0])


def finished(channel: str, status: str) -> float:
    return REGISTRY.get_sample_value("notify_notifications_finished_total", {"channel": channel, "status": status})


async def test_a_terminal_status_counts_once_and_only_when_committed(db, stack, routes):
    async with notify(db, stack, routes) as n:
        delivered, failed = finished("email", "delivered"), finished("email", "permanent-failure")
        referral = created(email(mailbox()), email(mailbox()))
        await n.handle(referral)
        sent, held = await n.rows(referral.referral_id)
        await park_pending(db[0])  # neither is due; only `sent` is brought forward
        await n.due_now(sent["id"])
        [row] = await n.settle(sent["id"])
        assert row["status"] == "delivered"
        assert finished("email", "delivered") == delivered + 1

        # News about a finished message (a late receipt, a lookup) is not a second outcome.
        await record_status(n.runtime, sent["id"], D.delivered, {}, answer=True)
        await record_status(n.runtime, sent["id"], D.permanent_failure, {})
        assert finished("email", "delivered") == delivered + 1
        assert finished("email", "permanent-failure") == failed

        # A move whose transaction does not commit did not happen; the one that commits counts.
        async with n.runtime.uow() as uow:
            assert await move(uow, held["id"], D.permanent_failure, {}) is not None
        assert (await n.row(held["id"]))["status"] == "created"
        assert finished("email", "permanent-failure") == failed
        assert await record_status(n.runtime, held["id"], D.permanent_failure, {}) == D.created
        assert finished("email", "permanent-failure") == failed + 1


def test_every_series_exists_from_the_start():
    """A rate over a counter's first appearance sees no increase: each series is exported at 0 up front."""
    series = {tuple(s.labels.values()) for m in FINISHED.collect() for s in m.samples if s.name.endswith("_total")}
    assert {("email", "technical-failure"), ("sms", "delivered"), ("webhook", "temporary-failure")} <= series
    assert len(series) == 3 * 4
