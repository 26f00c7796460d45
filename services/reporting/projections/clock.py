"""Reporting counts by the hotline's calendar: a day is a day in Vietnam."""
from datetime import date, datetime
from zoneinfo import ZoneInfo

HOTLINE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local_day(at: datetime) -> date:
    return at.astimezone(HOTLINE_TZ).date()
