"""Time grouping: the buckets a date range is cut into, and their labels."""
from datetime import date, timedelta
from enum import StrEnum


class Group(StrEnum):
    day = "day"
    week = "week"  # ISO weeks, Monday first
    month = "month"
    year = "year"
    all = "all"  # the whole range as one period


ALL = "all"  # the label of a margin: every period, or every category


def bucket_sql(group: Group, day: str) -> str:
    """SQL: the first day of `day`'s bucket (NULL for the whole range)."""
    if group is Group.all:
        return "NULL::date"
    if group is Group.day:
        return day
    return f"date_trunc('{group.value}', {day})::date"


def label(group: Group, start: date | None) -> str:
    if group is Group.all or start is None:
        return ALL
    if group is Group.day:
        return start.isoformat()
    if group is Group.week:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if group is Group.month:
        return f"{start.year}-{start.month:02d}"
    return str(start.year)


def bucket_start(group: Group, d: date) -> date:
    if group is Group.week:
        return d - timedelta(days=d.weekday())
    if group is Group.month:
        return d.replace(day=1)
    if group is Group.year:
        return d.replace(month=1, day=1)
    return d


def periods(group: Group, start: date, end: date) -> list[str]:
    """Every bucket's label from `start` to `end` inclusive, empty ones too (an empty bucket is a count)."""
    if group is Group.all:
        return [ALL]
    out, d = [], bucket_start(group, start)
    while d <= end:
        out.append(label(group, d))
        if group is Group.day:
            d += timedelta(days=1)
        elif group is Group.week:
            d += timedelta(days=7)
        elif group is Group.month:
            d = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            d = d.replace(year=d.year + 1)
    return out


def count(group: Group, start: date, end: date) -> int:
    if group is Group.all:
        return 1
    days = (end - start).days + 1
    return {Group.day: days, Group.week: days // 7 + 2, Group.month: days // 28 + 2, Group.year: days // 365 + 2}[group]
