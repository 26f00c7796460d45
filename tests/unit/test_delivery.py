"""Notify's delivery states and the SMTP code map."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events.notifications import DeliveryStatus
from services.notify.delivery.outcome import Verdict
from services.notify.delivery.smtp import message_id, outcome_for_smtp_code
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


@pytest.mark.parametrize(("sender", "domain"), [
    ("111 Hotline <alerts@hotline111.example>", "hotline111.example"),
    ("alerts@duongdaynong.vn", "duongdaynong.vn"),
    ("not an address", "hotline111.example"),
])
def test_an_emails_message_id_is_its_notifications_on_the_senders_domain(sender, domain):
    assert message_id(sender, "7c9e6679-7425-40de-944b-e07fc1f90ae7") == f"<7c9e6679-7425-40de-944b-e07fc1f90ae7@{domain}>"


@given(st.uuids())
def test_an_emails_message_id_is_the_same_on_every_attempt_and_differs_between_notifications(a):
    sender = "111 Hotline <alerts@hotline111.example>"
    assert message_id(sender, str(a)) == message_id(sender, str(a))
    assert message_id(sender, str(a)) != message_id(sender, f"{a}x")
