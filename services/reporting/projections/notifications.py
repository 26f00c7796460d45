"""Alerts and their delivery. A terminal state never changes (GOV.UK Notify's rule, as notify keeps it)."""
from sqlalchemy import case, func

from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.notifications import DeliveryStatus as D
from schemas.events.notifications import NotificationStatusChanged
from services.reporting.models import notifications
from services.reporting.projections.batch import Upsert
from services.reporting.projections.clock import local_day

t = notifications.c
RANK = {D.created: 0, D.sending: 1, D.sent: 2, D.delivered: 3, D.permanent_failure: 3, D.temporary_failure: 3,
        D.technical_failure: 3}


def _merge(ex) -> dict:
    newer = t.status_rank < ex.status_rank
    return {
        "status": case((newer, ex.status), else_=t.status),
        "status_rank": func.greatest(t.status_rank, ex.status_rank),
        "provider": case((newer, func.coalesce(ex.provider, t.provider)), else_=func.coalesce(t.provider, ex.provider)),
        "kind": func.coalesce(t.kind, ex.kind),
        "attempts": func.greatest(t.attempts, ex.attempts),
        "created_at": func.least(t.created_at, ex.created_at),
        "day": case((ex.created_at < t.created_at, ex.day), else_=t.day),
        "delivered_at": func.least(t.delivered_at, ex.delivered_at),
    }


ALERTS = Upsert(notifications, ("notification_id",), _merge)


async def on_notification_status_changed(uow: UnitOfWork, event: Event[NotificationStatusChanged]) -> None:
    n = event.payload
    ALERTS.stage(uow, {
        "notification_id": n.notification_id, "referral_id": n.referral_id, "case_id": n.case_id,
        "channel": n.channel, "kind": n.kind, "provider": n.provider, "status": n.status,
        "status_rank": RANK[n.status], "attempts": n.attempts, "created_at": n.occurred_at,
        "day": local_day(n.occurred_at), "delivered_at": n.occurred_at if n.status is D.delivered else None})
