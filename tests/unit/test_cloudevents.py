"""Property tests for the CloudEvents binary-mode codec: round trips, and garbage is an EnvelopeError."""
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.cloudevents import Envelope, EnvelopeError, decode

texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(
    st.uuids(), texts, texts, st.datetimes(timezones=st.just(UTC)), st.none() | texts, st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["traceparent", "tracestate"]), texts, max_size=2),
)
def test_round_trip(event_id, source, type_, time, subject, data, ext):
    env = Envelope(event_id, source, type_, time, subject, data, ext)
    back = decode(env.headers(), data)
    assert back == env


@given(
    st.lists(st.tuples(st.sampled_from(["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time",
                                        "content-type", "x"]), st.binary(max_size=40)), max_size=8),
    st.none() | st.binary(max_size=40),
)
def test_arbitrary_headers_either_decode_or_raise_envelope_error(headers, value):
    try:
        decode(headers, value)
    except EnvelopeError:
        pass


def good_headers(**override) -> list[tuple[str, bytes]]:
    h = {"ce_specversion": "1.0", "ce_id": str(uuid.uuid4()), "ce_source": "/s", "ce_type": "t",
         "ce_time": datetime.now(UTC).isoformat(), "content-type": "application/json"} | override
    return [(k, v.encode()) for k, v in h.items() if v is not None]


@pytest.mark.parametrize("override", [
    {"ce_id": None}, {"ce_type": None}, {"ce_specversion": "0.3"}, {"ce_id": "not-a-uuid"},
    {"content-type": "application/avro"}, {"ce_time": "yesterday"},
])
def test_invalid_envelopes_are_refused(override):
    with pytest.raises(EnvelopeError):
        decode(good_headers(**override), b"{}")


def test_missing_value_is_refused():
    with pytest.raises(EnvelopeError):
        decode(good_headers(), None)
