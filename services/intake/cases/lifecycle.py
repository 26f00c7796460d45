"""Which status changes are allowed, and which need a supervisor."""
from schemas.vocab import CaseStatus as S

ALLOWED = {
    S.open: {S.referred, S.in_progress, S.closed},
    S.referred: {S.in_progress, S.closed},
    S.in_progress: {S.closed},
    S.closed: {S.open},  # reopening
}
SUPERVISOR_ONLY = {(S.closed, S.open)}


def check(current: S, new: S, is_supervisor: bool) -> str | None:
    """None if allowed, else why not."""
    if new not in ALLOWED[current]:
        return f"a case cannot go from {current} to {new}"
    if (current, new) in SUPERVISOR_ONLY and not is_supervisor:
        return "only a supervisor can reopen a closed case"
    return None
