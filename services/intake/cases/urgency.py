"""Urgency floor: the facts set a minimum; an operator may raise it, lower it only with a reason."""
from schemas.events.common import Urgency

_RANK = {Urgency.normal: 0, Urgency.high: 1, Urgency.emergency: 2}


def urgency_floor(immediate_danger: bool, child_victim: bool, violence: bool = False,
                  moving_across_border: bool = False) -> Urgency:
    if immediate_danger or moving_across_border:  # minutes matter: a border crossing can't be undone
        return Urgency.emergency
    if child_victim or violence:
        return Urgency.high
    return Urgency.normal


def is_below(urgency: Urgency, floor: Urgency) -> bool:
    return _RANK[urgency] < _RANK[floor]


def highest(a: Urgency, b: Urgency) -> Urgency:
    return a if _RANK[a] >= _RANK[b] else b
