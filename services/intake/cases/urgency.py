"""Urgency floor: the facts set a minimum; an operator may raise it, lower it only with a reason."""
from schemas.events.common import Urgency

_RANK = {Urgency.normal: 0, Urgency.high: 1, Urgency.emergency: 2}


def urgency_floor(immediate_danger: bool, child_victim: bool) -> Urgency:
    if immediate_danger:
        return Urgency.emergency
    if child_victim:
        return Urgency.high
    return Urgency.normal


def is_below(urgency: Urgency, floor: Urgency) -> bool:
    return _RANK[urgency] < _RANK[floor]
