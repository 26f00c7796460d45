"""Delivery states, as named sets (after GOV.UK Notify). A terminal state never changes."""
from schemas.events.notifications import DeliveryStatus as S

PENDING = frozenset({S.created, S.sending})
FAILED = frozenset({S.permanent_failure, S.temporary_failure, S.technical_failure})
TERMINAL = frozenset({S.delivered} | FAILED)


class TerminalStateError(ValueError):
    pass


def check_transition(current: S, new: S) -> None:
    if current in TERMINAL:
        raise TerminalStateError(f"notification is {current}; a terminal state never changes")
