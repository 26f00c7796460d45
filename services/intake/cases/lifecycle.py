"""Which status changes are allowed, and which need a supervisor."""
from runtime.problems import DomainError, Forbidden
from schemas.vocab import CaseStatus as S

ALLOWED = {
    S.open: {S.referred, S.in_progress, S.closed},
    S.referred: {S.in_progress, S.closed},
    S.in_progress: {S.closed},
    S.closed: {S.open},  # reopening
}
SUPERVISOR_ONLY = {(S.closed, S.open)}


def check(current: S, new: S, is_supervisor: bool) -> None:
    """Raises a 422 naming `status` for a move the lifecycle forbids, a 403 for one reserved to supervisors."""
    if new not in ALLOWED[current]:
        raise DomainError(f"a case cannot go from {current} to {new}", field="status")
    if (current, new) in SUPERVISOR_ONLY and not is_supervisor:
        raise Forbidden("only a supervisor can reopen a closed case")
