"""Contacts: every call, chat or visit counts, case or not. They never change once recorded."""
from runtime.consumer import Event
from runtime.uow import UnitOfWork
from schemas.events.contacts import ContactRecorded
from services.reporting.models import UNKNOWN, contacts_daily
from services.reporting.projections.batch import Upsert
from services.reporting.projections.clock import local_day

t = contacts_daily.c
COUNTS = Upsert(
    contacts_daily, ("day", "channel", "contact_type", "province_code", "caller_role"),
    lambda ex: {"contacts": t.contacts + ex.contacts, "duration_s": t.duration_s + ex.duration_s},
    merge=lambda a, b: a | {"contacts": a["contacts"] + b["contacts"], "duration_s": a["duration_s"] + b["duration_s"]},
)


async def on_contact_recorded(uow: UnitOfWork, event: Event[ContactRecorded]) -> None:
    c = event.payload
    COUNTS.stage(uow, {"day": local_day(c.started_at), "channel": c.channel, "contact_type": c.contact_type,
                       "province_code": c.caller_province_code or UNKNOWN, "caller_role": c.caller_role,
                       "contacts": 1, "duration_s": c.duration_s})
