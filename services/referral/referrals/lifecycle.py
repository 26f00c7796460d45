"""Which status changes a referral may make, what each one records, and which outcomes need what.

created → notified → acknowledged → accepted | declined; accepted → closed. An agency may acknowledge
before notify reports delivery, so acknowledging is allowed from created too. Declined and closed are
final.
"""
from runtime.problems import Conflict, DomainError
from schemas.events.referrals import ReferralOutcome as O
from schemas.events.referrals import ReferralStatus as S
from schemas.vocab import Need

ALLOWED: dict[S, frozenset[S]] = {
    S.created: frozenset({S.notified, S.acknowledged}),
    S.notified: frozenset({S.acknowledged}),
    S.acknowledged: frozenset({S.accepted, S.declined}),
    S.accepted: frozenset({S.closed}),
    S.declined: frozenset(),
    S.closed: frozenset(),
}
FINAL = frozenset(s for s, nexts in ALLOWED.items() if not nexts)
# The column each status stamps with the time it was reached.
STAMP: dict[S, str] = {
    S.notified: "notified_at", S.acknowledged: "acknowledged_at", S.accepted: "accepted_at",
    S.declined: "declined_at", S.closed: "closed_at",
}
# Once a unit has acknowledged, nobody needs reminding and nothing escalates: the timer stops.
STOPS_TIMER = frozenset({S.acknowledged, S.accepted, S.declined, S.closed})
ACKNOWLEDGED_OR_LATER = STOPS_TIMER  # every state after acknowledged passed through it

COUNTED = frozenset({O.victims_rescued, O.repatriated})  # outcomes that need `victims`


def check(current: S, new: S) -> None:
    """Raises a 409 naming `status` for a move the lifecycle does not allow, saying why."""
    if new in ALLOWED[current]:
        return
    if current == new:
        raise Conflict(f"the referral is already {current}", field="status")
    if current in FINAL:
        raise Conflict(f"the referral is {current}: nothing more can be done with it", field="status")
    allowed = " or ".join(sorted(ALLOWED[current]))
    raise Conflict(f"a referral cannot go from {current} to {new}; from {current} it can go to {allowed}",
                   field="status")


def check_outcome_allowed(current: S) -> None:
    if current != S.accepted:
        raise Conflict(f"outcomes are recorded on accepted referrals; this one is {current}", field="status")


def check_outcome(outcome: O, victims: int | None, services: list[Need]) -> None:
    """Counts and codes that fit the outcome: a count of the people rescued or repatriated, the support
    given to those supported. Raises a 422 naming the field."""
    if outcome in COUNTED and victims is None:
        raise DomainError(f"{outcome} needs the number of victims", field="victims")
    if outcome is O.victims_supported and not services:
        raise DomainError("victims_supported needs the services given", field="services")
    if outcome is not O.victims_supported and services:
        raise DomainError(f"services go with victims_supported, not {outcome}", field="services")
