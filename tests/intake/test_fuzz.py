"""Hypothesis fuzzes the case and contact endpoints of the running intake: no input yields a 500."""
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.cases.schemas import CasePatch, CaseReportIn, VictimIn
from services.intake.contacts.schemas import ContactIn

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=10), inner, max_size=3), max_leaves=8)
# Plausible values for known fields, so the fuzzing also reaches the deeper validators and the database.
plausible = (st.sampled_from(["01", "79", "99", "00070", "26734", "CN", "VN", "2026-01-01T00:00:00Z",
                              "2999-01-01T00:00:00Z", "phone", "consultation", "non_case", "female", "9-17",
                              "0912345678", "+84 912 345 678", "emergency", "closed"])
             | scalars | st.lists(st.sampled_from(["shelter", "zalo", "forced_labour", "threats", "x"]), max_size=3))


def bodies(model, extra_models=()) -> st.SearchStrategy:
    fields = list(model.model_fields)
    nested = {name: st.lists(st.dictionaries(st.sampled_from(list(m.model_fields)), plausible, max_size=5),
                             max_size=2) for name, m in extra_models}
    known = st.fixed_dictionaries({}, optional={f: nested.get(f, plausible) for f in fields})
    return known | st.dictionaries(st.text(max_size=12), json_values, max_size=4) | json_values


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@FUZZ
@given(body=bodies(CaseReportIn, [("victims", VictimIn)]))
def test_no_case_body_is_a_server_error(stack, body):
    r = httpx.post(f"{stack.url('intake')}/cases", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {stack.token('operator', sub='fuzz')}"})
    assert r.status_code in (200, 201, 409, 422), (r.status_code, r.text)


@FUZZ
@given(body=bodies(ContactIn))
def test_no_contact_body_is_a_server_error(stack, body):
    r = httpx.post(f"{stack.url('intake')}/contacts", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {stack.token('operator', sub='fuzz')}"})
    assert r.status_code in (200, 201, 409, 422), (r.status_code, r.text)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_no_raw_bytes_are_a_server_error(stack, raw):
    r = httpx.post(f"{stack.url('intake')}/cases", content=raw, timeout=30,
                   headers={"Authorization": f"Bearer {stack.token('operator', sub='fuzz')}",
                            "content-type": "application/json"})
    assert r.status_code in (200, 201, 409, 422), (r.status_code, r.text)


@FUZZ
@given(body=bodies(CasePatch, [("victims", VictimIn)]))
def test_no_case_patch_is_a_server_error(stack, body):
    headers = {"Authorization": f"Bearer {stack.token('operator', sub='fuzz-patch')}"}
    base = f"{stack.url('intake')}/cases"
    case = httpx.post(base, json={"province_code": "01"}, headers=headers, timeout=30).json()
    r = httpx.patch(f"{base}/{case['id']}", json=body, timeout=30, headers={**headers, "If-Match": '"1"'})
    assert r.status_code in (200, 409, 412, 422), (r.status_code, r.text)
