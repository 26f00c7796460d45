"""Referral's HTTP API over the running stack (intake → broker → referral, real PostgreSQL): the matching
dry run, its validation, referrals made for a reported case agreeing with the dry run of the same facts,
an update reaching a new unit without duplicating the others, and the directory listing.

Places are looked up by name and read from the fact files; Khánh Hòa is used by no other stack test."""
import asyncio
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from schemas.geography import communes
from services.referral.directory.facts import coast_guard_coverage, regional_centre_code, regions, resolve_province
from services.referral.matching import DEFAULT_RULES, RuleBook
from tests.support import eventually

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
OFFICE = datetime(2026, 3, 10, 10, 0, tzinfo=HCM)  # a Tuesday morning
NIGHT = datetime(2026, 3, 10, 22, 0, tzinfo=HCM)  # the same Tuesday night
DRY_RUN_ID = "00000000-0000-0000-0000-000000000000"
LAW_ENFORCEMENT = set(RuleBook(DEFAULT_RULES).current.consent.law_enforcement_kinds)


def commune_named(province: str, name: str) -> str:
    (code,) = [c for c, (n, p) in communes().items() if p == province and n == name]
    return code


KHANH_HOA = resolve_province("Khánh Hòa")
HANOI = resolve_province("Hà Nội")
NHA_TRANG = commune_named(KHANH_HOA, "Phường Nha Trang")  # the reported case
TAY_NHA_TRANG = commune_named(KHANH_HOA, "Phường Tây Nha Trang")  # the updated case
NAM_NHA_TRANG = commune_named(KHANH_HOA, "Phường Nam Nha Trang")  # dry runs only
HOAN_KIEM = commune_named(HANOI, "Phường Hoàn Kiếm")
COAST_GUARD = coast_guard_coverage()[KHANH_HOA]
CENTRE = regional_centre_code(regions()[KHANH_HOA])


def test_the_places_used_here_are_real():
    assert len({NHA_TRANG, TAY_NHA_TRANG, NAM_NHA_TRANG}) == 3
    assert all(communes()[c][1] == KHANH_HOA for c in (NHA_TRANG, TAY_NHA_TRANG, NAM_NHA_TRANG))
    assert (COAST_GUARD, CENTRE) == ("coast-guard-region-3", "hotline-centre-central")


# ---- clients ------------------------------------------------------------------------------------------

@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def operator_headers(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token('operator', sub='op-referral-api')}"}


async def dry_run(http, stack, facts: dict, at: datetime | None = OFFICE) -> dict:
    body = {**facts, **({"at": at.isoformat()} if at else {})}
    r = await http.post(f"{stack.url('referral')}/matching/dry-run", json=body, headers=operator_headers(stack))
    assert r.status_code == 200, r.text
    return r.json()


async def referrals_of(http, stack, case_id: str) -> list[dict]:
    r = await http.get(f"{stack.url('referral')}/referrals", params={"case_id": case_id, "limit": 500},
                       headers=operator_headers(stack))
    assert r.status_code == 200, r.text
    return r.json()


async def report(http, stack, body: dict) -> dict:
    r = await http.post(f"{stack.url('intake')}/cases", json={"channel": "phone", **body},
                        headers=operator_headers(stack))
    assert r.status_code == 201, r.text
    return r.json()


async def settled(http, stack, case: dict, timeout: float = 60) -> dict:
    """The case once referral has referred it (intake then moves it to `referred`, a new version)."""
    async def referred():
        now = (await http.get(f"{stack.url('intake')}/cases/{case['id']}", headers=operator_headers(stack))).json()
        return now if now["status"] == "referred" else None

    return await eventually(referred, timeout)


async def referrals_once(http, stack, case_id: str, count: int, timeout: float = 60) -> list[dict]:
    async def arrived():
        found = await referrals_of(http, stack, case_id)
        return found if len(found) >= count else None

    return await eventually(arrived, timeout, interval=0.25)


async def unit_codes(http, stack) -> dict[str, str]:
    """agency_unit_id → code for every unit these tests can reach (Khánh Hòa and the bodies above it)."""
    out = {}
    for params in ({"province_code": KHANH_HOA}, {"kind": "coast_guard_region"}, {"kind": "regional_centre"},
                   {"kind": "national_centre"}):
        r = await http.get(f"{stack.url('referral')}/agency-units", params={**params, "limit": 1000})
        assert r.status_code == 200, r.text
        out |= {u["id"]: u["code"] for u in r.json()}
    return out


def facts_of(case: dict) -> dict:
    """A case as intake answers it → the CaseFacts intake emits for it (codes and flags only)."""
    return {
        "case_id": case["id"], "case_number": case["case_number"], "province_code": case["province_code"],
        "commune_code": case["commune_code"], "urgency": case["urgency"], "version": case["version"],
        "victims": [{k: v[k] for k in ("sex", "age_band", "is_child", "nationality", "needs")}
                    for v in case["victims"]],
        "child_involved": case["child_victim"],
        **{k: case[k] for k in ("exploitation", "means_of_control", "recruitment_channel", "immediate_danger",
                                "violence", "abroad_country", "moving_across_border", "destination_country",
                                "at_sea", "consent_share_identity")},
    }


def without_delivery(referral: dict) -> dict:
    """A referral without what a delivery report may change between two reads."""
    return {k: v for k, v in referral.items() if k not in ("status", "version", "notified_at")}


def reason_of(unit: dict) -> str:
    return "; ".join(unit["reasons"][r] for r in unit["rules"])[:500]


# ---- dry run ----------------------------------------------------------------------------------------------

AT_SEA_CHILD = {  # an emergency at sea off Nha Trang, a child needing shelter; no consent given
    "province_code": KHANH_HOA, "commune_code": NAM_NHA_TRANG, "urgency": "emergency", "at_sea": True,
    "victims": [{"sex": "female", "age_band": "9-17", "is_child": True, "needs": ["shelter"]}],
}


async def test_dry_run_names_the_units_with_the_rules_version_and_a_trace(http, stack):
    out = await dry_run(http, stack, AT_SEA_CHILD)
    rules = (await http.get(f"{stack.url('referral')}/matching/rules", headers=operator_headers(stack))).json()
    assert out["rules_version"] == rules["version"] and len(rules["version"]) == 64
    assert out["directory_units"] == 6912
    assert [(u["code"], u["rules"]) for u in out["units"]] == [
        (f"police-commune-{NAM_NHA_TRANG}", ["police-commune"]),
        (f"police-province-{KHANH_HOA}", ["police-province-urgent"]),
        (COAST_GUARD, ["coast-guard"]),
        (f"peoples-committee-{NAM_NHA_TRANG}", ["peoples-committee"]),
        (f"social-protection-{KHANH_HOA}", ["support-needs", "child-protection"]),
        (CENTRE, ["regional-centre-emergency"]),
    ]
    assert out["unmatched"] == []
    for u in out["units"]:
        assert set(u["reasons"]) == set(u["rules"]) and all(u["reasons"].values())
        # the consent policy: a child is always reported to law enforcement, the others get facts only
        assert u["identity_shared"] is (u["kind"] in LAW_ENFORCEMENT), u["code"]
    assert next(u for u in out["units"] if u["code"] == f"social-protection-{KHANH_HOA}")["needs"] == ["shelter"]
    # the trace: every rule's condition, every unit chosen, and what each referral carries
    trace = out["trace"]
    assert {s["rule"] for s in trace if s["kind"] == "condition"} == set(rules["rules"])
    assert {s["unit"] for s in trace if s["kind"] == "chosen"} == {u["code"] for u in out["units"]}
    assert {s["unit"] for s in trace if s["kind"] == "consent"} == {u["code"] for u in out["units"]}
    assert all(s["text"] for s in trace)


async def test_dry_run_matches_as_at_the_time_given(http, stack):
    facts = {"province_code": KHANH_HOA, "commune_code": NAM_NHA_TRANG, "urgency": "emergency",
             "victims": [{"sex": "male", "age_band": "30-38", "is_child": False, "needs": ["medical", "legal_aid"]}]}
    office = await dry_run(http, stack, facts, OFFICE)
    night = await dry_run(http, stack, facts, NIGHT)

    def support(out):
        return sorted(u["code"] for u in out["units"] if "support-needs" in u["rules"])

    assert support(office) == [f"health-{KHANH_HOA}", f"legal-aid-{KHANH_HOA}"]
    assert support(night) == [f"hospital-{KHANH_HOA}"]  # only the hospital's duty line answers at night
    assert (office["unmatched"], night["unmatched"]) == ([], ["support-needs:legal_aid"])
    closed = [s for s in night["trace"] if s["skip"] == "closed_now"]
    assert {s["unit"] for s in closed} == {f"health-{KHANH_HOA}", f"legal-aid-{KHANH_HOA}"}
    assert all("Tue 22:00 Asia/Ho_Chi_Minh" in s["text"] for s in closed)


async def test_dry_run_writes_nothing(http, stack, reported):
    case, before = reported
    assert await referrals_of(http, stack, DRY_RUN_ID) == []
    await dry_run(http, stack, AT_SEA_CHILD)
    # the same facts as a real case that already has its referrals, and with a new unit (at sea → Coast Guard
    # is already there; abroad adds the consular department and a counterpart it does not have)
    await dry_run(http, stack, {**facts_of(case), "abroad_country": "CN"})
    await asyncio.sleep(1)
    assert await referrals_of(http, stack, DRY_RUN_ID) == []
    after = await referrals_of(http, stack, case["id"])
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in before)


PROBLEMS = [
    ("unknown province", {"province_code": "99"}, "province_code"),
    ("malformed province", {"province_code": "5"}, "province_code"),
    ("bad urgency", {"urgency": "urgent"}, "urgency"),
    ("commune of another province", {"commune_code": HOAN_KIEM}, "commune_code"),
]


@pytest.mark.parametrize(("change", "field"), [r[1:] for r in PROBLEMS], ids=[r[0] for r in PROBLEMS])
async def test_dry_run_refuses_bad_input_naming_the_field(http, stack, change, field):
    r = await http.post(f"{stack.url('referral')}/matching/dry-run",
                        json={**AT_SEA_CHILD, **change, "at": OFFICE.isoformat()}, headers=operator_headers(stack))
    assert r.status_code == 422, f"{r.status_code}: {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 422 and body["type"].endswith("/validation-error")
    assert field in [e["field"] for e in body["errors"]], body


# ---- a reported case is referred as the dry run says ------------------------------------------------------

@pytest.fixture(scope="module")
async def reported(stack):
    """Khánh Hòa, Nha Trang: at sea, a child needing shelter, reported as an emergency; without consent.
    Every unit its facts reach answers 24/7 or is not held to hours, so the referral service's `now` and
    a dry run at any time agree. Returns (case once referred, its referrals)."""
    async with httpx.AsyncClient(timeout=30) as http:
        case = await report(http, stack, {
            "province_code": KHANH_HOA, "commune_code": NHA_TRANG, "urgency": "emergency", "at_sea": True,
            "victims": [{"sex": "female", "age": 15, "needs": ["shelter"]}],
        })
        assert (case["urgency"], case["child_victim"], case["consent_share_identity"]) == ("emergency", True, False)
        settled_case = await settled(http, stack, case)
        made = await referrals_once(http, stack, case["id"], 6)
        return settled_case, made


async def test_a_reported_case_gets_the_referrals_of_its_dry_run(http, stack, reported):
    case, made = reported
    facts = facts_of(case)
    office, night = await dry_run(http, stack, facts, OFFICE), await dry_run(http, stack, facts, NIGHT)
    assert [u["code"] for u in office["units"]] == [u["code"] for u in night["units"]]  # no hour changes it
    expected = {u["code"]: u for u in office["units"]}
    assert set(expected) == {f"police-commune-{NHA_TRANG}", f"police-province-{KHANH_HOA}", COAST_GUARD,
                             f"peoples-committee-{NHA_TRANG}", f"social-protection-{KHANH_HOA}", CENTRE}

    codes = await unit_codes(http, stack)
    await asyncio.sleep(1)  # anything late (a redelivery) would land now
    made = await referrals_of(http, stack, case["id"])
    got = {codes[r["agency_unit_id"]]: r for r in made}
    assert len(got) == len(made) == len(expected)  # one referral per unit
    assert set(got) == set(expected)
    for code, r in got.items():
        unit = expected[code]
        assert r["rule_ids"] == unit["rules"], code
        assert r["agency_unit_name"] == unit["name"] and r["match_reason"] == reason_of(unit)
        assert (r["case_id"], r["case_number"]) == (case["id"], case["case_number"])
        assert (r["urgency"], r["province_code"], r["cause"]) == ("emergency", KHANH_HOA, "matched")
        assert r["status"] in ("created", "notified")  # notified once notify reports its email delivered
        # consent: no consent was given, but a child is involved: law enforcement gets the identity
        assert r["identity_shared"] is unit["identity_shared"] is (unit["kind"] in LAW_ENFORCEMENT), code
        one = await http.get(f"{stack.url('referral')}/referrals/{r['id']}", headers=operator_headers(stack))
        assert one.status_code == 200 and without_delivery(one.json()) == without_delivery(r)


async def test_an_update_reaches_a_new_unit_without_duplicating_the_others(http, stack):
    case = await report(http, stack, {
        "province_code": KHANH_HOA, "commune_code": TAY_NHA_TRANG, "urgency": "emergency",
        "victims": [{"sex": "female", "age": 30, "needs": ["shelter"]}],
    })
    first = {f"police-commune-{TAY_NHA_TRANG}", f"police-province-{KHANH_HOA}", f"peoples-committee-{TAY_NHA_TRANG}",
             f"social-protection-{KHANH_HOA}", CENTRE}
    case = await settled(http, stack, case)
    codes = await unit_codes(http, stack)
    before = await referrals_once(http, stack, case["id"], len(first))
    assert {codes[r["agency_unit_id"]] for r in before} == first
    assert all(r["identity_shared"] is False for r in before)  # an adult, no consent: facts only, to everyone

    # Khánh Hòa has no land border: being moved across one now is what brings in its Border Guard
    r = await http.patch(f"{stack.url('intake')}/cases/{case['id']}",
                         json={"moving_across_border": True, "destination_country": "CN"},
                         headers={**operator_headers(stack), "If-Match": f'"{case["version"]}"'})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["moving_across_border"] is True and updated["version"] == case["version"] + 1

    after = await referrals_once(http, stack, case["id"], len(first) + 1)
    await asyncio.sleep(1)  # anything late (a redelivery, a duplicate) would land now
    after = await referrals_of(http, stack, case["id"])
    got = [codes[r["agency_unit_id"]] for r in after]
    assert sorted(got) == sorted(first | {f"border-guard-{KHANH_HOA}"})  # each unit once
    (guard,) = [r for r in after if codes[r["agency_unit_id"]] == f"border-guard-{KHANH_HOA}"]
    assert guard["rule_ids"] == ["border-guard"] and guard["identity_shared"] is False
    # the referrals made before are the same rows, untouched
    assert sorted((r["id"], r["created_at"], tuple(r["rule_ids"])) for r in before) == sorted(
        (r["id"], r["created_at"], tuple(r["rule_ids"])) for r in after if r["id"] != guard["id"])
    # and the whole set is what a dry run of the updated facts names
    out = await dry_run(http, stack, facts_of(updated), NIGHT)
    assert sorted(u["code"] for u in out["units"]) == sorted(got)


# ---- the directory ----------------------------------------------------------------------------------------

async def test_the_directory_lists_the_four_coast_guard_regions(http, stack):
    r = await http.get(f"{stack.url('referral')}/agency-units", params={"kind": "coast_guard_region"})
    assert r.status_code == 200, r.text
    found = r.json()
    assert [u["code"] for u in found] == [f"coast-guard-region-{n}" for n in (1, 2, 3, 4)]
    assert {(u["kind"], u["level"], u["status"]) for u in found} == {("coast_guard_region", "region", "active")}
    assert set(coast_guard_coverage().values()) == {u["code"] for u in found}
    assert all(uuid.UUID(u["id"]) for u in found)
