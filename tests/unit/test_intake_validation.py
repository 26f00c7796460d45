"""Property tests for the report validators: codes of the 2025 map and the urgency floor."""
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.events.common import Urgency
from schemas.geography import communes, provinces
from services.intake.cases.schemas import CaseReportIn
from services.intake.cases.urgency import is_below, urgency_floor

PROVINCES = sorted(provinces())
COMMUNES = sorted(communes())


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_reference_map_has_34_provinces_and_3321_communes():
    assert len(PROVINCES) == 34 and len(COMMUNES) == 3321


@given(st.sampled_from(COMMUNES))
def test_every_commune_is_accepted_with_its_own_province(code):
    province = communes()[code][1]
    report = CaseReportIn(province_code=province, commune_code=code)
    assert (report.province_code, report.commune_code) == (province, code)


@given(st.sampled_from(COMMUNES), st.sampled_from(PROVINCES))
def test_a_commune_outside_the_given_province_is_refused_on_commune_code(code, province):
    if communes()[code][1] == province:
        return
    with pytest.raises(ValidationError) as exc:
        CaseReportIn(province_code=province, commune_code=code)
    assert error_fields(exc.value) == {"commune_code"}


@given(st.text(max_size=6).filter(lambda s: s not in provinces()))
def test_anything_but_a_known_province_code_is_refused_on_province_code(code):
    with pytest.raises(ValidationError) as exc:
        CaseReportIn(province_code=code)
    assert error_fields(exc.value) == {"province_code"}


@given(st.text(max_size=7).filter(lambda s: s not in communes()))
def test_anything_but_a_known_commune_code_is_refused_on_commune_code(code):
    with pytest.raises(ValidationError) as exc:
        CaseReportIn(province_code="01", commune_code=code)
    assert error_fields(exc.value) == {"commune_code"}


def test_non_ascii_digits_are_not_codes():
    with pytest.raises(ValidationError):
        CaseReportIn(province_code="٠١")


@given(st.booleans(), st.booleans())
def test_urgency_floor_follows_the_facts(danger, child):
    floor = urgency_floor(danger, child)
    assert floor == (Urgency.emergency if danger else Urgency.high if child else Urgency.normal)
    assert not is_below(floor, floor)


def test_only_lower_urgencies_are_below_a_floor():
    assert is_below(Urgency.normal, Urgency.high) and is_below(Urgency.high, Urgency.emergency)
    assert not is_below(Urgency.emergency, Urgency.normal)
