"""Notify's delivery states and the SMTP code map."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events.notifications import DeliveryStatus
from services.notify.delivery.outcome import Verdict
from services.notify.delivery.smtp import outcome_for_smtp_code
from services.notify.delivery.states import FAILED, PENDING, TERMINAL, TerminalStateError, check_transition


def test_state_sets_partition_every_status():
    assert PENDING | {DeliveryStatus.sent} | TERMINAL == set(DeliveryStatus) and not PENDING & TERMINAL
    assert FAILED < TERMINAL and DeliveryStatus.delivered in TERMINAL


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
@pytest.mark.parametrize("new", sorted(DeliveryStatus))
def test_a_terminal_state_never_changes(terminal, new):
    with pytest.raises(TerminalStateError):
        check_transition(terminal, new)


def test_pending_states_may_move():
    check_transition(DeliveryStatus.created, DeliveryStatus.sending)
    check_transition(DeliveryStatus.sending, DeliveryStatus.delivered)


@given(st.integers(200, 599))
def test_smtp_reply_classes(code):
    outcome = outcome_for_smtp_code(code)
    expected = {2: Verdict.delivered, 3: Verdict.permanent, 4: Verdict.retry, 5: Verdict.permanent}[code // 100]
    assert outcome.verdict is expected and outcome.code == str(code)
    if expected is Verdict.retry:
        assert outcome.exhausts_to == "temporary-failure"
