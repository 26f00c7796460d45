"""The seed agency directory (generate.py), its fact files (facts.py) and its CSV/YAML codec
(codec.py): complete for the 2025 map, fictitious contacts only, in step with the committed data
file, exact round trips, and imports rejected with the row and field of every problem."""
import csv
import io
import re
import uuid
from collections import Counter
from datetime import datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.geography import communes, provinces
from services.referral.directory import codec, facts, generate, textforms
from services.referral.directory.codec import DirectoryImportError, RowError
from services.referral.directory.model import Channel, Contact, Level, OpeningHours
from services.referral.directory.model import UnitKind as K

PROVINCE_KINDS = (K.police_province, K.health_department, K.social_protection_centre, K.legal_aid_centre, K.hospital,
                  K.womens_union_shelter)
DUTY_KINDS = (K.police_national, K.police_province, K.police_commune, K.border_guard_province, K.border_post,
              K.coast_guard_region, K.regional_centre, K.national_centre, K.peoples_committee, K.hospital)
OFFICE_KINDS = (K.health_department, K.legal_aid_centre, K.consular_department)
# Shelters and social protection admit people at any hour in an emergency, and keep office hours too.
OFFICE_AND_DUTY_KINDS = (K.social_protection_centre, K.womens_union_shelter)
FICTITIOUS_SMS = re.compile(r"\+8400000[0-9]{5}")
FICTITIOUS_EMAIL = re.compile(r"[a-z0-9.-]+@agencies\.hotline111\.example")


@pytest.fixture(scope="module")
def units():
    return generate.units()


@pytest.fixture(scope="module")
def by_code(units):
    return {u.code: u for u in units}


def where(units, kind):
    return {(u.province_code, u.commune_code) for u in units if u.kind is kind}


# ---- fact files ----------------------------------------------------------------------------------

def test_regions_cover_all_34_provinces_exactly_once():
    with facts.REGIONS_FILE.open(encoding="utf-8") as fh:
        listed = Counter(row["province_code"] for row in csv.DictReader(fh))
    assert set(listed) == set(provinces()) and set(listed.values()) == {1}
    assert Counter(facts.regions().values()) == {"north": 20, "central": 6, "south": 8}


def test_border_and_coastal_lists_match_domain_md():
    assert len(facts.border_countries()) == 22 and len(facts.border_pairs()) == 24
    assert set(facts.border_countries()["11"]) == {"CN", "LA"}  # Điện Biên
    assert set(facts.border_countries()["51"]) == {"LA", "KH"}  # Quảng Ngãi
    assert len(facts.coastal_provinces()) == 21 and "79" in facts.coastal_provinces()  # Hồ Chí Minh City


def test_every_fact_row_cites_its_source_and_marks_verify():
    for path in [facts.DATA_DIR / name for name in ("border_provinces.csv", "coastal_provinces.csv",
                                                    "coast_guard_regions.csv")] + [facts.REGIONS_FILE]:
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                assert "domain.md" in row["source"] and "(verify)" in row["source"], (path.name, row)


def test_province_names_resolve_accent_exact_or_fail_loudly():
    assert facts.resolve_province("Hà Nội") == "01" and facts.resolve_province("Hồ Chí Minh City") == "79"
    with pytest.raises(facts.FactsError):
        facts.resolve_province("Ha Noi")


def test_a_fact_file_that_disagrees_with_the_map_fails_loudly(tmp_path, monkeypatch):
    (tmp_path / "regions.csv").write_text(
        "province_code,province_name,region,source\n01,Hà Nội,north,x\n04,Lạng Sơn,north,x\n99,Nowhere,east,x\n",
        encoding="utf-8")
    monkeypatch.setattr(facts, "REGIONS_FILE", tmp_path / "regions.csv")
    with pytest.raises(facts.FactsError) as err:
        facts.regions.__wrapped__()
    text = str(err.value)
    assert "'Lạng Sơn' is province 20, not 04" in text and "unknown province code '99'" in text
    assert "unknown region 'east'" in text and "province 96 missing" in text


# ---- the generated directory ---------------------------------------------------------------------

def test_counts_by_kind(units):
    counts = Counter(u.kind for u in units)
    assert counts[K.police_commune] == counts[K.peoples_committee] == 3321
    assert all(counts[k] == 34 for k in PROVINCE_KINDS)
    assert counts[K.border_guard_province] == 30 and counts[K.border_post] == 24
    assert counts[K.coast_guard_region] == 4 and counts[K.counterpart] == 3
    assert len(units) == 6912


def test_every_province_has_its_six_provincial_units(units):
    for kind in PROVINCE_KINDS:
        assert where(units, kind) == {(p, None) for p in provinces()}, kind


def test_every_commune_has_police_and_a_peoples_committee(units, by_code):
    expected = {(p, c) for c, (_, p) in communes().items()}
    assert where(units, K.police_commune) == expected
    assert where(units, K.peoples_committee) == expected
    assert by_code["police-commune-00070"].parent_code == "police-province-01"


def test_border_guard_in_every_border_or_coastal_province_and_a_post_per_border_pair(units):
    guarded = set(facts.border_countries()) | facts.coastal_provinces()
    assert where(units, K.border_guard_province) == {(p, None) for p in guarded}
    posts = {(u.province_code, u.code.rsplit("-", 1)[1].upper(), u.parent_code)
             for u in units if u.kind is K.border_post}
    assert posts == {(p, c, f"border-guard-{p}") for p, c in facts.border_pairs()}


def test_every_coastal_province_is_covered_by_exactly_one_coast_guard_region(by_code):
    with (facts.DATA_DIR / "coast_guard_regions.csv").open(encoding="utf-8") as fh:
        listed = Counter(row["province_code"] for row in csv.DictReader(fh))
    assert set(listed) == facts.coastal_provinces() and set(listed.values()) == {1}
    coverage = generate.coast_guard_coverage()
    assert set(coverage) == facts.coastal_provinces()
    assert set(coverage.values()) == {f"coast-guard-region-{r}" for r in (1, 2, 3, 4)}
    assert all(by_code[code].kind is K.coast_guard_region for code in coverage.values())
    assert coverage["22"] == "coast-guard-region-1" and coverage["96"] == "coast-guard-region-4"  # north → south


def test_each_region_has_a_centre(units):
    centres = {u.region: u.code for u in units if u.kind in (K.regional_centre, K.national_centre)}
    assert centres == facts.REGIONAL_CENTRE
    for province in provinces():
        assert facts.regional_centre_code(facts.region_of(province)) in centres.values()


def test_the_index_carries_the_geography_the_matcher_asks_about(units):
    index = facts.directory_index(units)
    assert [u.code for u in index.units_covering("31")] == ["coast-guard-region-1"]  # Hải Phòng
    assert index.units_covering("01") == []  # Hà Nội has no coast
    assert index.region_of("48") == "central" and index.region_of("79") == "south" and index.region_of("00") is None
    assert index.is_border_province("20") and not index.is_border_province("01")  # Lạng Sơn, Hà Nội
    assert index.is_coastal_province("96") and not index.is_coastal_province("80")  # Cà Mau, Tây Ninh
    assert [u.code for u in index.units_of_kind(K.regional_centre, Level.region, "south")] == ["hotline-centre-south"]
    assert [u.code for u in index.units_of_kind(K.police_commune, Level.commune, "00070")] == ["police-commune-00070"]


def test_national_bodies_and_counterparts(by_code):
    assert by_code["police-national"].kind is K.police_national
    assert by_code["mofa-consular"].kind is K.consular_department
    for country, language in {"CN": "zh", "LA": "lo", "KH": "km"}.items():
        unit = by_code[f"counterpart-{country.lower()}"]
        assert unit.kind is K.counterpart and unit.country == country and unit.languages == {"en", language}


def test_codes_ids_and_parents_are_consistent(units, by_code):
    assert len(by_code) == len(units) and len({u.id for u in units}) == len(units)
    assert all(u.id == uuid.uuid5(generate.NAMESPACE, u.code) for u in units)  # stable across runs
    assert all(u.parent_code in by_code for u in units if u.parent_code)
    assert all(u.status == "active" and u.last_verified.isoformat() == "2026-11-01" for u in units)


def test_contacts_are_fictitious_and_duty_lines_are_24_7(units):
    numbers = []
    for u in units:
        assert u.contacts, u.code
        for c in u.contacts:
            if c.channel is Channel.sms:
                assert FICTITIOUS_SMS.fullmatch(c.address), c
                numbers.append(c.address)
            else:
                assert FICTITIOUS_EMAIL.fullmatch(c.address), c
        assert "contacts fictitious" in u.source
        if u.kind in DUTY_KINDS + OFFICE_AND_DUTY_KINDS:
            first, second = u.contacts_in_order()
            assert (first.channel, first.preference, first.duty_24_7) == (Channel.sms, 1, True), u.code
            assert (second.channel, second.preference) == (Channel.email, 2), u.code
            assert u.open_at(datetime(2026, 11, 8, 3, 0))  # a Sunday night
        if u.kind in OFFICE_KINDS:
            assert not u.has_duty_contact and u.contacts[0].channel is Channel.email
            assert textforms.format_hours(u.opening_hours) == ["mon-fri 07:30-17:00"]
            assert u.open_at(datetime(2026, 11, 2, 7, 30)) and not u.open_at(datetime(2026, 11, 2, 17, 0))
        if u.kind in OFFICE_AND_DUTY_KINDS:
            assert textforms.format_hours(u.opening_hours) == ["mon-fri 07:30-17:00"]
    assert len(numbers) == len(set(numbers))  # each duty line its own number


def test_committed_data_file_is_what_the_generator_produces(units):
    committed = generate.DATA.read_text(encoding="utf-8")
    assert committed == codec.to_csv(units), "run: python -m services.referral.directory.generate"


# ---- codec: round trips --------------------------------------------------------------------------

def test_whole_directory_round_trips_through_csv(units):
    assert codec.parse_csv(codec.to_csv(units)) == units


def test_whole_directory_round_trips_through_yaml(units):
    assert codec.parse_yaml(codec.to_yaml(units)) == units


def test_hours_that_are_not_a_simple_range_round_trip():
    hours = (OpeningHours(0, *_times("08:00", "12:00")), OpeningHours(0, *_times("13:00", "17:00")),
             OpeningHours(1, *_times("08:00", "12:00")), OpeningHours(5, *_times("08:00", "11:30:15")),
             OpeningHours(6, *_times("08:00", "11:30:15")))
    text = textforms.format_hours(hours)
    assert text == ["mon 08:00-12:00", "mon 13:00-17:00", "tue 08:00-12:00", "sat-sun 08:00-11:30:15"]
    assert tuple(h for entry in text for h in textforms.parse_hours(entry)) == hours


def _times(*texts):
    return [datetime.strptime(t, "%H:%M:%S" if t.count(":") == 2 else "%H:%M").time() for t in texts]


# ---- codec: validation ---------------------------------------------------------------------------

SAMPLE = ("police-national", "police-province-01", "police-commune-00070", "peoples-committee-00070",
          "legal-aid-01")


@pytest.fixture()
def sample_rows(by_code):
    """Rows 2..6 of a small valid CSV, as dicts to spoil one cell at a time."""
    text = codec.to_csv([by_code[c] for c in SAMPLE])
    return list(csv.DictReader(io.StringIO(text)))


def csv_of(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, codec.FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def errors_of(parse, text, **kw):
    with pytest.raises(DirectoryImportError) as err:
        parse(text, **kw)
    return err.value.errors


def test_sample_is_valid(sample_rows, by_code):
    assert codec.parse_csv(csv_of(sample_rows)) == [by_code[c] for c in SAMPLE]


@pytest.mark.parametrize(("index", "field", "value", "message"), [
    (1, "province_code", "99", "unknown province code '99'"),
    (2, "commune_code", "99999", "unknown commune code '99999'"),
    (0, "kind", "police_district", "unknown kind 'police_district'"),
    (0, "level", "district", "unknown level 'district'"),
    (0, "services", "law_enforcement|magic", "item 2: unknown service 'magic'"),
    (0, "status", "closed", "unknown status 'closed'"),
    (0, "contacts", "fax:+840000090001:1", "unknown channel 'fax'"),
    (0, "contacts", "sms:0912345678:1", "is not an E.164 number"),
    (0, "contacts", "sms:+840000090001", "is not channel:address:preference"),
    (0, "contacts", "email:no-at-sign:1", "is not an email address"),
    (0, "contacts", "sms:+840000090001:0:24x7", "preference must be a whole number"),
    (0, "contacts", "sms:+840000090001:1:always", "is not channel:address:preference"),
    (4, "opening_hours", "mon-fri 7:30-17:00", "is not a time HH:MM"),
    (4, "opening_hours", "fri-mon 07:30-17:00", "day range runs backwards"),
    (4, "opening_hours", "mon 17:00-07:30", "closes before it opens"),
    (4, "opening_hours", "weekdays", "is not like 'mon-fri 07:30-17:00'"),
    (0, "last_verified", "2026-13-01", "is not a date YYYY-MM-DD"),
    (0, "last_verified", "01/11/2026", "is not a date YYYY-MM-DD"),
    (0, "id", "not-a-uuid", "is not a UUID"),
    (0, "name", "", "required"),
    (4, "code", "", "required"),
    (4, "code", "Legal Aid", "is not a unit code"),
    (1, "parent_code", "police national", "is not a unit code"),
    (1, "name", "x" * 301, "longer than 300 characters"),
    (0, "country", "vn", "is not an ISO 3166-1 alpha-2 code"),
    (0, "languages", "vi||en", "item 2 must be non-empty text"),
    (0, "region", "east", "unknown region 'east'"),
])
def test_each_bad_cell_is_reported_with_its_row_and_field(sample_rows, index, field, value, message):
    sample_rows[index][field] = value
    errors = errors_of(codec.parse_csv, csv_of(sample_rows))
    assert [(e.row, e.field) for e in errors] == [(index + 2, field)], errors
    assert message in errors[0].message


def test_duplicate_codes_and_ids_report_both_rows(sample_rows):
    sample_rows[3]["code"] = sample_rows[1]["code"]  # rows 5 and 3
    sample_rows[4]["id"] = sample_rows[0]["id"]  # rows 6 and 2
    errors = errors_of(codec.parse_csv, csv_of(sample_rows))
    assert [(e.row, e.field) for e in errors] == [(2, "id"), (3, "code"), (5, "code"), (6, "id")]
    assert "rows 3, 5" in errors[1].message and "rows 2, 6" in errors[0].message


def test_a_parent_must_be_in_the_file_or_already_known(sample_rows):
    del sample_rows[0]  # police-national, the province police's parent
    text = csv_of(sample_rows)
    assert errors_of(codec.parse_csv, text) == [
        RowError(2, "parent_code", "unknown parent 'police-national': not in the file nor in the directory")]
    assert len(codec.parse_csv(text, known_codes={"police-national"})) == 4
    sample_rows[0]["parent_code"] = sample_rows[0]["code"]
    assert errors_of(codec.parse_csv, csv_of(sample_rows), known_codes={"police-national"}) == [
        RowError(2, "parent_code", "a unit cannot be its own parent")]


def test_every_problem_is_collected_before_raising(sample_rows):
    sample_rows[0]["kind"] = "x"
    sample_rows[0]["status"] = "y"
    sample_rows[4]["province_code"] = "00"
    errors = errors_of(codec.parse_csv, csv_of(sample_rows))
    assert [(e.row, e.field) for e in errors] == [(2, "kind"), (2, "status"), (6, "province_code")]


def test_a_commune_must_lie_in_the_given_province(sample_rows):
    sample_rows[2]["province_code"] = "31"
    assert errors_of(codec.parse_csv, csv_of(sample_rows)) == [
        RowError(4, "commune_code", "commune 00070 is in province 01, not 31")]
    sample_rows[2]["province_code"] = ""
    assert [(e.row, e.field) for e in errors_of(codec.parse_csv, csv_of(sample_rows))] == [(4, "province_code")]


def test_csv_rows_are_counted_by_line_with_the_header_as_row_1(sample_rows):
    sample_rows[0]["name"] = "two\nlines"  # a quoted cell spanning lines 2-3
    sample_rows[1]["kind"] = "x"
    text = csv_of(sample_rows[:2]) + "\n"  # and a trailing blank line
    assert [(e.row, e.field) for e in errors_of(codec.parse_csv, text)] == [(4, "kind")]


def test_csv_header_and_shape_problems():
    assert errors_of(codec.parse_csv, "") == [RowError(1, f, "missing column") for f in codec.REQUIRED]
    header = ",".join(codec.FIELDS)
    errors = errors_of(codec.parse_csv, header + ",extra\n" + "a,b\n")
    assert errors == [RowError(1, "extra", "unknown column"), RowError(2, None, "expected 18 cells, found 2")]


def test_csv_from_a_spreadsheet_with_a_bom_is_read(sample_rows, by_code):
    assert codec.parse_csv("\ufeff" + csv_of(sample_rows))[0] == by_code["police-national"]


def yaml_items(by_code):
    return yaml.safe_load(codec.to_yaml([by_code[c] for c in SAMPLE]))


def test_yaml_problems_are_reported_by_item_number(by_code):
    items = yaml_items(by_code)
    items[1]["province_code"] = 1  # what a bare 01 becomes in YAML
    items[2]["contacts"][0]["preference"] = True
    items[3]["province_code"] = "31"  # its commune 00070 is in Hà Nội
    items[4]["services"] = "social"
    items[4]["colour"] = "red"
    items.append("not a unit")
    errors = errors_of(codec.parse_yaml, yaml.safe_dump(items))
    assert [(e.row, e.field) for e in errors] == [
        (2, "province_code"), (3, "contacts"), (4, "commune_code"), (5, "colour"), (5, "services"), (6, None)]
    assert "quote it" in errors[0].message


def test_yaml_duplicates_and_document_shape(by_code):
    items = yaml_items(by_code)
    items[4]["code"] = items[0]["code"]
    errors = errors_of(codec.parse_yaml, yaml.safe_dump(items))
    assert [(e.row, e.field) for e in errors] == [(1, "code"), (5, "code")]
    assert errors_of(codec.parse_yaml, "a: 1") == [RowError(0, None, "the document must be a list of units")]
    assert errors_of(codec.parse_yaml, "[")[0].row == 0
    assert codec.parse_yaml("") == []


# ---- codec: never anything but DirectoryImportError -----------------------------------------------

CELL_SAMPLES = ["", "01", "99", "00070", "00004", "police-national", "police_commune", "commune", "active", "north",
                "law_enforcement|social", "vi|en", "mon-fri 07:30-17:00", "2026-11-01", "2026-02-30", "CN",
                "sms:+840000012345:1:24x7|email:a@b.example:2", "sms::", "|", "::::", "\x00", "\ufeff", "é" * 400,
                "81e2a75d-fdb8-5739-a77b-ece454162a71", "{81e2a75d-fdb8-5739-a77b-ece454162a71}", "١٢", "\r\n"]
cells = st.one_of(st.sampled_from(CELL_SAMPLES), st.text(max_size=30))


def _csv_text(header, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


csvish = st.one_of(
    st.text(),
    st.builds(_csv_text, st.just(codec.FIELDS), st.lists(st.lists(cells, min_size=17, max_size=17), max_size=4)),
    st.builds(_csv_text, st.permutations(codec.FIELDS), st.lists(st.lists(cells, max_size=19), max_size=4)),
    st.builds(lambda a, b: a + b, st.just(",".join(codec.FIELDS) + "\n"), st.text(alphabet=',"\n\r|:-0123456789ab')),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csvish)
def test_parse_csv_raises_only_directory_import_errors(text):
    try:
        codec.parse_csv(text)
    except DirectoryImportError as exc:
        assert exc.errors and all(isinstance(e, RowError) and e.row >= 1 for e in exc.errors)


YAML_VALUES = ["2026-02-30", "2026-11-01", "!!int 12x", "!!float x", "!!binary aGk=", "01", "+840000012345", "17:00",
               "[a, b]", "{channel: sms, address: '+840000012345', preference: 1, duty_24_7: yes}", "&a [*a]", "~",
               "!!python/name:os.system", "'mon-fri 07:30-17:00'", "[{channel: fax}]", "1e999", "no"]
yaml_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(codec.FIELDS + ("x",)), inner, max_size=5), max_leaves=20)
yamlish = st.one_of(
    st.text(),
    yaml_values.map(lambda value: yaml.safe_dump([value])),
    st.lists(st.tuples(st.sampled_from(codec.FIELDS + ("x",)), st.sampled_from(YAML_VALUES)), max_size=6)
    .map(lambda pairs: "- " + ("\n  ".join(f"{k}: {v}" for k, v in pairs) or "{}")),
)


@settings(max_examples=300, deadline=None)
@given(yamlish)
def test_parse_yaml_raises_only_directory_import_errors(text):
    try:
        codec.parse_yaml(text)
    except DirectoryImportError as exc:
        assert exc.errors


def test_contact_text_form_round_trips():
    for contact in (Contact(Channel.sms, "+840000012345", 1, True), Contact(Channel.email, "a.b@c.example", 12)):
        assert textforms.parse_contact(textforms.format_contact(contact)) == contact
