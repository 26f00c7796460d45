"""Delivery states, as named sets (after GOV.UK Notify). A terminal state never changes.

created → sending → sent → delivered | temporary-failure | permanent-failure | technical-failure.
A provider that answers at once (SMTP, a webhook receiver) goes from sending to delivered directly.
"""
from schemas.events.notifications import DeliveryStatus as S

PENDING = frozenset({S.created, S.sending})  # ours to send
IN_FLIGHT = frozenset({S.sending, S.sent})  # with a provider: a receipt or lookup will settle it
FAILED = frozenset({S.permanent_failure, S.temporary_failure, S.technical_failure})
TERMINAL = frozenset({S.delivered} | FAILED)
# How far along each state is: a late receipt never moves a message back (a "sent" after "delivered").
RANK = {S.created: 0, S.sending: 1, S.sent: 2, **{s: 3 for s in TERMINAL}}


class TerminalStateError(ValueError):
    pass


def check_transition(current: S, new: S) -> None:
    if current in TERMINAL:
        raise TerminalStateError(f"notification is {current}; a terminal state never changes")


def moves_forward(current: S, new: S) -> bool:
    """Whether `new` is news for a message in `current`: later in the lifecycle, and never out of a terminal state."""
    return current not in TERMINAL and RANK[new] > RANK[current]
