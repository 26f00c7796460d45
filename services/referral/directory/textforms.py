"""Compact text forms for a unit's contacts and opening hours, shared by the CSV and YAML files.

Contact: `channel:address:preference[:24x7]`, e.g. `sms:+840000012345:1:24x7`,
`email:duty@agencies.hotline111.example:2`. In CSV several are joined with `|`.
Hours: `days HH:MM-HH:MM`, days one day or a range, e.g. `mon-fri 07:30-17:00`, `sat 08:00-12:00`;
local time (Asia/Ho_Chi_Minh). A range expands to one OpeningHours per day; formatting folds
consecutive days with equal times back into a range, so parse(format(x)) == x.
"""
from __future__ import annotations

import re
from datetime import time

from services.referral.directory.model import Channel, Contact, OpeningHours

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DUTY = "24x7"
MAX_PREFERENCE = 99
# ASCII classes on purpose: int() and \d would also accept other scripts' digits.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?")
_HOURS = re.compile(r"([a-z]{3})(?:-([a-z]{3}))? (\S+)-(\S+)")


def check_address(channel: Channel, address: str) -> None:
    pattern, what = (E164, "an E.164 number like +84...") if channel is Channel.sms else (EMAIL, "an email address")
    if not pattern.fullmatch(address):
        raise ValueError(f"{address!r} is not {what}")


def check_preference(preference: object) -> int:
    if type(preference) is not int or not 1 <= preference <= MAX_PREFERENCE:
        raise ValueError(f"preference must be a whole number 1-{MAX_PREFERENCE}, not {preference!r}")
    return preference


def format_contact(c: Contact) -> str:
    return f"{c.channel.value}:{c.address}:{c.preference}" + (f":{DUTY}" if c.duty_24_7 else "")


def parse_contact(text: str) -> Contact:
    parts = text.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != DUTY):
        raise ValueError(f"{text!r} is not channel:address:preference[:{DUTY}]")
    channel = parse_channel(parts[0])
    check_address(channel, parts[1])
    if not re.fullmatch(r"[0-9]{1,2}", parts[2]):
        raise ValueError(f"preference must be a whole number 1-{MAX_PREFERENCE}, not {parts[2]!r}")
    return Contact(channel, parts[1], check_preference(int(parts[2])), duty_24_7=len(parts) == 4)


def parse_channel(value: object) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise ValueError(f"unknown channel {value!r} (one of {', '.join(Channel)})") from None


def format_hours(hours: tuple[OpeningHours, ...]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(hours):
        j = i  # extend over following days with the same times
        while (j + 1 < len(hours) and hours[j + 1].weekday == hours[j].weekday + 1
               and (hours[j + 1].opens, hours[j + 1].closes) == (hours[i].opens, hours[i].closes)):
            j += 1
        days = DAYS[hours[i].weekday] + (f"-{DAYS[hours[j].weekday]}" if j > i else "")
        out.append(f"{days} {_format_time(hours[i].opens)}-{_format_time(hours[i].closes)}")
        i = j + 1
    return out


def parse_hours(text: str) -> list[OpeningHours]:
    m = _HOURS.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not like 'mon-fri 07:30-17:00'")
    first, last, opens, closes = m.group(1), m.group(2) or m.group(1), _parse_time(m.group(3)), _parse_time(m.group(4))
    if first not in DAYS or last not in DAYS:
        raise ValueError(f"{text!r}: days are {', '.join(DAYS)}")
    if DAYS.index(last) < DAYS.index(first):
        raise ValueError(f"{text!r}: day range runs backwards")
    if closes <= opens:
        raise ValueError(f"{text!r}: closes before it opens")
    return [OpeningHours(d, opens, closes) for d in range(DAYS.index(first), DAYS.index(last) + 1)]


def _format_time(t: time) -> str:
    return t.strftime("%H:%M" if t.second == 0 else "%H:%M:%S")


def _parse_time(text: str) -> time:
    m = _TIME.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a time HH:MM")
    return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
